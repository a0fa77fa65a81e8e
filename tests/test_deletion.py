"""lifecycle.deletion: the rules kms_delete applies, called from code."""

from __future__ import annotations

import boto3
import pytest
from algosdk import transaction

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.common import exceptions
from confio_kms.lifecycle import deletion
from confio_kms.sandbox import LocalLedger

from .helpers import EnvelopeKey, NativeKey, RequestCounter

ALIAS = "confio-testnet-sponsor"


def state(name: str = ALIAS) -> str:
    metadata = boto3.client("kms").describe_key(KeyId=f"alias/{name}")["KeyMetadata"]
    return str(metadata["KeyState"])


@pytest.mark.parametrize("days", [6, 31, True, "7", 7.0])
def test_a_waiting_period_outside_aws_limits_is_refused_before_any_request(
    manager: AlgorandKMSManager, counter: RequestCounter, days: object
) -> None:
    with pytest.raises(exceptions.ConfigurationError, match="from 7 to 30 days"):
        deletion.plan_deletion(manager, ALIAS, days)  # type: ignore[arg-type]
    assert counter.total == 0


def test_plan_changes_nothing_and_schedule_then_cancel_restores_signing(
    manager: AlgorandKMSManager, envelope_key: EnvelopeKey, ledger: LocalLedger
) -> None:
    _, address = envelope_key(ALIAS)

    plan = deletion.plan_deletion(manager, f"alias/{ALIAS}", 7, configured_aliases=[ALIAS])

    assert state() == "Enabled" and plan.record.address == address and not plan.native
    assert plan.action.startswith(f"Schedule the deletion of alias/{ALIAS} (envelope key ")
    assert plan.action.endswith("in 7 days (a configured alias: the app stops signing with it)")
    assert "configured" not in deletion.plan_deletion(manager, ALIAS, 7).action

    scheduled = deletion.schedule_deletion(manager, plan)

    assert state() == "PendingDeletion" and scheduled.days == 7
    assert scheduled.deletion_date == manager.get_key(ALIAS).deletion_date is not None
    with pytest.raises(exceptions.KeyStateError, match=f"already scheduled.*{ALIAS} --cancel"):
        deletion.plan_deletion(manager, ALIAS, 7)

    cancelled = deletion.cancel_deletion(manager, ALIAS)

    assert state() == "Enabled" and cancelled.record.key_id == plan.record.key_id
    signer = KMSSigner(ALIAS)
    ledger.fund(address, 1_000_000)
    ledger.evaluate(
        [
            signer.sign_transaction(
                transaction.PaymentTxn(address, ledger.suggested_params(), address, 0)
            )
        ]
    )


def test_cancel_of_a_key_not_scheduled_is_refused(
    manager: AlgorandKMSManager, envelope_key: EnvelopeKey
) -> None:
    envelope_key(ALIAS)
    with pytest.raises(exceptions.KeyStateError, match=r"not scheduled for deletion .*Enabled"):
        deletion.cancel_deletion(manager, ALIAS)
    assert state() == "Enabled"


def test_a_native_key_needs_consent_that_there_is_no_backup(
    manager: AlgorandKMSManager, native_key: NativeKey
) -> None:
    created = native_key(ALIAS)
    with pytest.raises(exceptions.ConfigurationError, match=r"native key.*no_backup=True"):
        deletion.plan_deletion(manager, ALIAS, 7)
    assert state() == "Enabled"

    plan = deletion.plan_deletion(manager, ALIAS, 7, no_backup=True)
    scheduled = deletion.schedule_deletion(manager, plan)

    assert plan.native and scheduled.native and scheduled.record.address == created.address
    assert state() == "PendingDeletion"


def test_a_missing_alias_is_refused(manager: AlgorandKMSManager) -> None:
    with pytest.raises(exceptions.AliasNotFoundError, match="alias/nothing-here"):
        deletion.plan_deletion(manager, "nothing-here")
    with pytest.raises(exceptions.AliasNotFoundError, match="alias/nothing-here"):
        deletion.cancel_deletion(manager, "nothing-here")
