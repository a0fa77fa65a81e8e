"""The Django guard: pauses and limit counters in the project's database.

``DatabaseGuard`` is the ``confio_kms.core.guard.Guard`` the settings give every signer
(``CONFIO_KMS_GUARD``, on by default). Every signing call reads the key's pause row
(one indexed SELECT, no cache), so a ``kms_pause`` is seen by the next call of every
process sharing the database. A reservation increments one ``LimitUsage`` row per
limit of the current window with a conditional UPDATE (``used = used + n WHERE used
<= limit - n``): the database applies it atomically, on SQLite (one writer at a time)
as on PostgreSQL (the row's lock), so concurrent calls can never together pass a
limit. All of a call's limits are taken in one transaction: one refused rolls back
the others. A database error refuses the call (``GuardUnavailableError``): a treasury
guard that cannot read its limits must not sign unguarded.

With ``ATOMIC_REQUESTS`` (or any caller's open transaction), a reservation is part of
the caller's transaction: it commits or rolls back with it.
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import DatabaseError, transaction
from django.db.models import F

from confio_kms.algorand.validation import Alias
from confio_kms.common import exceptions as exc
from confio_kms.core import audit
from confio_kms.core.guard import Demand, refusal
from confio_kms.core.options import AuditSink


def _unavailable(error: DatabaseError) -> exc.GuardUnavailableError:
    return exc.GuardUnavailableError(
        "The key's pause and limits could not be read, so nothing was signed.",
        cause=f"{type(error).__name__}: {error}",
        fix="Check the database connection, and run `manage.py migrate confio_kms`.",
    )


class _Refused(Exception):
    """Rolls back a reservation's transaction when one of its limits is full."""

    def __init__(self, demand: Demand) -> None:
        self.demand = demand


@dataclass
class DatabaseReservation:
    """What one call took of its key's limits; ``release`` gives it back once."""

    guard: DatabaseGuard
    name: str
    start: int
    demands: Sequence[Demand]
    done: bool = False

    def commit(self) -> None:
        self.done = True

    def release(self) -> None:
        if self.done:
            return
        self.done = True
        try:
            with transaction.atomic(using=self.guard.using):
                for demand in self.demands:
                    self.guard.rows(self.name, demand, self.start).update(
                        used=F("used") - demand.amount
                    )
        except DatabaseError:  # given back at the window's end anyway: over-counts, never under
            audit.logger.error("a reservation of %s could not be given back", self.name)


@dataclass(frozen=True)
class DatabaseGuard:
    """Pauses and counters in the database ``using`` (a ``DATABASES`` alias)."""

    using: str = "default"

    def paused(self, name: str) -> str | None:
        from confio_kms.models import KeyPause

        try:
            reasons = KeyPause.objects.using(self.using).filter(alias=name)
            reason: str | None = reasons.values_list("reason", flat=True).first()
        except DatabaseError as error:
            raise _unavailable(error) from None
        return reason

    def rows(self, name: str, demand: Demand, start: int):  # type: ignore[no-untyped-def]
        from confio_kms.models import LimitUsage

        return LimitUsage.objects.using(self.using).filter(
            alias=name, limit=demand.limit, subject=demand.subject, window_start=start
        )

    def reserve(self, name: str, window: int, demands: Sequence[Demand]) -> DatabaseReservation:
        start = int(time.time()) // window * window
        try:
            with transaction.atomic(using=self.using):
                for demand in demands:
                    if not self._take(name, window, demand, start):
                        raise _Refused(demand)
        except _Refused as refused:
            raise refusal(name, refused.demand, window, self._used(name, refused.demand, start),
                          start) from None  # fmt: skip
        except DatabaseError as error:
            raise _unavailable(error) from None
        return DatabaseReservation(self, name, start, demands)

    def _take(self, name: str, window: int, demand: Demand, start: int) -> bool:
        """Add ``demand`` to its row if it fits; the row is made on first use."""
        from confio_kms.models import LimitUsage

        room = demand.maximum - demand.amount
        if room < 0:
            return False
        rows = self.rows(name, demand, start).filter(used__lte=room)
        if rows.update(used=F("used") + demand.amount):
            return True
        new = LimitUsage(alias=name, limit=demand.limit, subject=demand.subject,
                         window_start=start, window=window)  # fmt: skip
        # Another call may make the same row meanwhile: the unique constraint keeps one.
        LimitUsage.objects.using(self.using).bulk_create([new], ignore_conflicts=True)
        return bool(rows.update(used=F("used") + demand.amount))

    def _used(self, name: str, demand: Demand, start: int) -> int:
        try:
            used = self.rows(name, demand, start).values_list("used", flat=True).first()
        except DatabaseError:
            return 0
        return int(used or 0)


def operator() -> str:
    """Who runs this process, for the pause's audit record."""
    try:
        return getpass.getuser()
    except Exception:  # no user name in a container: say so rather than guess
        return "unknown"


def pause(name: str, reason: str, sink: AuditSink | None, using: str = "default") -> bool:
    """Pause ``name`` fleet-wide; False if it already was (the first reason stays)."""
    from confio_kms.models import KeyPause

    who = operator()
    _, made = KeyPause.objects.using(using).get_or_create(
        alias=name, defaults={"reason": reason, "paused_by": who}
    )
    if made:
        audit.record(None, str(Alias(name)), [], "paused", (), f"by {who}: {reason}", sink=sink)
    return made


def resume(name: str, sink: AuditSink | None, using: str = "default") -> bool:
    """Lift the pause of ``name``; False if it was not paused."""
    from confio_kms.models import KeyPause

    deleted, _ = KeyPause.objects.using(using).filter(alias=name).delete()
    if deleted:
        audit.record(None, str(Alias(name)), [], "resumed", (), f"by {operator()}", sink=sink)
    return bool(deleted)


def pauses(using: str = "default") -> dict[str, tuple[str, str, str]]:
    """Every paused alias name -> (reason, by whom, since when, ISO)."""
    from confio_kms.models import KeyPause

    rows = KeyPause.objects.using(using).all()
    return {p.alias: (p.reason, p.paused_by, p.paused_at.isoformat()) for p in rows}
