"""The monthly AWS cost of signing: requests and dollars per key kind.

Prices default to the setup guide's: $1 per key-month and $0.03 per 10,000
requests. AWS's pricing page has the current figures for your region, a monthly
free tier, and exceptions for asymmetric keys; pass your own prices if they differ.
Each request counted here is one KMS request as AWS bills it: an envelope signing
call's ``ssm:GetParameter`` makes one ``kms:Decrypt`` on the caller's behalf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from .exceptions import InvalidCostInputError

KEY_MONTH_PRICE = Decimal("1")
PRICE_PER_10K_REQUESTS = Decimal("0.03")
MONTH_SECONDS = 30 * 24 * 3600
DEFAULT_CACHE_TIMEOUT = 300

ENVELOPE = "envelope"
NATIVE = "native"
BASELINE = "baseline"
MODES = (ENVELOPE, NATIVE, BASELINE)
MAX_GROUP = 16


@dataclass(frozen=True)
class MonthlyCost:
    """One key's monthly requests and dollars for a signing load."""

    mode: str
    transactions: int
    group_size: int
    calls: int
    """Signing calls: groups of up to ``group_size`` transactions."""
    signing_requests: int
    lookup_requests: int
    """Address lookups (and a native key's public key), an upper bound."""
    request_price: Decimal
    key_price: Decimal

    @property
    def requests(self) -> int:
        return self.signing_requests + self.lookup_requests

    @property
    def request_dollars(self) -> Decimal:
        return self.requests * self.request_price / 10_000

    @property
    def total_dollars(self) -> Decimal:
        return self.request_dollars + self.key_price


def _whole(value: object, what: str, low: int, high: float, fix: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        span = f"{low} to {high:g}" if high != math.inf else f"{low} or more"
        raise InvalidCostInputError(
            f"{what} must be a whole number, {span}; got {value!r}.", fix=fix
        )


def monthly_cost(
    transactions: int,
    group_size: int = 1,
    mode: str = ENVELOPE,
    *,
    cache_timeout: int | None = DEFAULT_CACHE_TIMEOUT,
    processes: int = 1,
    request_price: Decimal = PRICE_PER_10K_REQUESTS,
    key_price: Decimal = KEY_MONTH_PRICE,
) -> MonthlyCost:
    """Requests and dollars for ``transactions`` a month signed in groups of ``group_size``.

    Signing: an envelope key makes 1 request per signing call, whatever the group
    size; a native key 1 per transaction; the old scripts (``baseline``) 1 per
    transaction plus an address lookup (2 requests) per call, as each call built a
    new signer. Lookups for confio-kms: at most 2 per ``cache_timeout`` window in
    which something is signed (``None``: cached for the process's life, so 2 per
    process start), plus 1 ``kms:GetPublicKey`` per process start for a native key.
    """
    _whole(transactions, "Transactions per month", 0, math.inf, "Pass e.g. 10000.")
    _whole(group_size, "The group size", 1, MAX_GROUP, "Algorand groups hold 1 to 16.")
    _whole(processes, "Process starts per month", 0, math.inf, "Pass e.g. 30.")
    if cache_timeout is not None:
        _whole(cache_timeout, "The cache timeout", 1, math.inf, "Pass seconds, e.g. 300.")
    if mode not in MODES:
        raise InvalidCostInputError(
            f"Unknown mode {mode!r}.", fix=f"Use one of {', '.join(MODES)}."
        )
    for price, what in ((request_price, "request price"), (key_price, "key price")):
        if not price.is_finite() or price < 0:
            raise InvalidCostInputError(
                f"The {what} must be 0 dollars or more, not {price}.", fix="Pass e.g. 0.03."
            )
    calls = math.ceil(transactions / group_size)
    if mode == BASELINE:
        signing, lookups = transactions, 2 * calls
    else:
        signing = calls if mode == ENVELOPE else transactions
        windows = processes if cache_timeout is None else math.ceil(MONTH_SECONDS / cache_timeout)
        lookups = 2 * min(calls, windows)
        if mode == NATIVE and calls:
            lookups += min(calls, processes)
    return MonthlyCost(
        mode, transactions, group_size, calls, signing, lookups, request_price, key_price
    )
