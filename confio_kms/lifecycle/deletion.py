"""Deleting a key: the decision, the consent it needs, the schedule and its cancel.

``plan_deletion`` reads the key and refuses what must not be deleted as asked (a
waiting period outside AWS's limits, a key already scheduled, a native key without
consent that it has no backup); ``schedule_deletion`` carries a plan out;
``cancel_deletion`` restores a scheduled key. ``kms_delete`` adds only its prompt and
its output, so code deleting keys gets the same rules as the operator.
"""

from __future__ import annotations

import re
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
# A KMS key id: a UUID, or a multi-Region key's mrk- followed by 32 hex digits.
_KEY_ID = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}|mrk-[0-9a-f]{32}")


@dataclass(frozen=True)
class DeletionPlan:
    """A deletion that passed the rules and awaits ``schedule_deletion``: nothing changed yet."""

    record: KeyRecord
    days: int
    configured: bool
    """True when the alias is one the settings name: the app stops signing with it."""
    status: str = ""
    """For an unaliased key, deleted by key id: ``retired``, ``orphaned`` or ``unaliased``."""

    @property
    def native(self) -> bool:
        return self.record.kind == keys.NATIVE

    @property
    def action(self) -> str:
        """What scheduling it does, in one sentence without its period (for a prompt)."""
        r = self.record
        if self.status:
            served = f", alias/{r.name} before" if r.name else ""
            return (
                f"Schedule the deletion of the {self.status} {r.kind} key {r.key_id} "
                f"(account {r.address or 'unknown'}{served}) in {self.days} days"
            )
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
    status: str = ""
    """Set when the key was deleted by key id (see ``DeletionPlan.status``)."""

    @property
    def native(self) -> bool:
        return self.record.kind == keys.NATIVE


@dataclass(frozen=True)
class CancelledDeletion:
    """A scheduled deletion cancelled: the key is enabled and signs as before."""

    record: KeyRecord
    status: str = ""


def is_key_id(value: str) -> bool:
    """Whether ``value`` names a key by id or ARN (an alias name never looks so)."""
    last = value.rsplit("/", 1)[-1]
    return value.startswith("arn:aws") or bool(_KEY_ID.fullmatch(last))


def plan_key_id_deletion(
    manager: AlgorandKMSManager,
    key_id: str,
    days: int = MAX_PENDING_DAYS,
    *,
    no_backup: bool = False,
) -> DeletionPlan:
    """``plan_deletion`` for a key of this library that no alias names (retired by a
    rotation, orphaned by an interrupted creation), by key id; same rules."""
    _check_days(days)
    key = manager.unaliased().get(key_id)
    record = key.record
    if record.key_state == PENDING_DELETION:
        when = record.deletion_date.isoformat() if record.deletion_date else "its date"
        raise exc.KeyStateError(
            f"Key {record.key_id} is already scheduled for deletion on {when}; nothing was "
            "changed.",
            fix=f"to keep it, run `manage.py kms_delete {record.key_id} --cancel`.",
        )
    if record.kind == keys.NATIVE and not no_backup:
        raise exc.ConfigurationError(
            f"Key {record.key_id} is a native key: its private key exists only in KMS, so "
            "once deleted nothing can ever sign with it again; nothing was changed.",
            fix="to delete it anyway, pass --i-understand-there-is-no-backup (kms_delete).",
        )
    return DeletionPlan(record, days, configured=False, status=key.status)


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
    _check_days(days)
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


def _check_days(days: int) -> None:
    # A bool is an int to Python, but no number of days.
    whole = isinstance(days, int) and not isinstance(days, bool)
    if not whole or not MIN_PENDING_DAYS <= days <= MAX_PENDING_DAYS:
        raise exc.ConfigurationError(
            f"The waiting period must be from {MIN_PENDING_DAYS} to {MAX_PENDING_DAYS} days "
            f"(AWS's limits), not {days!r}; nothing was changed.",
            fix=f"pass --days (kms_delete) or days= from {MIN_PENDING_DAYS} to {MAX_PENDING_DAYS}.",
        )


def schedule_deletion(manager: AlgorandKMSManager, plan: DeletionPlan) -> ScheduledDeletion:
    """Schedule the planned deletion; the key stops signing at once."""
    if plan.status:
        date = manager.unaliased().schedule(plan.record.key_id, plan.days)
        return ScheduledDeletion(plan.record, plan.days, date, plan.status)
    date = manager.delete_key(plan.record.name, pending_window_days=plan.days)
    return ScheduledDeletion(plan.record, plan.days, date)


def cancel_key_id_deletion(manager: AlgorandKMSManager, key_id: str) -> CancelledDeletion:
    """``cancel_deletion`` for an unaliased key of this library, by key id."""
    key = manager.unaliased().get(key_id)
    if key.record.key_state != PENDING_DELETION:
        raise exc.KeyStateError(
            f"Key {key.record.key_id} is not scheduled for deletion (it is "
            f"{key.record.key_state}); nothing was changed.",
            fix="there is nothing to cancel; `manage.py kms_list --all` shows each key's state.",
        )
    manager.unaliased().cancel(key.record.key_id)
    return CancelledDeletion(key.record, key.status)


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
