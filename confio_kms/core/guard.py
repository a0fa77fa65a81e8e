"""Guardrails as the signing core sees them: spend and rate limits per key, and the pause.

A key's ``Limits`` (``Options.limits``, from ``CONFIO_KMS_LIMITS`` in Django) cap, per
window: the microalgos of fees its transactions pay (``fees``), the microalgos its
payments send (``algos``), the units of each asset its transfers send (``assets``), its
signing calls (``calls``), and, per end user (the ``end_user`` a caller passes, e.g.
the sponsor service's user id), calls and fees (``end_user_calls``, ``end_user_fees``).

Windows are fixed: a window of ``window`` seconds starts at each multiple of
``window`` since the epoch, and every counter of a window is one row that a single
conditional update increments (``used = used + n WHERE used + n <= limit``), so no
check-then-act race exists across threads, processes or hosts. A rolling window
would need one row per call or a sum at each check; the fixed one's cost is that a
burst straddling a window boundary may use up to twice a limit within ``window``
seconds (choose the limit with that in mind: docs/limits.md).

The counters and pauses live behind a ``Guard`` (``Options.guard``; the Django app's
is ``confio_kms.guardrails.DatabaseGuard``): the core imports no Django. ``admit``,
called by ``signing.sign_group`` before any AWS request, raises ``KeyPausedError`` or
``LimitExceededError`` (both ``PolicyViolationError``: audited as refusals), or returns
a ``Reservation`` that the call commits once signed, or releases if it fails later.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from algosdk import transaction

from confio_kms.algorand.validation import Alias
from confio_kms.common import exceptions as exc
from confio_kms.core.limits import (
    AMOUNTS,
    DEFAULT_WINDOW,
    NOTHING_RESERVED,
    Demand,
    Guard,
    Limits,
    Reservation,
)

__all__ = [
    "AMOUNTS",
    "DEFAULT_WINDOW",
    "NOTHING_RESERVED",
    "Demand",
    "Guard",
    "Limits",
    "Reservation",
    "admit",
    "demands",
    "refusal",
]


def demands(limits: Limits, txns: Sequence[transaction.Transaction], end_user: str) -> list[Demand]:
    """What signing ``txns`` asks of each of ``limits`` that is set."""
    fees = sum(int(t.fee or 0) for t in txns)
    wanted: dict[str, tuple[int, int | None, str]] = {
        "calls": (1, limits.calls, ""),
        "fees": (fees, limits.fees, ""),
        "algos": (_outflow(txns, limits, None), limits.algos, ""),
    }
    for asset, units in limits.assets.items():
        wanted[f"asset:{asset}"] = (_outflow(txns, limits, asset), units, "")
    if end_user:
        wanted["end_user_calls"] = (1, limits.end_user_calls, end_user)
        wanted["end_user_fees"] = (fees, limits.end_user_fees, end_user)
    return [
        Demand(name, amount, maximum, subject)
        for name, (amount, maximum, subject) in wanted.items()
        if maximum is not None and amount > 0
    ]


def _outflow(txns: Sequence[transaction.Transaction], limits: Limits, asset: int | None) -> int:
    """Microalgos (``asset`` None) or units of ``asset`` that ``txns`` send; 0 when that
    amount has no limit. A close-out sends a remainder no limit can bound: refused."""
    if (asset is None and limits.algos is None) or (
        asset is not None and asset not in limits.assets
    ):
        return 0
    total = 0
    for txn in txns:
        if asset is None and isinstance(txn, transaction.PaymentTxn):
            closes, total = txn.close_remainder_to, total + int(txn.amt or 0)
        elif asset is not None and isinstance(txn, transaction.AssetTransferTxn):
            if txn.index != asset:
                continue
            closes, total = txn.close_assets_to, total + int(txn.amount or 0)
        else:
            continue
        if closes:
            what = "microalgos" if asset is None else f"units of asset {asset}"
            raise exc.PolicyViolationError(
                f"A close-out sends every remaining {what}, which the limit on them cannot "
                "bound; nothing was signed.",
                fix="Send a bounded amount, or remove that limit for the call "
                "(Options(limits=...)) if the close-out is deliberate.",
            )
    return total


def admit(
    guard: Guard | None,
    limits: Limits | None,
    name: str,
    txns: Sequence[transaction.Transaction],
    end_user: str = "",
) -> Reservation:
    """Refuse a paused key, then reserve what signing ``txns`` uses of its limits."""
    if guard is None:
        return NOTHING_RESERVED
    reason = guard.paused(name)
    if reason is not None:
        raise exc.KeyPausedError(
            f"{Alias(name)} is paused: {reason or 'no reason given'}; nothing was signed.",
            reason=reason,
            fix=f"Resume it when it is safe: manage.py kms_resume {name}.",
        )
    if limits is None:
        return NOTHING_RESERVED
    wanted = demands(limits, txns, end_user)
    return guard.reserve(name, limits.window, wanted) if wanted else NOTHING_RESERVED


def refusal(
    name: str, demand: Demand, window: int, used: int, start: float
) -> exc.LimitExceededError:
    """The error for ``demand`` refused with ``used`` taken in the window from ``start``."""
    whose = f" for end user {demand.subject!r}" if demand.subject else ""
    frees = start + window
    return exc.LimitExceededError(
        f"{Alias(name)} refused: {demand.limit}{whose} would reach {used + demand.amount} "
        f"of its limit {demand.maximum} per {window} s window (used {used}, this call "
        f"{demand.amount}); the window frees at {_utc(frees)}. Nothing was signed.",
        limit=demand.limit,
        window=window,
        used=used,
        maximum=demand.maximum,
        frees_at=frees,
        fix="Wait for the window to end, or raise the limit (CONFIO_KMS_LIMITS) if the "
        "traffic is legitimate.",
    )


def _utc(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat(timespec="seconds")
