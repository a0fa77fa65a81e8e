"""A wallet backend's view of its sponsor account, through the sponsor service."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from confio_kms.sponsor import AlgorandSponsorService


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
