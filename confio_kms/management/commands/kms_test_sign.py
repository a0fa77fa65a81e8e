from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from algosdk import transaction

from confio_kms import factory as conf
from confio_kms.algorand import networks, validation
from confio_kms.algorand.chain import offline_params
from confio_kms.common import progress
from confio_kms.management.base import KMSCommand

NOTE = b"KMS signing test"


class Command(KMSCommand):
    help = (
        "Sign a 0-ALGO self-payment through KMS, verify it locally and print its id; "
        "--submit sends it to algod (or, on the sandbox, to the local ledger evaluator)."
    )

    confirms = True

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--alias", help="Key alias (default: the active network's alias).")
        parser.add_argument("--submit", action="store_true", help="Submit and wait for it.")
        parser.add_argument(
            "--no-input", action="store_false", dest="interactive", help="Ask nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        settings = conf.kms_settings()
        signer = conf.kms_signer(options["alias"])
        address = signer.address
        if options["submit"] and signer.network == networks.MAINNET:
            self.confirm(
                options,
                validation.alias_name(signer.key_alias),
                f"Submit a 0-ALGO self-payment from {address} on mainnet (it pays the fee)",
            )
        chain = None
        if options["submit"] or settings.sandbox:
            chain = conf.algorand_chain(fund=address)
            params = chain.suggested_params()
        else:
            params = offline_params(signer.network)
        txn = transaction.PaymentTxn(address, params, address, 0, note=NOTE)

        # Verified before it is returned (AlgorandKey.sign): the "verified locally" below.
        signed = signer.sign_transaction(txn)
        txid = signed.get_txid()
        data: dict[str, Any] = {
            "alias": signer.key_alias,
            "address": address,
            "txid": txid,
            "verified": True,
            "submitted": False,
            "confirmed_round": None,
            "use_kms_signing": settings.use_kms_signing,
        }
        lines = [
            f"alias:   {signer.key_alias}",
            f"address: {address}",
            f"signed:  {txid} (signature verified locally)",
        ]
        if not settings.use_kms_signing:
            lines.append(
                "note:    USE_KMS_SIGNING is off: the app still signs with the mnemonic. "
                "This signature went through KMS only because this command asked for it."
            )
        if options["submit"] and chain is not None:
            progress.step(f"submitting {txid} and waiting for its confirmation")
            confirmed = chain.submit(signed)
            data["submitted"] = True
            if settings.sandbox:
                data["ledger"] = "sandbox"
                lines.append("ledger:  accepted by Algorand's ledger evaluator (sandbox)")
            else:
                data["confirmed_round"] = confirmed
                lines.append(f"confirmed in round {confirmed}")
                link = networks.EXPLORER_TX.get(signer.network)
                if link:
                    lines.append(link.format(txid=txid))
        self.emit(data, lines)
