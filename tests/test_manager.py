"""AlgorandKMSManager against the local AWS endpoint: storage layout, refusal to
overwrite, rollback, listing (legacy keys included), deletion and its undo."""

from __future__ import annotations

import boto3
import pytest
from algosdk import account, mnemonic, transaction

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.common import exceptions
from confio_kms.sandbox import LocalLedger

from . import legacy_layout
from .helpers import (
    RequestCounter,
    inject_error,
    key_count,
    kms_tags,
    new_account,
    same_bytes,
    sdk_signed,
)

ALIAS = "confio-testnet-sponsor"
PATH = f"/confio/algorand/{ALIAS}/private-key"


def test_create_stores_the_documented_layout(
    manager: AlgorandKMSManager, counter: RequestCounter
) -> None:
    created = manager.create_algorand_key(ALIAS, "sponsor", network="testnet")
    key_id, address, backup = created

    assert account.address_from_private_key(mnemonic.to_private_key(backup)) == address
    kms = boto3.client("kms")
    metadata = kms.describe_key(KeyId=f"alias/{ALIAS}")["KeyMetadata"]
    assert metadata["KeyId"] == key_id
    assert metadata["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert metadata["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert metadata["Description"] == "sponsor"
    assert kms_tags(key_id) == {
        "AlgorandAddress": address,
        "AlgorandNetwork": "testnet",
        "ManagedBy": "confio-kms",
        "CreationState": "complete",  # marked pending at CreateKey (lifecycle.recovery)
    }
    ssm = boto3.client("ssm")
    parameter = ssm.get_parameter(Name=PATH, WithDecryption=True)["Parameter"]
    assert parameter["Type"] == "SecureString"
    assert parameter["Value"] == mnemonic.to_private_key(backup)
    described = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [PATH]}])[
        "Parameters"
    ][0]
    assert described["KeyId"] == key_id
    resource_tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=PATH)
    assert {"Key": "AlgorandAddress", "Value": address} in resource_tags["TagList"]
    # Two existence checks, then CreateKey, CreateAlias, PutParameter, and the one
    # request crash consistency adds: TagResource CreationState=complete.
    assert counter.by_operation() == {
        "kms.DescribeKey": 1,
        "ssm.GetParameter": 1,
        "kms.CreateKey": 1,
        "kms.CreateAlias": 1,
        "ssm.PutParameter": 1,
        "kms.TagResource": 1,
    }


def test_created_key_never_shows_its_mnemonic(manager: AlgorandKMSManager) -> None:
    created = manager.create_algorand_key(f"alias/{ALIAS}")
    backup = created.backup_mnemonic

    assert len(created) == 3 and created[2] == backup
    for text in (repr(created), str(created), f"{created}"):
        assert backup not in text
        assert text.split("backup_mnemonic=")[1] == "<hidden>)"
        assert created.address in text


def test_import_keeps_the_account(manager: AlgorandKMSManager) -> None:
    private_key, address = new_account()

    key_id, imported = manager.import_existing_key(
        ALIAS, "  " + mnemonic.from_private_key(private_key).upper() + "\n"
    )

    assert imported == address
    assert kms_tags(key_id)["AlgorandAddress"] == address
    assert manager.get_address(ALIAS) == address


@pytest.mark.parametrize(
    "phrase, reason",
    [
        ("abandon " * 24, "has 24"),
        ("zzzz " + "abandon " * 24, "Word 1 "),
        (None, "must be a string"),
    ],
)
def test_bad_mnemonic_is_refused_before_any_request(
    manager: AlgorandKMSManager, counter: RequestCounter, phrase: str, reason: str
) -> None:
    with pytest.raises(exceptions.InvalidMnemonicError, match=reason):
        manager.import_existing_key(ALIAS, phrase)
    assert counter.total == 0


def test_bad_checksum_is_refused_and_not_echoed(
    manager: AlgorandKMSManager, counter: RequestCounter
) -> None:
    words = mnemonic.from_private_key(new_account()[0]).split()
    words[3], words[4] = words[4], words[3]
    swapped = " ".join(words)
    if words[3] == words[4]:  # pragma: no cover - astronomically unlikely
        pytest.skip("identical neighbouring words")

    with pytest.raises(ValueError) as raised:
        manager.import_existing_key(ALIAS, swapped)

    assert isinstance(raised.value, exceptions.InvalidMnemonicError)
    # The whole message is fixed text: nothing of the phrase can be in it.
    assert str(raised.value) == (
        "The mnemonic's checksum word does not match the other 24 words. "
        "Fix: A word is mistyped or out of order: compare the phrase with your backup."
    )
    assert raised.value.__context__ is None and raised.value.__cause__ is None
    assert counter.total == 0


def test_existing_alias_is_refused_and_nothing_changes(manager: AlgorandKMSManager) -> None:
    _, address, _ = manager.create_algorand_key(ALIAS)
    before = boto3.client("ssm").get_parameter(Name=PATH, WithDecryption=True)["Parameter"]
    keys_before = key_count()

    with pytest.raises(exceptions.AliasExistsError, match="nothing was changed"):
        manager.create_algorand_key(ALIAS)
    with pytest.raises(exceptions.AlreadyExistsError):
        manager.import_existing_key(ALIAS, mnemonic.from_private_key(new_account()[0]))

    after = boto3.client("ssm").get_parameter(Name=PATH, WithDecryption=True)["Parameter"]
    assert (after["Value"], after["Version"]) == (before["Value"], before["Version"])
    assert key_count() == keys_before
    assert manager.get_address(ALIAS) == address


def test_existing_parameter_is_refused_and_nothing_is_created(
    manager: AlgorandKMSManager,
) -> None:
    boto3.client("ssm").put_parameter(Name=PATH, Value="left over", Type="SecureString")
    keys_before = key_count()

    with pytest.raises(exceptions.ParameterExistsError, match=PATH):
        manager.create_algorand_key(ALIAS)

    assert key_count() == keys_before
    assert boto3.client("kms").list_aliases()["Aliases"] == [] or all(
        a["AliasName"] != f"alias/{ALIAS}" for a in boto3.client("kms").list_aliases()["Aliases"]
    )


def test_failed_parameter_write_rolls_back(session: boto3.Session) -> None:
    inject_error(session, "ssm", "PutParameter", "AccessDeniedException", "not allowed")
    manager = AlgorandKMSManager(session=session)

    with pytest.raises(exceptions.ProvisioningError) as raised:
        manager.create_algorand_key(ALIAS)

    message = str(raised.value)
    assert "failed at PutParameter" in message
    assert f"alias alias/{ALIAS} removed" in message
    assert "scheduled for deletion in 7 days" in message
    assert "ssm:PutParameter" in message  # the fix names the IAM action
    assert raised.value.cause and "AccessDeniedException" in raised.value.cause
    # The chain would carry PutParameter's frames (the private key): it is cut.
    assert raised.value.__cause__ is None and raised.value.__context__ is None
    kms = boto3.client("kms")
    assert all(a["AliasName"] != f"alias/{ALIAS}" for a in kms.list_aliases()["Aliases"])
    (key,) = kms.list_keys()["Keys"]
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingDeletion"


def test_failed_alias_creation_rolls_back_the_key(session: boto3.Session) -> None:
    inject_error(session, "kms", "CreateAlias", "LimitExceededException", "too many aliases")
    manager = AlgorandKMSManager(session=session)

    with pytest.raises(exceptions.ProvisioningError, match="failed at CreateAlias") as raised:
        manager.create_algorand_key(ALIAS)

    assert "LimitExceededException" in str(raised.value)
    kms = boto3.client("kms")
    (key,) = kms.list_keys()["Keys"]
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
    with pytest.raises(boto3.client("ssm").exceptions.ParameterNotFound):
        boto3.client("ssm").get_parameter(Name=PATH)


def _legacy_key(name: str) -> tuple[str, str]:
    """A key exactly as the original kms_manager.py made it (tests/legacy_layout.py)."""
    private_key, address, _ = legacy_layout.create(name)
    return private_key, address


def test_legacy_keys_are_listed_and_sign_unchanged(
    manager: AlgorandKMSManager, session: boto3.Session, ledger: LocalLedger
) -> None:
    private_key, address = _legacy_key("confio-testnet-sponsor")
    txn = transaction.PaymentTxn(address, ledger.suggested_params(), address, 0)
    ledger.fund(address, 1_000_000)

    signed = KMSSigner("confio-testnet-sponsor", session=session).sign_transaction(txn)

    assert same_bytes(signed, sdk_signed(txn, private_key))
    ledger.evaluate([signed])
    (record,) = manager.list_keys()
    assert (record.name, record.address, record.network, record.managed) == (
        "confio-testnet-sponsor",
        address,
        "testnet",
        False,
    )


def test_list_keys_reports_every_algorand_key_and_nothing_else(
    manager: AlgorandKMSManager,
) -> None:
    created = manager.create_algorand_key("b-sponsor", network="mainnet")
    _, legacy_address = _legacy_key("a-legacy")
    kms = boto3.client("kms")
    stranger = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/unrelated", TargetKeyId=stranger)
    kms.create_key()  # no alias at all

    records = manager.list_keys()

    assert [r.name for r in records] == ["a-legacy", "b-sponsor"]
    legacy, managed = records
    assert legacy.address == legacy_address and not legacy.managed
    assert managed.key_id == created.key_id
    assert managed.address == created.address
    assert (managed.network, managed.key_state, managed.kind) == ("mainnet", "Enabled", "envelope")
    assert managed.managed and managed.creation_date is not None


def test_delete_keeps_the_parameter_and_cancel_restores_signing(
    manager: AlgorandKMSManager, session: boto3.Session, ledger: LocalLedger
) -> None:
    _, address, _ = manager.create_algorand_key(ALIAS)
    signer = KMSSigner(ALIAS, session=session)
    txn = transaction.PaymentTxn(address, ledger.suggested_params(), address, 0)
    before = signer.sign_transaction(txn)

    deletion_date = manager.delete_key(ALIAS, pending_window_days=7)

    assert deletion_date is not None
    record = manager.get_key(ALIAS)
    assert record.key_state == "PendingDeletion"
    assert boto3.client("ssm").get_parameter(Name=PATH)["Parameter"]["Name"] == PATH

    manager.cancel_key_deletion(ALIAS)

    assert manager.get_key(ALIAS).key_state == "Enabled"
    after = signer.sign_transaction(txn)
    assert same_bytes(after, before)  # Ed25519 is deterministic: the same key signed
    ledger.fund(address, 1_000_000)
    ledger.evaluate([after])


@pytest.mark.parametrize("days", [6, 31, "30", 7.5])
def test_delete_window_outside_aws_limits_is_refused(
    manager: AlgorandKMSManager, counter: RequestCounter, days: object
) -> None:
    with pytest.raises(exceptions.ConfigurationError, match="from 7 to 30"):
        manager.delete_key(ALIAS, pending_window_days=days)  # type: ignore[arg-type]
    assert counter.total == 0


@pytest.mark.parametrize("bad", ["", "has space", "../other", "a/b", "alias/", "-lead", "x" * 129])
def test_malformed_alias_is_refused_before_any_request(
    manager: AlgorandKMSManager, counter: RequestCounter, bad: str
) -> None:
    with pytest.raises(exceptions.InvalidAliasError, match="letters, digits"):
        manager.create_algorand_key(bad)
    assert counter.total == 0


def test_unknown_network_is_refused(manager: AlgorandKMSManager) -> None:
    with pytest.raises(exceptions.InvalidNetworkError, match="testnet, mainnet, betanet, localnet"):
        manager.create_algorand_key(ALIAS, network="devnet")


def test_access_denied_names_the_iam_action_and_resource(session: boto3.Session) -> None:
    inject_error(session, "kms", "DescribeKey", "AccessDeniedException", "User is not authorized")
    manager = AlgorandKMSManager(session=session)

    with pytest.raises(PermissionError) as raised:
        manager.get_address(ALIAS)

    assert isinstance(raised.value, exceptions.AccessDeniedError)
    assert f"kms:DescribeKey on alias/{ALIAS}" in str(raised.value)
    assert "Grant the IAM action" in str(raised.value)
