"""Spend and rate limits as plain data, and the protocol of what keeps their counters.

``Limits`` (``Options.limits``), ``Demand`` (what one call asks of one limit) and the
``Guard``/``Reservation`` protocols; the admission logic that uses them is
``confio_kms.core.guard`` (docs/limits.md). Data only, so ``Options`` can hold limits
without the signing machinery.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from confio_kms.common import exceptions as exc

DEFAULT_WINDOW = 3600
# The fields a limit may name, besides ``window`` and ``assets``.
AMOUNTS = ("fees", "algos", "calls", "end_user_calls", "end_user_fees")


@dataclass(frozen=True)
class Limits:
    """A key's limits per window of ``window`` seconds; None: no limit."""

    window: int = DEFAULT_WINDOW
    fees: int | None = None
    algos: int | None = None
    assets: Mapping[int, int] = field(default_factory=dict)
    calls: int | None = None
    end_user_calls: int | None = None
    end_user_fees: int | None = None

    def __post_init__(self) -> None:
        # A tuple of pairs keeps the limits (and the Options holding them) hashable.
        object.__setattr__(self, "assets", _Assets(dict(self.assets)))
        problems = [f"window={self.window!r}"] if not _whole(self.window, 1) else []
        problems += [f"{n}={getattr(self, n)!r}" for n in AMOUNTS if not _limit(getattr(self, n))]
        problems += [f"assets[{a!r}]={u!r}" for a, u in self.assets.items()
                     if not (_whole(a, 0) and _limit(u))]  # fmt: skip
        if problems:
            raise exc.ConfigurationError(
                f"Invalid limits: {', '.join(problems)}.",
                fix="A window is whole seconds >= 1; a limit is a whole number >= 0, or None "
                "for no limit; assets maps asset ids to units (docs/limits.md).",
            )

    @classmethod
    def of(cls, value: object, name: str) -> Limits:
        """Limits from a setting's mapping (``CONFIO_KMS_LIMITS[alias]``); ``name`` says
        where it came from, for the message."""
        if isinstance(value, Limits):
            return value
        known = {"window", "assets", *AMOUNTS}
        unknown = sorted(map(str, set(value) - known)) if isinstance(value, Mapping) else value
        if not isinstance(value, Mapping) or unknown:
            raise exc.ConfigurationError(
                f"{name} is not a mapping of limits (unknown: {unknown!r}).",
                fix=f"Use the keys {', '.join(sorted(known))} (docs/limits.md).",
            )
        assets = value.get("assets") or {}
        if not isinstance(assets, Mapping):
            raise exc.ConfigurationError(
                f"{name}['assets'] is not a mapping.", fix="Map asset ids to units per window."
            )
        return cls(**{**value, "assets": {_asset_id(a): u for a, u in assets.items()}})


class _Assets(dict[int, int]):
    """A hashable, read-only dict of asset limits."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))


def _whole(value: object, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _limit(value: object) -> bool:
    return value is None or _whole(value, 0)


def _asset_id(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return value  # type: ignore[no-any-return]  # reported by Limits' check


@dataclass(frozen=True)
class Demand:
    """What one call asks of one limit: ``amount`` of ``limit`` (named as in
    ``LimitExceededError.limit``), counted under ``subject`` (an end user, or "")."""

    limit: str
    amount: int
    maximum: int
    subject: str = ""


class Reservation(Protocol):
    def commit(self) -> None: ...

    def release(self) -> None: ...


class Guard(Protocol):
    """Where pauses and counters live, shared by every process that signs."""

    def paused(self, name: str) -> str | None:
        """The reason ``name`` is paused, or None when it is not."""
        ...

    def reserve(self, name: str, window: int, demands: Sequence[Demand]) -> Reservation:
        """Take every demand from the current window of ``name`` at once, or none and
        raise ``LimitExceededError``."""
        ...


class _Nothing:
    def commit(self) -> None:
        pass

    def release(self) -> None:
        pass


NOTHING_RESERVED: Reservation = _Nothing()
