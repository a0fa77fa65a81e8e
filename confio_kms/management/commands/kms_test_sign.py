from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from confio_kms import factory as conf
from confio_kms.algorand import networks, validation
from confio_kms.algorand.chain import offline_params
from confio_kms.lifecycle.self_payment import SelfPayment, sign_self_payment, submit_self_payment
from confio_kms.management.base import KMSCommand


class Command(KMSCommand):
    help = (
        "Sign a 0-ALGO self-payment through KMS, verify it locally and print its id; "
        "--submit sends it to algod (or, on the sandbox, to the local ledger evaluator)."
    )

    confirms = True
    arguments = ("alias",)

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--submit", action="store_true", help="Submit and wait for it.")

    def handle(self, *args: Any, **options: Any) -> None:
        settings = conf.kms_settings()
        conf.sandbox_guard()  # before any AWS request: the sandbox flag on a real endpoint
        signer = conf.kms_signer(options["alias"])
        submit = options["submit"]
        if submit and signer.network == networks.MAINNET:
            self.confirm(
                options,
                validation.alias_name(signer.key_alias),
                f"Submit a 0-ALGO self-payment from {signer.address} on mainnet (it pays the fee)",
            )
        chain = (
            conf.algorand_chain(fund=signer.address, network=signer.network)
            if submit or settings.sandbox
            else None
        )
        params = chain.suggested_params() if chain is not None else offline_params(signer.network)
        payment = sign_self_payment(signer, params)
        confirmed = submit_self_payment(payment, chain) if submit and chain is not None else None
        self._show(payment, submitted=submit, confirmed=confirmed)

    def _show(self, payment: SelfPayment, *, submitted: bool, confirmed: int | None) -> None:
        settings = conf.kms_settings()
        data: dict[str, Any] = {
            "alias": payment.alias,
            "address": payment.address,
            "txid": payment.txid,
            "verified": True,
            "submitted": submitted,
            "confirmed_round": None,
            "use_kms_signing": settings.use_kms_signing,
        }
        lines = [
            f"alias:   {payment.alias}",
            f"address: {payment.address}",
            f"signed:  {payment.txid} (signature verified locally)",
        ]
        if not settings.use_kms_signing:
            lines.append(
                "note:    USE_KMS_SIGNING is off: the app still signs with the mnemonic. "
                "This signature went through KMS only because this command asked for it."
            )
        if submitted and settings.sandbox:
            data["ledger"] = "sandbox"
            lines.append("ledger:  accepted by Algorand's ledger evaluator (sandbox)")
        elif submitted:
            data["confirmed_round"] = confirmed
            lines.append(f"confirmed in round {confirmed}")
            link = networks.EXPLORER_TX.get(payment.network)
            if link:
                lines.append(link.format(txid=payment.txid))
        self.emit(data, lines)
