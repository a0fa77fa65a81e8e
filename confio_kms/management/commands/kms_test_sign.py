from __future__ import annotations

import base64
from argparse import ArgumentParser
from typing import Any

from algosdk import encoding, transaction
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from ... import conf, exceptions, networks
from ...signing import signing_bytes
from ..base import KMSCommand

NOTE = b"KMS signing test"


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
        chain = None
        if options["submit"] or settings.sandbox:
            chain = conf.algorand_chain(fund=address)
            params = chain.suggested_params()
        else:
            params = _offline_params(signer.network)
        txn = transaction.PaymentTxn(address, params, address, 0, note=NOTE)

        signed = signer.sign_transaction(txn)
        _verify(signed, txn, signer.signer_address)
        txid = signed.get_txid()
        self.stdout.write(f"alias:   {signer.key_alias}")
        self.stdout.write(f"address: {address}")
        self.stdout.write(f"signed:  {txid} (signature verified locally)")
        if not options["submit"] or chain is None:
            return
        confirmed = chain.submit(signed)
        if settings.sandbox:
            self.stdout.write("ledger:  accepted by Algorand's ledger evaluator (sandbox)")
            return
        self.stdout.write(f"confirmed in round {confirmed}")
        link = networks.EXPLORER_TX.get(signer.network)
        if link:
            self.stdout.write(link.format(txid=txid))


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
    signed: transaction.SignedTransaction, txn: transaction.Transaction, signer: str
) -> None:
    try:
        VerifyKey(encoding.decode_address(signer)).verify(
            signing_bytes(txn), base64.b64decode(signed.signature)
        )
    except (BadSignatureError, ValueError):
        raise exceptions.AddressMismatchError(
            f"KMS returned a signature that does not verify against {signer}.",
            fix="Check the key's AlgorandAddress tag and stored key; do not use this key.",
        ) from None
