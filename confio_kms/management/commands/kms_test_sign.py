from __future__ import annotations

import base64
from argparse import ArgumentParser
from collections.abc import Callable
from typing import Any, TypeVar

from algosdk import encoding, transaction
from algosdk.error import (
    AlgodHTTPError,
    AlgodRequestError,
    AlgodResponseError,
    ConfirmationTimeoutError,
    TransactionRejectedError,
)
from algosdk.v2client import algod
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from ... import conf, exceptions, networks
from ...signer import signing_bytes
from ..base import KMSCommand

NOTE = b"KMS signing test"
T = TypeVar("T")


class Command(KMSCommand):
    help = (
        "Sign a 0-ALGO self-payment through KMS, verify it locally and print its id; "
        "--submit sends it to algod (or, on the sandbox, to the local ledger evaluator)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--alias", help="Key alias (default: the active network's alias).")
        parser.add_argument("--submit", action="store_true", help="Submit and wait for it.")

    def handle(self, *args: Any, **options: Any) -> None:
        settings = conf.kms_settings()
        signer = conf.kms_signer(options["alias"])
        address = signer.address
        client = None
        if settings.sandbox:
            from ...sandbox import LocalLedger

            params = LocalLedger.suggested_params()
        elif options["submit"]:
            client = _algod()
            params = _ask_algod(client, "suggested_params", client.suggested_params)
        else:
            params = _offline_params(signer.network)
        txn = transaction.PaymentTxn(address, params, address, 0, note=NOTE)

        signed = signer.sign_transaction(txn)
        _verify(signed, txn, address)
        txid = signed.get_txid()
        self.stdout.write(f"alias:   {signer.key_alias}")
        self.stdout.write(f"address: {address}")
        self.stdout.write(f"signed:  {txid} (signature verified locally)")
        if not options["submit"]:
            return
        if settings.sandbox:
            from ...sandbox import LocalLedger

            ledger = LocalLedger()
            ledger.fund(address, 1_000_000)
            ledger.evaluate([signed])
            self.stdout.write("ledger:  accepted by Algorand's ledger evaluator (sandbox)")
            return
        assert client is not None
        _ask_algod(client, "send_transaction", lambda: client.send_transaction(signed))
        result = _ask_algod(
            client,
            "wait_for_confirmation",
            lambda: transaction.wait_for_confirmation(client, txid, 10),
        )
        self.stdout.write(f"confirmed in round {result.get('confirmed-round')}")
        link = networks.EXPLORER_TX.get(signer.network)
        if link:
            self.stdout.write(link.format(txid=txid))


def _algod() -> algod.AlgodClient:
    address = conf.setting("ALGOD_ADDRESS", "", str)
    if not address:
        raise exceptions.ConfigurationError(
            "--submit needs an algod node and ALGOD_ADDRESS is not set.",
            fix=f"Set ALGOD_ADDRESS (and ALGOD_TOKEN) in {conf.places('ALGOD_ADDRESS')}.",
        )
    return algod.AlgodClient(conf.setting("ALGOD_TOKEN", "", str), address)


def _ask_algod(client: algod.AlgodClient, what: str, request: Callable[[], T]) -> T:
    try:
        return request()
    except (
        AlgodHTTPError,
        AlgodRequestError,
        AlgodResponseError,
        ConfirmationTimeoutError,
        TransactionRejectedError,
        OSError,
    ) as error:
        raise exceptions.AlgodError(
            f"algod at {client.algod_address} failed {what}.",
            fix="Check ALGOD_ADDRESS, ALGOD_TOKEN and that the node is synced, then retry.",
            cause=" ".join(str(error).split())[:300],
        ) from error


def _offline_params(network: str) -> transaction.SuggestedParams:
    """Parameters good enough to sign a test transaction nobody submits."""
    return transaction.SuggestedParams(
        fee=1000,
        first=1,
        last=1000,
        gh=networks.GENESIS_HASH.get(network, networks.GENESIS_HASH["testnet"]),
        gen=networks.GENESIS_ID.get(network, networks.GENESIS_ID["testnet"]),
        flat_fee=True,
        min_fee=1000,
    )


def _verify(
    signed: transaction.SignedTransaction, txn: transaction.Transaction, address: str
) -> None:
    try:
        VerifyKey(encoding.decode_address(address)).verify(
            signing_bytes(txn), base64.b64decode(signed.signature)
        )
    except BadSignatureError:
        raise exceptions.AddressMismatchError(
            f"KMS returned a signature that does not verify against {address}.",
            fix="Check the key's AlgorandAddress tag and stored key; do not use this key.",
        ) from None
