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
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections, transaction
from django.db.models import F, Max, QuerySet

from confio_kms.algorand.validation import Alias
from confio_kms.common import exceptions as exc
from confio_kms.core import audit
from confio_kms.core.guard import AMOUNTS, Demand, Limits, refusal
from confio_kms.core.options import AuditSink


def _unavailable(error: Exception) -> exc.GuardUnavailableError:
    return exc.GuardUnavailableError(
        "The key's pause and limits could not be read, so nothing was signed.",
        cause=f"{type(error).__name__}: {error}",
        fix="Check the database connection, and run `manage.py migrate confio_kms`.",
    )


class _Missing(Exception):
    """Rolls back a reservation's transaction when a counter row does not exist yet."""


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
        # Raw SQL: the ORM's query building costs more than the query (benchmarks/guard.py).
        try:
            with connections[self.using].cursor() as cursor:
                cursor.execute(
                    f"SELECT reason FROM {self._table('keypause')} WHERE alias = %s", [name]
                )
                row = cursor.fetchone()
        except (DatabaseError, ImproperlyConfigured) as error:  # no table; no database
            raise _unavailable(error) from None
        return None if row is None else str(row[0])

    def _table(self, model: str) -> str:
        """The quoted table of one of this app's models, for this database."""
        return str(connections[self.using].ops.quote_name(f"confio_kms_{model}"))

    def rows(self, name: str, demand: Demand, start: int) -> QuerySet[Any]:
        from confio_kms.models import LimitUsage

        return LimitUsage.objects.using(self.using).filter(
            alias=name, limit=demand.limit, subject=demand.subject, window_start=start
        )

    def reserve(self, name: str, window: int, demands: Sequence[Demand]) -> DatabaseReservation:
        start = int(time.time()) // window * window
        try:
            for attempt in range(2):
                try:
                    self._take(name, demands, start, last=attempt == 1)
                    break
                except _Missing:  # rolled back: nothing of this call is counted
                    self._make_rows(name, window, demands, start)
        except _Refused as refused:
            raise refusal(name, refused.demand, window, self._used(name, refused.demand, start),
                          start) from None  # fmt: skip
        except DatabaseError as error:
            raise _unavailable(error) from None
        return DatabaseReservation(self, name, start, demands)

    def _take(self, name: str, demands: Sequence[Demand], start: int, last: bool) -> None:
        """Add every demand to its row, all or none: a transaction that one UPDATE adds
        them in where each fits; rolled back by ``_Refused`` (one does not fit) or
        ``_Missing`` (a row does not exist yet)."""
        too_big = next((d for d in demands if d.maximum < d.amount), None)
        if too_big is not None:
            raise _Refused(too_big)
        with transaction.atomic(using=self.using):
            if self._add(name, demands, start) == len(demands):
                return
            full = [d for d in demands if self._used(name, d, start) + d.amount > d.maximum]
            if full or last:
                raise _Refused(full[0] if full else demands[0])
            raise _Missing

    def _make_rows(self, name: str, window: int, demands: Sequence[Demand], start: int) -> None:
        """The counter rows of ``demands`` in the window from ``start``, at 0 if new."""
        from confio_kms.models import LimitUsage

        new = [LimitUsage(alias=name, limit=d.limit, subject=d.subject, window_start=start,
                          window=window) for d in demands]  # fmt: skip
        # Another call may make the same rows meanwhile: the unique constraint keeps one.
        LimitUsage.objects.using(self.using).bulk_create(new, ignore_conflicts=True)

    def _add(self, name: str, demands: Sequence[Demand], start: int) -> int:
        """``used += amount`` on each demand's row where ``used <= maximum - amount``
        (one statement, so one round trip); the number of rows updated."""
        limit = connections[self.using].ops.quote_name("limit")
        case = " ".join(f"WHEN {limit} = %s AND subject = %s THEN %s" for _ in demands)
        fits = " OR ".join(f"({limit} = %s AND subject = %s AND used <= %s)" for _ in demands)
        sql = (f"UPDATE {self._table('limitusage')} SET used = used + CASE {case} ELSE 0 END "
               f"WHERE alias = %s AND window_start = %s AND ({fits})")  # fmt: skip
        params: list[str | int] = [v for d in demands for v in (d.limit, d.subject, d.amount)]
        params += [name, start]
        params += [v for d in demands for v in (d.limit, d.subject, d.maximum - d.amount)]
        with connections[self.using].cursor() as cursor:
            cursor.execute(sql, params)
            return int(cursor.rowcount)

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

    try:
        rows = list(KeyPause.objects.using(using).all())
    except DatabaseError as error:
        raise _unavailable(error) from None
    return {p.alias: (p.reason, p.paused_by, p.paused_at.isoformat()) for p in rows}


def usage(
    name: str, limits: Limits, now: float | None = None, using: str = "default"
) -> list[dict[str, Any]]:
    """Each limit of ``name`` that is set, with what its current window has used (for
    the end-user limits: the most any one end user has used), for kms_sponsor_status."""
    from confio_kms.models import LimitUsage

    start = int(time.time() if now is None else now) // limits.window * limits.window
    maxima: dict[str, int | None] = {n: getattr(limits, n) for n in AMOUNTS}
    maxima.update({f"asset:{a}": u for a, u in limits.assets.items()})
    rows = LimitUsage.objects.using(using).filter(alias=name, window_start=start)
    try:
        used = dict(rows.values_list("limit").annotate(most=Max("used")))
    except DatabaseError as error:
        raise _unavailable(error) from None
    return [
        {"name": limit, "used": int(used.get(limit) or 0), "limit": maximum,
         "window": f"{limits.window} s", "window_start": start}
        for limit, maximum in maxima.items()
        if maximum is not None
    ]  # fmt: skip
