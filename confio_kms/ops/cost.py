"""The monthly AWS cost of signing: requests and dollars per key kind.

Prices default to AWS KMS's published ones: $1 per key-month, $0.03 per 10,000
symmetric requests and $0.15 per 10,000 requests to asymmetric keys other than RSA
2048 (a native key's ``kms:Sign`` and ``kms:GetPublicKey``). The free tier, 20,000
requests a month per account, covers symmetric requests only; it is shared by every
key and use of KMS in the account, so estimates give dollars with and without it.
Pass your own prices if your region's differ. Each request counted here is one KMS
request as AWS bills it: an envelope signing call makes one ``kms:Decrypt`` of the
parameter's ciphertext (read once per process, without decryption: no KMS request);
the old scripts' ``ssm:GetParameter`` made one on the caller's behalf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from confio_kms.algorand.networks import MAX_GROUP_SIZE as MAX_GROUP
from confio_kms.common.exceptions import InvalidCostInputError
from confio_kms.core.keys import ENVELOPE as ENVELOPE
from confio_kms.core.keys import NATIVE as NATIVE

KEY_MONTH_PRICE = Decimal("1")
PRICE_PER_10K_REQUESTS = Decimal("0.03")
ASYMMETRIC_PRICE_PER_10K = Decimal("0.15")  # ECC (Ed25519 included): not RSA 2048's $0.10
FREE_TIER_REQUESTS = 20_000  # a month, per account; never requests to asymmetric keys
MONTH_SECONDS = 30 * 24 * 3600
# CONFIO_KMS_CACHE_TIMEOUT's default (tests/test_cost.py holds it to the settings'):
# kms_cost passes the configured one.
DEFAULT_CACHE_TIMEOUT = 300

# The modes priced: the two key kinds, and the old scripts' per-transaction decrypt.
BASELINE = "baseline"
MODES = (ENVELOPE, NATIVE, BASELINE)


@dataclass(frozen=True)
class MonthlyCost:
    """One key's monthly requests and dollars for a signing load."""

    mode: str
    transactions: int
    group_size: int
    calls: int
    """Signing calls: groups of up to ``group_size`` transactions."""
    signing_requests: int
    """``kms:Sign`` (native), ``kms:Decrypt`` (envelope) or ``ssm:GetParameter`` with its
    ``kms:Decrypt`` (baseline)."""
    lookup_requests: int
    """Address lookups (``kms:DescribeKey``, ``kms:ListResourceTags``): an upper bound."""
    public_key_requests: int
    """A native key's ``kms:GetPublicKey``, once per process start."""
    request_price: Decimal
    asymmetric_request_price: Decimal
    """Per 10,000 ``kms:Sign`` and ``kms:GetPublicKey`` requests (native keys)."""
    key_price: Decimal

    @property
    def requests(self) -> int:
        return self.signing_requests + self.lookup_requests + self.public_key_requests

    @property
    def asymmetric_requests(self) -> int:
        signing = self.signing_requests if self.mode == NATIVE else 0
        return signing + self.public_key_requests

    @property
    def request_dollars(self) -> Decimal:
        symmetric = self.requests - self.asymmetric_requests
        return (
            symmetric * self.request_price
            + self.asymmetric_requests * self.asymmetric_request_price
        ) / 10_000

    @property
    def total_dollars(self) -> Decimal:
        return self.request_dollars + self.key_price

    @property
    def request_dollars_after_free_tier(self) -> Decimal:
        """``request_dollars`` when this key has the account's whole free tier (its
        symmetric requests only: asymmetric ones are never free)."""
        symmetric = max(0, self.requests - self.asymmetric_requests - FREE_TIER_REQUESTS)
        return (
            symmetric * self.request_price
            + self.asymmetric_requests * self.asymmetric_request_price
        ) / 10_000


def _whole(value: object, what: str, low: int, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidCostInputError(
            f"{what} must be a whole number of {low} or more; got {value!r}.", fix=fix
        )
    return value


def _price(value: Decimal, what: str) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise InvalidCostInputError(
            f"The {what} must be 0 dollars or more, not {value}.", fix="Pass e.g. 0.03."
        )
    return value


def _check(
    transactions: int, group_size: int, mode: str, cache_timeout: float | None, processes: int
) -> None:
    """InvalidCostInputError for the first input out of range."""
    _whole(transactions, "Transactions per month", 0, "Pass e.g. 10000.")
    if (
        isinstance(group_size, bool)
        or not isinstance(group_size, int)
        or not 1 <= group_size <= MAX_GROUP
    ):
        raise InvalidCostInputError(
            f"The group size must be a whole number from 1 to {MAX_GROUP}; got {group_size!r}.",
            fix="Algorand groups hold 1 to 16 transactions.",
        )
    _whole(processes, "Processes", 1, "Count at least the one process that signs.")
    if cache_timeout is not None and (
        isinstance(cache_timeout, bool)
        or not isinstance(cache_timeout, int | float)
        or not math.isfinite(cache_timeout)
        or cache_timeout < 0
    ):
        raise InvalidCostInputError(
            f"The cache timeout must be 0 seconds or more, or never; got {cache_timeout!r}.",
            fix="Pass seconds, e.g. 300, or never.",
        )
    if mode not in MODES:
        raise InvalidCostInputError(
            f"Unknown mode {mode!r}.", fix=f"Use one of {', '.join(MODES)}."
        )


def monthly_cost(
    transactions: int,
    group_size: int = 1,
    mode: str = ENVELOPE,
    *,
    cache_timeout: float | None = DEFAULT_CACHE_TIMEOUT,
    processes: int = 1,
    shared_cache: bool = True,
    request_price: Decimal = PRICE_PER_10K_REQUESTS,
    asymmetric_request_price: Decimal | None = None,
    key_price: Decimal = KEY_MONTH_PRICE,
) -> MonthlyCost:
    """Requests and dollars for ``transactions`` a month signed in groups of ``group_size``.

    Signing: an envelope key makes 1 request (``kms:Decrypt``) per signing call,
    whatever the group size (its parameter's ciphertext, read once per process with
    ``ssm:GetParameter`` without decryption, is no KMS request and is not counted); a
    native key 1 per transaction; the old scripts (``baseline``) 1 per transaction plus
    an address lookup (2 requests) per call, as a request handler built a new signer
    for each. confio-kms looks the address up at most once per
    ``cache_timeout`` seconds (0: every call; ``None``: never expires) in each cache:
    one cache when ``shared_cache`` (Redis, memcached), else one per process. A
    native key also fetches its public key once per process start. ``processes``
    counts the processes that sign during the month (each worker start).
    """
    _check(transactions, group_size, mode, cache_timeout, processes)
    _price(request_price, "request price")
    _price(key_price, "key price")
    asymmetric = _price(
        ASYMMETRIC_PRICE_PER_10K if asymmetric_request_price is None else asymmetric_request_price,
        "asymmetric request price",
    )
    calls = -(-transactions // group_size)  # exact ceiling for any size
    public_keys = 0
    if mode == BASELINE:
        signing, lookups = transactions, 2 * calls
    else:
        signing = calls if mode == ENVELOPE else transactions
        caches = 1 if shared_cache else processes
        if cache_timeout is None:
            windows = 1
        elif cache_timeout == 0:
            windows = calls
        else:
            windows = math.ceil(MONTH_SECONDS / cache_timeout)
        lookups = 2 * min(calls, windows * caches)
        if mode == NATIVE:
            public_keys = min(calls, processes)
    return MonthlyCost(
        mode,
        transactions,
        group_size,
        calls,
        signing,
        lookups,
        public_keys,
        request_price,
        asymmetric,
        key_price,
    )
