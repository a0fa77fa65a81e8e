"""A wallet backend's view of its sponsor account, through the sponsor service."""

from __future__ import annotations

import asyncio
import json

from algosdk import constants, encoding, transaction
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.views.decorators.http import require_GET

from confio_kms.common import exceptions
from confio_kms.sponsor import AlgorandSponsorService, decode_user_transactions


@require_GET
def sponsor_info(request: HttpRequest) -> HttpResponse:
    service = AlgorandSponsorService()
    return JsonResponse(
        {
            "sponsor_address": service.sponsor_address,
            "settings_address": str(settings.ALGORAND_SPONSOR_ADDRESS),
            "signing": "kms" if service.uses_kms else "mnemonic",
        }
    )


# What the client sent is refused (400); anything else (AWS down) is the server's 500.
REFUSALS = (
    exceptions.UntrustedInputError,
    exceptions.SponsorPolicyError,
    exceptions.PolicyViolationError,
)


async def sponsor_group(request: HttpRequest) -> HttpResponse:
    """Pay the fees of a client's unsigned transactions, from an async view.

    Body: ``{"transactions": [base64 msgpack, ...]}`` (zero-fee transactions from the
    users' own accounts). Answer: ``{"group": [...]}``, the signed sponsor payment
    then the user transactions, grouped, for the users to sign and send. The sponsor
    signs with ``asponsor_group``: the event loop serves other requests meanwhile.
    """
    if request.method != "POST":  # Django 4.2's require_POST cannot wrap an async view
        return HttpResponseNotAllowed(["POST"])
    try:
        body = json.loads(request.body or b"null")
        users = decode_user_transactions(
            body.get("transactions") if isinstance(body, dict) else None
        )
        # Built in a thread: a first build creates boto3 clients (CPU, file reads).
        service = await asyncio.to_thread(AlgorandSponsorService)
        group = await service.asponsor_group(users, _same_window(users[0]))
    except json.JSONDecodeError:
        return JsonResponse({"error": "The body is not JSON.", "fix": "Send JSON."}, status=400)
    except REFUSALS as error:
        return JsonResponse({"error": error.message, "fix": error.fix}, status=400)
    return JsonResponse({"group": [encoding.msgpack_encode(txn) for txn in group]})


def _same_window(user: transaction.Transaction) -> transaction.SuggestedParams:
    """The sponsor payment's parameters: the user's network and validity window, at
    the minimum fee (no algod round trip in this example)."""
    return transaction.SuggestedParams(
        fee=0,
        first=user.first_valid_round,
        last=user.last_valid_round,
        gh=user.genesis_hash,
        gen=user.genesis_id,
        flat_fee=True,
        min_fee=constants.MIN_TXN_FEE,
    )
