"""A 0-ALGO self-payment signed through KMS: the proof that a key signs (kms_test_sign).

The payment moves nothing but its fee; signed, it is verified against the account
before it is returned (``AlgorandKey.sign``), so a ``SelfPayment`` is a checked one.
"""

from __future__ import annotations

from dataclasses import dataclass

from algosdk import transaction

from confio_kms.algorand.chain import Chain
from confio_kms.common import progress
from confio_kms.core.signer import KMSSigner

NOTE = b"KMS signing test"


@dataclass(frozen=True)
class SelfPayment:
    """A signed, verified 0-ALGO payment from the key's account to itself."""

    alias: str
    address: str
    network: str
    signed: transaction.SignedTransaction

    @property
    def txid(self) -> str:
        return str(self.signed.get_txid())


def sign_self_payment(signer: KMSSigner, params: transaction.SuggestedParams) -> SelfPayment:
    """Sign a 0-ALGO self-payment with ``signer``'s key (one signing call, audited).

    ``params`` come from the chain it is to be submitted to, or ``offline_params`` for
    a signature nobody submits.
    """
    address = signer.address
    txn = transaction.PaymentTxn(address, params, address, 0, note=NOTE)
    return SelfPayment(signer.key_alias, address, signer.network, signer.sign_transaction(txn))


def submit_self_payment(payment: SelfPayment, chain: Chain) -> int:
    """Send the payment and wait for it; return the round it was confirmed in."""
    progress.step(f"submitting {payment.txid} and waiting for its confirmation")
    return chain.submit(payment.signed)
