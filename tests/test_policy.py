"""The signing policy, on by default: network guard, no rekey or close-out of the
key's own account unless allowed, and a fee cap. Each refusal signs nothing, makes
no signing request and leaves an audit record."""

from __future__ import annotations

import base64
import logging

import boto3
import pytest
from algosdk import encoding, transaction
from django.test import override_settings
from nacl.signing import VerifyKey

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.algorand import networks
from confio_kms.common import exceptions
from confio_kms.core.policy import SigningPolicy
from confio_kms.core.signing import signing_bytes
from confio_kms.sandbox import LocalLedger

from .helpers import EnvelopeKey, RequestCounter, new_account


def params(network: str) -> transaction.SuggestedParams:
    return transaction.SuggestedParams(
        1000, 1, 1000, networks.GENESIS_HASH[network], networks.GENESIS_ID[network], True, 1000
    )


@pytest.fixture
def keys(envelope_key: EnvelopeKey) -> dict[str, str]:
    return {
        network: envelope_key(network, network)[1] for network in ("testnet", "mainnet", "localnet")
    }


def refused(
    signer: KMSSigner, txn: transaction.Transaction, counter: RequestCounter, needle: str
) -> None:
    assert signer.address  # resolve first: the count below is signing alone
    counter.reset()
    with pytest.raises(exceptions.PolicyViolationError, match=needle) as raised:
        signer.sign_transaction(txn)
    assert isinstance(raised.value, PermissionError) and "nothing was signed" in str(raised.value)
    assert counter.total == 0


def test_network_guard(
    keys: dict[str, str], session: boto3.Session, counter: RequestCounter
) -> None:
    testnet = KMSSigner("testnet", session=session)
    mainnet = KMSSigner("mainnet", session=session)
    a, b = keys["testnet"], keys["mainnet"]
    refused(testnet, transaction.PaymentTxn(a, params("mainnet"), a, 0), counter,
            "tagged testnet but the transaction is for mainnet")  # fmt: skip
    refused(mainnet, transaction.PaymentTxn(b, params("testnet"), b, 0), counter,
            "tagged mainnet but the transaction is for testnet")  # fmt: skip
    refused(mainnet, transaction.PaymentTxn(b, params("betanet"), b, 0), counter, "for betanet")
    for signer, address, network in ((testnet, a, "testnet"), (mainnet, b, "mainnet")):
        txn = transaction.PaymentTxn(address, params(network), address, 0)
        signed = signer.sign_transaction(txn)
        VerifyKey(encoding.decode_address(address)).verify(
            signing_bytes(txn), base64.b64decode(signed.signature)
        )


def test_unknown_networks_need_an_explicit_setting(
    keys: dict[str, str], session: boto3.Session, counter: RequestCounter, ledger: LocalLedger
) -> None:
    address = keys["localnet"]
    txn = transaction.PaymentTxn(address, ledger.suggested_params(), address, 0)
    with override_settings(CONFIO_KMS_TRUSTED_GENESIS=[]):
        strict = KMSSigner("localnet", session=session)
    refused(strict, txn, counter, "needs its genesis hash trusted explicitly")
    refused(strict, transaction.PaymentTxn(address, params("mainnet"), address, 0), counter,
            "transaction is for mainnet")  # fmt: skip
    ledger.fund(address, 1_000_000)
    ledger.evaluate([KMSSigner("localnet", session=session).sign_transaction(txn)])  # trusted


def test_a_private_networks_refusal_names_the_setting_that_trusts_it(
    keys: dict[str, str], session: boto3.Session, counter: RequestCounter, ledger: LocalLedger
) -> None:
    """Issue 25: the fix said "Sign an unknown network transactions with a an unknown
    network key"; it names CONFIO_KMS_TRUSTED_GENESIS and AlgoKit LocalNet now."""
    for name in ("testnet", "localnet"):
        address = keys[name]
        txn = transaction.PaymentTxn(address, ledger.suggested_params(), address, 0)
        with override_settings(CONFIO_KMS_TRUSTED_GENESIS=[]):
            signer = KMSSigner(name, session=session)
        refused(signer, txn, counter, "AlgoKit LocalNet.*CONFIO_KMS_TRUSTED_GENESIS")
        with pytest.raises(exceptions.PolicyViolationError) as raised:
            signer.sign_transaction(txn)
        assert "a an" not in str(raised.value) and "unknown network key" not in str(raised.value)


def test_trusting_a_public_genesis_is_a_configuration_error() -> None:
    with pytest.raises(exceptions.ConfigurationError, match="public network's genesis hash"):
        SigningPolicy(trusted_genesis=frozenset({networks.GENESIS_HASH["mainnet"]}))


def test_rekey_and_close_outs_need_explicit_permission(
    manager: AlgorandKMSManager,
    session: boto3.Session,
    counter: RequestCounter,
    ledger: LocalLedger,
) -> None:
    address = manager.create_algorand_key("own").address
    signer = KMSSigner("own", session=session)
    _, other = new_account()
    sp = ledger.suggested_params()
    rekey = transaction.PaymentTxn(address, sp, address, 0, rekey_to=other)
    close = transaction.PaymentTxn(address, sp, other, 0, close_remainder_to=other)
    asset_close = transaction.AssetTransferTxn(address, sp, other, 0, 5, close_assets_to=other)

    refused(signer, rekey, counter, f"rekeys {address} to {other}")
    refused(signer, close, counter, f"closes {address} out to {other}")
    refused(signer, asset_close, counter, f"closes {address} out to {other}")
    ledger.fund(address, 1_000_000)
    ledger.evaluate(signer.sign_transactions([rekey], allow_rekey=True))
    assert len(signer.sign_transactions([close, asset_close], allow_close=True)) == 2


@override_settings(CONFIO_KMS_MAX_FEE=2_000)
def test_fee_cap_per_signature(
    manager: AlgorandKMSManager,
    session: boto3.Session,
    counter: RequestCounter,
    ledger: LocalLedger,
) -> None:
    address = manager.create_algorand_key("fees").address
    signer = KMSSigner("fees", session=session)
    txn = transaction.PaymentTxn(address, ledger.suggested_params(), address, 0)
    txn.fee = 2_001
    refused(signer, txn, counter, "fee 2001 microalgos is over the cap of 2000")
    txn.fee = 2_000
    assert signer.sign_transaction(txn)


def test_refusals_are_audited(
    keys: dict[str, str], session: boto3.Session, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="confio_kms.audit")
    a = keys["testnet"]
    with pytest.raises(exceptions.PolicyViolationError):
        KMSSigner("testnet", session=session).sign_transaction(
            transaction.PaymentTxn(a, params("mainnet"), a, 0)
        )
    (record,) = [r for r in caplog.records if r.name == "confio_kms.audit"]
    assert record.audit["outcome"] == "refused"  # type: ignore[attr-defined]
    assert record.audit["detail"] == "PolicyViolationError"  # type: ignore[attr-defined]
