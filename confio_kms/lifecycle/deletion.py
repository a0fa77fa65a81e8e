"""Deleting a key: the decision, the consent it needs, the schedule and its cancel.

``plan_deletion`` reads the key and refuses what must not be deleted as asked (a
waiting period outside AWS's limits, a key already scheduled, a native key without
consent that it has no backup); ``schedule_deletion`` carries a plan out;
``cancel_deletion`` restores a scheduled key. ``kms_delete`` adds only its prompt and
its output, so code deleting keys gets the same rules as the operator.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from confio_kms.algorand import validation
from confio_kms.algorand.validation import Alias
from confio_kms.common import exceptions as exc
from confio_kms.core import keys
from confio_kms.lifecycle.manager import (
    MAX_PENDING_DAYS,
    MIN_PENDING_DAYS,
    AlgorandKMSManager,
    KeyRecord,
)

PENDING_DELETION = keys.PENDING_DELETION


@dataclass(frozen=True)
class DeletionPlan:
    """A deletion that passed the rules and awaits ``schedule_deletion``: nothing changed yet."""

    record: KeyRecord
    days: int
    configured: bool
    """True when the alias is one the settings name: the app stops signing with it."""

    @property
    def native(self) -> bool:
        return self.record.kind == keys.NATIVE

    @property
    def action(self) -> str:
        """What scheduling it does, in one sentence without its period (for a prompt)."""
        r = self.record
        return (
            f"Schedule the deletion of {Alias(r.name)} ({r.kind} key {r.key_id}, account "
            f"{r.address}, {r.network}) in {self.days} days"
            + (" (a configured alias: the app stops signing with it)" if self.configured else "")
        )


@dataclass(frozen=True)
class ScheduledDeletion:
    """A key scheduled for deletion: it signs no more; ``cancel_deletion`` restores it
    until ``deletion_date`` (None when AWS did not say: ``days`` from now)."""

    record: KeyRecord
    days: int
    deletion_date: datetime | None

    @property
    def native(self) -> bool:
        return self.record.kind == keys.NATIVE


@dataclass(frozen=True)
class CancelledDeletion:
    """A scheduled deletion cancelled: the key is enabled and signs as before."""

    record: KeyRecord


def plan_deletion(
    manager: AlgorandKMSManager,
    key_alias: str,
    days: int = MAX_PENDING_DAYS,
    *,
    no_backup: bool = False,
    configured_aliases: Collection[str] = (),
) -> DeletionPlan:
    """Check that ``key_alias`` may be scheduled for deletion in ``days`` days; changes nothing.

    The name and the waiting period are checked before any request. A native key needs
    ``no_backup=True``: its private key exists only in KMS, so the deletion cannot be
    undone after the waiting period. ``configured_aliases`` are the aliases the app
    signs with (the plan says so).
    """
    name = validation.alias_name(key_alias)
    # A bool is an int to Python, but no number of days.
    whole = isinstance(days, int) and not isinstance(days, bool)
    if not whole or not MIN_PENDING_DAYS <= days <= MAX_PENDING_DAYS:
        raise exc.ConfigurationError(
            f"The waiting period must be from {MIN_PENDING_DAYS} to {MAX_PENDING_DAYS} days "
            f"(AWS's limits), not {days!r}; nothing was changed.",
            fix=f"pass --days (kms_delete) or days= from {MIN_PENDING_DAYS} to {MAX_PENDING_DAYS}.",
        )
    record = manager.get_key(name)
    if record.key_state == PENDING_DELETION:
        when = record.deletion_date.isoformat() if record.deletion_date else "its date"
        raise exc.KeyStateError(
            f"{Alias(name)} is already scheduled for deletion on {when}; nothing was changed.",
            fix=f"to keep it, run kms_delete {name} --cancel (or cancel_deletion()).",
        )
    if record.kind == keys.NATIVE and not no_backup:
        raise exc.ConfigurationError(
            f"{Alias(name)} is a native key: its private key exists only in KMS, so once "
            f"deleted, {record.address} can never be signed for with it again; nothing "
            "was changed.",
            fix="if the account holds anything, rotate it to another key instead "
            f"(kms_rotate --alias {name}: the alias then signs with the new key and the "
            "old one is retired); to delete this key anyway, pass "
            "--i-understand-there-is-no-backup (kms_delete) or no_backup=True.",
        )
    return DeletionPlan(record, days, configured=name in configured_aliases)


def schedule_deletion(manager: AlgorandKMSManager, plan: DeletionPlan) -> ScheduledDeletion:
    """Schedule the planned deletion; the key stops signing at once."""
    date = manager.delete_key(plan.record.name, pending_window_days=plan.days)
    return ScheduledDeletion(plan.record, plan.days, date)


def cancel_deletion(manager: AlgorandKMSManager, key_alias: str) -> CancelledDeletion:
    """Cancel the scheduled deletion of ``key_alias`` and enable the key again.

    A key that is not scheduled for deletion is refused, and nothing changes.
    """
    name = validation.alias_name(key_alias)
    record = manager.get_key(name)
    if record.key_state != PENDING_DELETION:
        raise exc.KeyStateError(
            f"{Alias(name)} is not scheduled for deletion (it is {record.key_state}); "
            "nothing was changed.",
            fix="there is nothing to cancel; check the alias (kms_list shows each key's state).",
        )
    manager.cancel_key_deletion(name)
    return CancelledDeletion(record)
