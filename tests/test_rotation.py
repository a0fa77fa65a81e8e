"""Rotation by rekey on Algorand's ledger evaluator: the address never changes, the
new key signs, the old one is refused, and interruptions resolve safely."""

from __future__ import annotations

import boto3
import pytest
from algosdk import mnemonic, transaction
from algosdk.account import address_from_private_key as address_of
from algosdk.atomic_transaction_composer import (
    AccountTransactionSigner,
    sign_transaction_with_signer,
)

from confio_kms import AlgorandKMSManager, KMSSigner, compat
from confio_kms.common import exceptions
from confio_kms.lifecycle import rotation
from confio_kms.sandbox import LedgerChain, LocalLedger

from .helpers import EnvelopeKey, RequestCounter, inject_error, kms_tags

ALIAS = "acct"


@pytest.fixture
def chain(ledger: LocalLedger) -> LedgerChain:
    return LedgerChain(ledger)


@pytest.fixture
def account(envelope_key: EnvelopeKey, ledger: LocalLedger) -> tuple[str, str]:
    """An envelope key's account, funded; returns (its original private key, address)."""
    private_key, address = envelope_key(ALIAS)
    ledger.fund(address, 10_000_000)
    return private_key, address


def pay(signer: KMSSigner, ledger: LocalLedger, amount: int) -> transaction.SignedTransaction:
    txn = transaction.PaymentTxn(signer.address, ledger.suggested_params(), signer.address, amount)
    return signer.sign_transaction(txn)


def test_rotation_keeps_the_address_and_moves_authority(
    manager: AlgorandKMSManager,
    account: tuple[str, str],
    ledger: LocalLedger,
    chain: LedgerChain,
    session: boto3.Session,
) -> None:
    old_private_key, address = account
    signer = KMSSigner(ALIAS, session=session)
    ledger.evaluate([pay(signer, ledger, 1)])  # before: the old key signs
    old_key_id = manager.get_key(ALIAS).key_id

    result = manager.rotate_key(ALIAS, chain)

    assert (result.state, result.account, result.previous_key_id) == (
        "completed",
        address,
        old_key_id,
    )
    assert result.auth_address != address and chain.auth_address(address) == result.auth_address
    assert signer.address == address and signer.signer_address == result.auth_address
    signed = pay(signer, ledger, 2)
    assert signed.authorizing_address == result.auth_address
    ledger.evaluate([signed])
    stale = transaction.PaymentTxn(address, ledger.suggested_params(), address, 3)
    with pytest.raises(Exception, match="should have been authorized by"):
        ledger.evaluate(
            [sign_transaction_with_signer(stale, AccountTransactionSigner(old_private_key))]
        )
    new_tags = kms_tags(result.key_id)
    assert new_tags["AlgorandAddress"] == address
    assert new_tags["AlgorandAuthAddress"] == result.auth_address
    assert (new_tags["PreviousKeyId"], new_tags["RotationHistory"]) == (old_key_id, old_key_id)
    assert (
        new_tags["RotationState"] == "active" and kms_tags(old_key_id)["RotationState"] == "retired"
    )
    (record,) = manager.list_keys()
    assert (record.name, record.address, record.auth_address) == (
        ALIAS,
        address,
        result.auth_address,
    )


def test_envelope_to_native_then_a_second_rotation(
    manager: AlgorandKMSManager,
    account: tuple[str, str],
    ledger: LocalLedger,
    chain: LedgerChain,
    session: boto3.Session,
) -> None:
    _, address = account
    first = manager.rotate_key(ALIAS, chain, native=True)
    signer = KMSSigner(ALIAS, session=session)
    assert first.kind == "native" and signer.address == address
    ledger.evaluate([pay(signer, ledger, 1)])

    second = manager.rotate_key(ALIAS, chain)

    assert second.kind == "envelope" and second.auth_address != first.auth_address
    assert chain.auth_address(address) == second.auth_address
    ledger.evaluate([pay(signer, ledger, 2)])
    history = kms_tags(second.key_id)["RotationHistory"].split()
    assert history == [first.previous_key_id, first.key_id]
    # The native key of the first rotation no longer signs for the account.
    first_key = KMSSigner(f"{ALIAS}-first", session=session)
    boto3.client("kms").create_alias(AliasName=f"alias/{ALIAS}-first", TargetKeyId=first.key_id)
    with pytest.raises(Exception, match="should have been authorized by"):
        ledger.evaluate([pay(first_key, ledger, 3)])


def test_sign_only_keeps_the_old_key_until_the_rekey_lands_then_resumes(
    manager: AlgorandKMSManager, account: tuple[str, str], ledger: LocalLedger, chain: LedgerChain
) -> None:
    pending = manager.rotate_key(ALIAS, chain, sign_only=True)

    assert pending.account == account[1] and pending.state == "pending" and pending.signed_rekey
    signer = KMSSigner(ALIAS)
    ledger.evaluate([pay(signer, ledger, 1)])  # still the old key, no authorizer
    rekey = rotation.decode_signed(pending.signed_rekey)
    assert (
        rekey.transaction.rekey_to == pending.auth_address
        and rekey.get_txid() == pending.rekey_txid
    )
    chain.submit(rekey)  # an external submitter sends it

    finished = manager.rotate_key(ALIAS, chain)

    assert finished.resumed and finished.key_id == pending.key_id
    assert len(boto3.client("kms").list_keys()["Keys"]) == 2  # no third key made
    ledger.evaluate([pay(signer, ledger, 2)])


def test_unconfirmed_rekey_blocks_until_it_expires_then_rolls_back(
    manager: AlgorandKMSManager, account: tuple[str, str], ledger: LocalLedger, chain: LedgerChain
) -> None:
    pending = manager.rotate_key(ALIAS, chain, sign_only=True)

    with pytest.raises(exceptions.RotationError, match="can still be confirmed until round 1000"):
        manager.rotate_key(ALIAS, chain)
    ledger.evaluate([pay(KMSSigner(ALIAS), ledger, 1)])  # the alias still signs

    chain.round = 1001  # the signed rekey can no longer be confirmed
    result = manager.rotate_key(ALIAS, chain)

    assert result.rolled_back_key_id == pending.key_id and result.key_id != pending.key_id
    state = boto3.client("kms").describe_key(KeyId=pending.key_id)["KeyMetadata"]["KeyState"]
    assert state == "PendingDeletion"
    ledger.evaluate([pay(KMSSigner(ALIAS), ledger, 2)])


class FailingChain(LedgerChain):
    def submit(self, signed: object) -> int:
        raise exceptions.AlgodError("algod at http://node failed send_transaction.")


def test_failed_submission_leaves_the_alias_on_the_old_key(
    manager: AlgorandKMSManager, account: tuple[str, str], ledger: LocalLedger
) -> None:
    with pytest.raises(exceptions.RotationError, match="still signs with the old key"):
        manager.rotate_key(ALIAS, FailingChain(ledger))
    signed = pay(KMSSigner(ALIAS), ledger, 1)
    assert signed.authorizing_address is None
    ledger.evaluate([signed])


def test_interrupted_alias_switch_resumes(
    account: tuple[str, str], ledger: LocalLedger, chain: LedgerChain, session: boto3.Session
) -> None:
    inject_error(session, "kms", "UpdateAlias", "InternalFailure", "boom", status=400)
    with pytest.raises(exceptions.AWSError, match="UpdateAlias"):
        AlgorandKMSManager(session=session).rotate_key(ALIAS, chain)
    # The rekey landed, the switch did not: running again finishes the rotation.

    result = AlgorandKMSManager().rotate_key(ALIAS, chain)

    assert result.resumed and chain.auth_address(account[1]) == result.auth_address
    ledger.evaluate([pay(KMSSigner(ALIAS), ledger, 1)])


def test_recovery_drill_for_a_rekeyed_account(
    manager: AlgorandKMSManager, account: tuple[str, str], ledger: LocalLedger, chain: LedgerChain
) -> None:
    """KMS unavailable after a rotation: the current authorizing key's backup signs."""
    from django.test import override_settings

    from confio_kms.sponsor import AlgorandSponsorService

    _, address = account
    result = manager.rotate_key(ALIAS, chain)
    assert result.backup_mnemonic and result.backup_mnemonic not in repr(result)
    with override_settings(
        USE_KMS_SIGNING=False,
        ALGORAND_ADMIN_MNEMONIC=result.backup_mnemonic,
        ALGORAND_SPONSOR_ADDRESS=address,
    ):
        service = AlgorandSponsorService()
    assert service.sponsor_address == address
    txn = transaction.PaymentTxn(address, ledger.suggested_params(), address, 0)
    signed = service.sign_transaction(txn)
    assert signed.authorizing_address == result.auth_address
    ledger.evaluate([signed])


def test_switch_across_key_types_interrupted_after_the_alias_was_deleted(
    account: tuple[str, str], ledger: LocalLedger, chain: LedgerChain
) -> None:
    """KMS moves aliases only between keys of one type: envelope to native deletes and
    re-creates the alias. A failure in between is finished by running again."""
    session = boto3.Session()
    inject_error(session, "kms", "CreateAlias", "InternalFailure", "boom", only_call=2)
    with pytest.raises(exceptions.AWSError, match="CreateAlias"):
        AlgorandKMSManager(session=session).rotate_key(ALIAS, chain, native=True)
    with pytest.raises(exceptions.AliasNotFoundError):
        _ = KMSSigner(ALIAS).address

    result = AlgorandKMSManager().rotate_key(ALIAS, chain)

    assert result.resumed and result.kind == "native"
    ledger.evaluate([pay(KMSSigner(ALIAS), ledger, 1)])


def test_interrupted_cleanup_never_retires_the_active_key(
    account: tuple[str, str], ledger: LocalLedger, chain: LedgerChain
) -> None:
    session = boto3.Session()
    inject_error(session, "kms", "DeleteAlias", "InternalFailure", "boom", only_call=1)
    with pytest.raises(exceptions.AWSError, match="DeleteAlias"):
        AlgorandKMSManager(session=session).rotate_key(ALIAS, chain)

    result = AlgorandKMSManager().rotate_key(ALIAS, chain)

    assert result.resumed
    assert kms_tags(result.key_id)["RotationState"] == "active"
    assert kms_tags(result.previous_key_id)["RotationState"] == "retired"
    ledger.evaluate([pay(KMSSigner(ALIAS), ledger, 1)])


def test_a_stray_staging_alias_is_not_touched(
    manager: AlgorandKMSManager, account: tuple[str, str], chain: LedgerChain
) -> None:
    kms = boto3.client("kms")
    stray = kms.create_key(Tags=[{"TagKey": "AlgorandAddress", "TagValue": account[1]}])[
        "KeyMetadata"
    ]["KeyId"]
    kms.create_alias(AliasName=f"alias/{ALIAS}--pending-rotation", TargetKeyId=stray)

    with pytest.raises(exceptions.RotationError, match="not a pending rotation"):
        manager.rotate_key(ALIAS, chain)
    assert kms.describe_key(KeyId=stray)["KeyMetadata"]["KeyState"] == "Enabled"
    with pytest.raises(exceptions.InvalidAliasError, match="reserves"):
        manager.create_algorand_key("x--pending-rotation")


def test_backup_is_delivered_before_the_submission(
    manager: AlgorandKMSManager, account: tuple[str, str], ledger: LocalLedger
) -> None:
    delivered: list[tuple[str, str]] = []
    with pytest.raises(exceptions.RotationError):
        manager.rotate_key(
            ALIAS, FailingChain(ledger), on_backup=lambda m, a: delivered.append((m, a))
        )
    ((phrase, key_address),) = delivered
    assert address_of(mnemonic.to_private_key(phrase)) == key_address


def test_a_chain_of_another_network_decides_nothing(
    manager: AlgorandKMSManager, account: tuple[str, str], ledger: LocalLedger, chain: LedgerChain
) -> None:
    from confio_kms.algorand import networks

    pending = manager.rotate_key(ALIAS, chain, sign_only=True)

    class MainnetChain(LedgerChain):
        def suggested_params(self) -> transaction.SuggestedParams:
            sp = super().suggested_params()
            sp.gh, sp.gen = networks.GENESIS_HASH["mainnet"], networks.GENESIS_ID["mainnet"]
            return sp

    wrong = MainnetChain(ledger)
    wrong.round = 10**9  # it would say the pending rekey expired
    with pytest.raises(exceptions.PolicyViolationError, match="for mainnet"):
        manager.rotate_key(ALIAS, wrong)
    kms = boto3.client("kms")
    assert kms.describe_key(KeyId=pending.key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.describe_key(KeyId=f"alias/{ALIAS}--pending-rotation")["KeyMetadata"]["KeyId"] == (
        pending.key_id
    )


def test_rotation_tags_fit_ssm_tag_values(
    manager: AlgorandKMSManager, account: tuple[str, str], chain: LedgerChain
) -> None:
    import re

    manager.rotate_key(ALIAS, chain)
    second = manager.rotate_key(ALIAS, chain)
    path = kms_tags(second.key_id)["SSMParameter"]
    listed = boto3.client("ssm").list_tags_for_resource(ResourceType="Parameter", ResourceId=path)
    # botocore's SSM model: ^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$ (moto does not check it)
    for tag in listed["TagList"]:
        assert re.fullmatch(r"[\w\s.:/=+\-@]*", tag["Value"]), tag
    assert len(kms_tags(second.key_id)["RotationHistory"].split()) == 2


def test_failed_rotation_keeps_the_new_mnemonic_out_of_traceback_frames(
    manager: AlgorandKMSManager, account: tuple[str, str], ledger: LocalLedger
) -> None:
    from .test_secret_hygiene import frame_locals

    delivered: list[str] = []
    with pytest.raises(exceptions.RotationError) as raised:
        manager.rotate_key(ALIAS, FailingChain(ledger), on_backup=lambda m, a: delivered.append(m))
    recorded = frame_locals(raised.value)
    assert len(recorded) > 200 and delivered and delivered[0] not in recorded


# --- the dry run: plan_rotation ------------------------------------------------------------

READS = {"kms.DescribeKey", "kms.ListResourceTags"}


def test_plan_reads_only_and_describes_what_the_rotation_signs(
    manager: AlgorandKMSManager,
    account: tuple[str, str],
    chain: LedgerChain,
    counter: RequestCounter,
) -> None:
    counter.reset()

    plan = manager.plan_rotation(ALIAS, chain, native=True)

    assert set(counter.calls) <= READS, counter.by_operation()  # no Decrypt, Sign or write
    assert (plan.action, plan.account, plan.new_kind) == ("rotate", account[1], "native")
    assert len(boto3.client("kms").list_keys()["Keys"]) == 1
    pending = manager.rotate_key(ALIAS, chain, native=True, sign_only=True)
    signed = rotation.decode_signed(pending.signed_rekey).transaction
    # The plan's transaction is the one signed, except the new key's address.
    assert plan.rekey == {
        "type": "pay",
        "sender": signed.sender,
        "receiver": signed.receiver,
        "amount": signed.amt,
        "fee": signed.fee,
        "first_valid": signed.first_valid_round,
        "last_valid": signed.last_valid_round,
        "genesis_id": signed.genesis_id,
        "note": signed.note.decode(),
        "rekey_to": None,
        "signed_by": account[1],
    }


def test_plan_follows_a_pending_rotation_as_the_run_would(
    manager: AlgorandKMSManager, account: tuple[str, str], chain: LedgerChain
) -> None:
    pending = manager.rotate_key(ALIAS, chain, sign_only=True)
    # While the signed rekey can land: refused, as the rotation itself is.
    with pytest.raises(exceptions.RotationError, match="can still be confirmed"):
        manager.plan_rotation(ALIAS, chain)

    chain.round = 1001
    expired = manager.plan_rotation(ALIAS, chain)
    assert expired.action == "rotate" and f"key {pending.key_id} for deletion" in expired.steps[0]

    chain.round = 1
    chain.submit(rotation.decode_signed(pending.signed_rekey))
    confirmed = manager.plan_rotation(ALIAS, chain)
    assert confirmed.action == "switch" and confirmed.rekey == {}
    assert boto3.client("kms").describe_key(KeyId=f"alias/{ALIAS}")["KeyMetadata"]["KeyId"] != (
        pending.key_id
    )  # planning switched nothing


def test_old_dry_run_keyword_is_refused_not_reinterpreted(
    session: boto3.Session, account: tuple[str, str], chain: LedgerChain
) -> None:
    manager = compat.AlgorandKMSManager(session=session)  # where the old keyword lives
    with pytest.raises(exceptions.ConfigurationError, match=r"plan_rotation.*sign_only=True"):
        manager.rotate_key(ALIAS, chain, dry_run=True)
    assert len(boto3.client("kms").list_keys()["Keys"]) == 1
    # Passing the old default explicitly changes nothing.
    assert manager.rotate_key(ALIAS, chain, dry_run=False, sign_only=True).state == "pending"
