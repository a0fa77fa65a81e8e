"""The original module's names (confio_kms.compat) on keys in the original layout."""

from __future__ import annotations

import inspect

import boto3
import pytest
from algosdk import encoding, transaction
from algosdk.atomic_transaction_composer import AtomicTransactionComposer, TransactionWithSigner
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from confio_kms.common import exceptions
from confio_kms.compat import (
    AlgorandKMSManager,
    KMSSigner,
    KMSTransactionSigner,
    NativeKMSSigner,
    get_kms_signer_from_settings,
)
from confio_kms.sandbox import LocalLedger

from . import legacy_layout
from .helpers import RequestCounter, new_account, same_bytes, sdk_signed

SPONSOR, ADMIN = "confio-testnet-sponsor", "confio-testnet-admin"


@pytest.fixture
def legacy() -> dict[str, tuple[str, str, str]]:
    return {alias: legacy_layout.create(alias) for alias in (SPONSOR, ADMIN)}


def payments(address: str, ledger: LocalLedger, count: int) -> list[transaction.Transaction]:
    ledger.fund(address, 10_000_000)
    sp = ledger.suggested_params()
    return [transaction.PaymentTxn(address, sp, address, i) for i in range(count)]


def test_factory_reads_the_original_settings(legacy: dict[str, tuple[str, str, str]]) -> None:
    sponsor, admin = legacy[SPONSOR][1], legacy[ADMIN][1]
    with override_settings(
        USE_KMS_SIGNING=True,
        KMS_KEY_ALIAS=SPONSOR,
        KMS_ADMIN_KEY_ALIAS=ADMIN,
        ALGORAND_SPONSOR_ADDRESS=sponsor,
        ALGORAND_ADMIN_ADDRESS=admin,
    ):
        assert get_kms_signer_from_settings().address == sponsor
        assert get_kms_signer_from_settings(role="admin").address == admin
        assert get_kms_signer_from_settings(key_alias=ADMIN, role="admin").address == admin
        with pytest.raises(exceptions.ConfiguredAddressMismatchError) as mismatch:
            get_kms_signer_from_settings(key_alias=ADMIN)  # checked against the sponsor's
        assert isinstance(mismatch.value, ImproperlyConfigured)
        with pytest.raises(exceptions.ConfigurationError, match="KMS_NATIVE_SIGNING"):
            get_kms_signer_from_settings(native=True)
    with override_settings(USE_KMS_SIGNING=False), pytest.raises(ImproperlyConfigured):
        get_kms_signer_from_settings()
    with override_settings(USE_KMS_SIGNING=False):
        assert get_kms_signer_from_settings(use_kms=True, key_alias=SPONSOR).address == sponsor


def test_msgpack_calls_and_old_keywords(
    legacy: dict[str, tuple[str, str, str]],
    ledger: LocalLedger,
    session: boto3.Session,
    counter: RequestCounter,
) -> None:
    private_key, address, _ = legacy[SPONSOR]
    signer = KMSSigner(SPONSOR, region_name="eu-central-2", session=session)
    txns = payments(address, ledger, 3)
    assert signer.address == address
    counter.reset()
    encoded = signer.sign_transactions_msgpack(txns)
    # One decrypt for the list (and the ciphertext's one read).
    assert counter.by_operation() == {"ssm.GetParameter": 1, "kms.Decrypt": 1}
    assert all(isinstance(e, str) for e in encoded)
    decoded = [encoding.msgpack_decode(e) for e in encoded]
    for signed, txn in zip(decoded, txns, strict=True):
        assert same_bytes(signed, sdk_signed(txn, private_key))
    ledger.evaluate(decoded)

    one = signer.sign_transaction_msgpack(transaction=txns[0])
    assert same_bytes(encoding.msgpack_decode(one), sdk_signed(txns[0], private_key))
    assert same_bytes(
        signer.sign_transaction(transaction=txns[1]), sdk_signed(txns[1], private_key)
    )
    assert len(signer.sign_transactions(transactions=txns)) == 3
    with pytest.raises(TypeError, match="exactly one"):
        signer.sign_transaction(txns[0], transaction=txns[0])

    counter.reset()
    signer.assert_matches_address("")
    signer.assert_matches_address(None)
    signer.assert_matches_address(address)
    assert counter.total == 0  # the address is cached; empty checks nothing
    _, other = new_account()
    with pytest.raises(ImproperlyConfigured, match=other):
        signer.assert_matches_address(other)


def test_transaction_signer_adapter_in_a_composer(
    legacy: dict[str, tuple[str, str, str]], ledger: LocalLedger
) -> None:
    _, address, _ = legacy[ADMIN]
    adapter = KMSTransactionSigner(KMSSigner(ADMIN))
    composer = AtomicTransactionComposer()
    for txn in payments(address, ledger, 2):
        composer.add_transaction(TransactionWithSigner(txn, adapter))
    ledger.evaluate(composer.gather_signatures())


def test_native_signer_by_alias_key_id_and_arn(
    manager: AlgorandKMSManager, ledger: LocalLedger
) -> None:
    created = manager.create_algorand_key("sponsor-native", kind="native", network="localnet")
    arn = boto3.client("kms").describe_key(KeyId=created.key_id)["KeyMetadata"]["Arn"]
    for reference in ("sponsor-native", "alias/sponsor-native", created.key_id, arn):
        signer = NativeKMSSigner(reference, region_name="eu-central-2")
        assert signer.key_alias == "alias/sponsor-native"
        ledger.evaluate([signer.sign_transaction(payments(created.address, ledger, 1)[0])])
    legacy_layout.create(SPONSOR)
    with pytest.raises(exceptions.ConfigurationError, match="not a native one"):
        NativeKMSSigner(SPONSOR).sign_transaction(payments(created.address, ledger, 1)[0])
    orphan = boto3.client("kms").create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")
    with pytest.raises(exceptions.AliasNotFoundError, match="has no alias"):
        NativeKMSSigner(orphan["KeyMetadata"]["KeyId"])


def test_native_signer_by_arn_asks_whose_credentials_these_are(
    manager: AlgorandKMSManager, session: boto3.Session, counter: RequestCounter
) -> None:
    created = manager.create_algorand_key("sponsor-native", kind="native", network="localnet")
    key_arn = boto3.client("kms").describe_key(KeyId=created.key_id)["KeyMetadata"]["Arn"]
    alias_arn = key_arn.split(":key/")[0] + ":alias/sponsor-native"
    counter.reset()
    assert NativeKMSSigner(key_arn, session=session).key_alias == "alias/sponsor-native"
    assert counter.by_operation() == {"sts.GetCallerIdentity": 1, "kms.ListAliases": 1}
    counter.reset()
    assert NativeKMSSigner(alias_arn, session=session).key_alias == "alias/sponsor-native"
    assert counter.by_operation() == {"sts.GetCallerIdentity": 1}


@pytest.mark.parametrize(
    "arn, names",
    [
        ("arn:aws:kms:eu-central-2:111122223333:alias/sponsor-native", "111122223333 (aws)"),
        ("arn:aws:kms:eu-central-2:111122223333:key/{key_id}", "111122223333 (aws)"),
        ("arn:aws-cn:kms:eu-central-2:{account}:alias/sponsor-native", "{account} (aws-cn)"),
    ],
)
def test_native_signer_refuses_an_arn_of_another_account_or_partition(
    arn: str,
    names: str,
    manager: AlgorandKMSManager,
    session: boto3.Session,
    counter: RequestCounter,
) -> None:
    # The caller's account has an alias of the same name: it must not be used instead.
    created = manager.create_algorand_key("sponsor-native", kind="native", network="localnet")
    account = boto3.client("sts").get_caller_identity()["Account"]
    arn = arn.format(key_id=created.key_id, account=account)
    counter.reset()
    with pytest.raises(exceptions.ConfigurationError) as refused:
        NativeKMSSigner(arn, session=session)
    message = str(refused.value)
    assert f"names account {names.format(account=account)}" in message
    assert f"these credentials are account {account} (aws)" in message
    assert f"Fix: Use credentials of account {arn.split(':')[4]}" in message
    assert counter.by_operation() == {"sts.GetCallerIdentity": 1}  # nothing else asked


def test_native_signer_refuses_a_region_name_the_arn_contradicts(
    manager: AlgorandKMSManager,
) -> None:
    created = manager.create_algorand_key("sponsor-native", kind="native", network="localnet")
    arn = boto3.client("kms").describe_key(KeyId=created.key_id)["KeyMetadata"]["Arn"]
    with pytest.raises(exceptions.ConfigurationError, match="is in eu-central-2, but region_n"):
        NativeKMSSigner(arn, region_name="us-east-1")


def test_manager_calls_of_the_original(
    legacy: dict[str, tuple[str, str, str]], ledger: LocalLedger
) -> None:
    private_key, address, _ = legacy[SPONSOR]
    manager = AlgorandKMSManager(region_name="eu-central-2")
    txn = payments(address, ledger, 1)[0]
    assert manager.get_address(SPONSOR) == address
    assert same_bytes(manager.sign_transaction(SPONSOR, txn), sdk_signed(txn, private_key))
    with pytest.raises(exceptions.PrivateKeyExportError) as refused:
        manager.get_private_key(SPONSOR)
    assert private_key not in str(refused.value)


def test_the_tombstones_live_in_compat_only() -> None:
    # The library's own manager has no legacy names; the compat one adds them to it.
    from confio_kms.lifecycle.manager import AlgorandKMSManager as Manager

    assert issubclass(AlgorandKMSManager, Manager)
    assert not hasattr(Manager, "get_private_key")
    assert "dry_run" not in inspect.signature(Manager.rotate_key).parameters


def test_region_of_classes_built_in_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert KMSSigner(SPONSOR).region_name == "eu-central-2"  # the guide's default
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # where the process runs
    assert KMSSigner(SPONSOR).region_name == "eu-central-2"  # not where the keys are
    monkeypatch.setenv("KMS_REGION", "eu-west-1")
    assert AlgorandKMSManager().region_name == "eu-west-1"
    with override_settings(KMS_REGION="ap-southeast-2"):
        assert KMSSigner(SPONSOR).region_name == "ap-southeast-2"
        assert KMSSigner(SPONSOR, region_name="eu-central-1").region_name == "eu-central-1"
    with (
        override_settings(KMS_REGION="Zurich"),
        pytest.raises(exceptions.ConfigurationError, match=r"settings\.KMS_REGION.*is invalid"),
    ):
        KMSSigner(SPONSOR)
