"""The cost model: requests per mode counted from what the signers send, and prices."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from confio_kms import cost
from confio_kms.exceptions import InvalidCostInputError


def test_an_envelope_call_is_one_request_whatever_the_group_size() -> None:
    # 10,000 transactions in groups of 16: 625 calls, each one GetParameter.
    c = cost.monthly_cost(10_000, 16, cost.ENVELOPE, cache_timeout=None, processes=1)
    assert (c.calls, c.signing_requests, c.lookup_requests) == (625, 625, 2)
    assert c.requests == 627
    assert c.request_dollars == Decimal("627") * Decimal("0.03") / 10_000
    assert c.total_dollars == Decimal("1") + c.request_dollars


def test_a_partial_last_group_is_a_call() -> None:
    assert cost.monthly_cost(17, 16).calls == 2


def test_native_keys_sign_each_transaction_and_fetch_the_public_key_per_process() -> None:
    c = cost.monthly_cost(10_000, 16, cost.NATIVE, cache_timeout=None, processes=30)
    assert c.signing_requests == 10_000
    # Lookups: 2 per process start, plus GetPublicKey once per process start.
    assert c.lookup_requests == 2 * 30 + 30


def test_the_baseline_decrypts_per_transaction_and_looks_up_per_call() -> None:
    c = cost.monthly_cost(10_000, 4, cost.BASELINE)
    assert (c.signing_requests, c.lookup_requests) == (10_000, 2 * 2_500)


def test_lookups_are_bounded_by_cache_windows_and_by_calls() -> None:
    windows = math.ceil(30 * 24 * 3600 / 300)
    busy = cost.monthly_cost(1_000_000, 1, cost.ENVELOPE, cache_timeout=300)
    assert busy.lookup_requests == 2 * windows
    sparse = cost.monthly_cost(100, 1, cost.ENVELOPE, cache_timeout=300)
    assert sparse.lookup_requests == 2 * 100
    assert cost.monthly_cost(0, 1, cost.NATIVE).requests == 0


def test_prices_are_the_setup_guides_unless_given() -> None:
    default = cost.monthly_cost(20_000, 1, cost.ENVELOPE, cache_timeout=None)
    assert (default.key_price, default.request_price) == (Decimal("1"), Decimal("0.03"))
    own = cost.monthly_cost(
        20_000,
        1,
        cost.ENVELOPE,
        cache_timeout=None,
        request_price=Decimal("0.15"),
        key_price=Decimal("0"),
    )
    assert own.total_dollars == Decimal("20002") * Decimal("0.15") / 10_000


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"transactions": -1}, "Transactions per month"),
        ({"transactions": 1.5}, "Transactions per month"),
        ({"transactions": True}, "Transactions per month"),
        ({"transactions": 1, "group_size": 0}, "group size"),
        ({"transactions": 1, "group_size": 17}, "group size"),
        ({"transactions": 1, "mode": "hsm"}, "Unknown mode"),
        ({"transactions": 1, "cache_timeout": 0}, "cache timeout"),
        ({"transactions": 1, "processes": -2}, "Process starts"),
        ({"transactions": 1, "request_price": Decimal("-0.01")}, "request price"),
        ({"transactions": 1, "key_price": Decimal("NaN")}, "key price"),
    ],
)
def test_bad_input_is_a_typed_error_naming_the_fix(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidCostInputError) as caught:
        cost.monthly_cost(**kwargs)  # type: ignore[arg-type]
    assert needle in str(caught.value)
    assert "Fix:" in str(caught.value)
    assert isinstance(caught.value, ValueError)
