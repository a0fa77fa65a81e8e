"""The cost model: its counts are the requests the signers really send (counted on
the local endpoint), and its arithmetic, prices and input checks."""

from __future__ import annotations

import math
from decimal import Decimal

import boto3
import pytest
from algosdk import mnemonic, transaction
from django.core.cache import cache as django_cache

from benchmarks.baseline import ScriptSigner
from confio_kms import AlgorandKMSManager, KMSSigner, conf, cost
from confio_kms.exceptions import InvalidCostInputError
from confio_kms.sandbox import LocalLedger

from .helpers import RequestCounter, new_account


def sign_groups(sign, address: str, transactions: int, group: int) -> None:  # type: ignore[no-untyped-def]
    params = LocalLedger.suggested_params()
    txns = [transaction.PaymentTxn(address, params, address, i) for i in range(transactions)]
    for start in range(0, transactions, group):
        sign(txns[start : start + group])


@pytest.mark.parametrize(("transactions", "group"), [(20, 4), (7, 3), (1, 1)])
def test_envelope_and_native_counts_are_what_the_signer_sends(
    session: boto3.Session, counter: RequestCounter, transactions: int, group: int
) -> None:
    manager = AlgorandKMSManager(session=boto3.Session())
    private_key, address = new_account()
    manager.import_existing_key("env", mnemonic.from_private_key(private_key))
    native = manager.create_algorand_key("nat", native=True).address
    # As a fresh process: nothing cached yet, no expiry within the test.
    conf.reset()
    django_cache.clear()
    model = {
        mode: cost.monthly_cost(transactions, group, mode, cache_timeout=None, processes=1)
        for mode in (cost.ENVELOPE, cost.NATIVE)
    }

    counter.reset()
    sign_groups(KMSSigner("env", session=session).sign_transactions, address, transactions, group)
    assert counter.total == model[cost.ENVELOPE].requests

    counter.reset()
    sign_groups(KMSSigner("nat", session=session).sign_transactions, native, transactions, group)
    assert counter.total == model[cost.NATIVE].requests
    assert counter.by_operation()["kms.Sign"] == model[cost.NATIVE].signing_requests
    assert counter.by_operation()["kms.GetPublicKey"] == model[cost.NATIVE].public_key_requests


def test_baseline_counts_are_what_the_old_scripts_send(
    session: boto3.Session, counter: RequestCounter
) -> None:
    private_key, address = new_account()
    AlgorandKMSManager().import_existing_key("env", mnemonic.from_private_key(private_key))
    counter.reset()

    def per_call(txns: list[transaction.Transaction]) -> None:  # a signer per call
        ScriptSigner("env", "eu-central-2", None, session).sign_transactions(txns)

    sign_groups(per_call, address, 10, 4)
    assert counter.total == cost.monthly_cost(10, 4, cost.BASELINE).requests == 3 * 2 + 10


def test_lookups_per_cache_window_and_per_cache() -> None:
    windows = math.ceil(30 * 24 * 3600 / 300)
    busy = cost.monthly_cost(1_000_000, 1, cost.ENVELOPE, cache_timeout=300)
    assert busy.lookup_requests == 2 * windows
    per_process = cost.monthly_cost(
        1_000_000, 1, cost.ENVELOPE, cache_timeout=300, processes=4, shared_cache=False
    )
    assert per_process.lookup_requests == 2 * windows * 4
    sparse = cost.monthly_cost(100, 1, cost.ENVELOPE, cache_timeout=300)
    assert sparse.lookup_requests == 2 * 100  # never more than one lookup per call
    assert cost.monthly_cost(100, 1, cost.ENVELOPE, cache_timeout=0).lookup_requests == 200
    assert cost.monthly_cost(0, 1, cost.NATIVE).requests == 0


def test_native_public_key_once_per_process() -> None:
    c = cost.monthly_cost(10_000, 16, cost.NATIVE, cache_timeout=None, processes=30)
    assert (c.signing_requests, c.lookup_requests, c.public_key_requests) == (10_000, 2, 30)


def test_huge_volumes_are_exact() -> None:
    c = cost.monthly_cost(2**60 + 1, 16, cost.ENVELOPE, cache_timeout=None)
    assert c.calls == 2**56 + 1


def test_prices() -> None:
    default = cost.monthly_cost(20_000, 1, cost.ENVELOPE, cache_timeout=None)
    assert (default.key_price, default.request_price) == (Decimal("1"), Decimal("0.03"))
    assert default.total_dollars == 1 + Decimal("20002") * Decimal("0.03") / 10_000
    native = cost.monthly_cost(
        20_000,
        1,
        cost.NATIVE,
        cache_timeout=None,
        asymmetric_request_price=Decimal("0.15"),
        key_price=Decimal("0"),
    )
    # Sign and GetPublicKey at the asymmetric price; the two lookups at the other.
    assert native.request_dollars == (20_001 * Decimal("0.15") + 2 * Decimal("0.03")) / 10_000


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"transactions": -1}, "Transactions per month"),
        ({"transactions": 1.5}, "Transactions per month"),
        ({"transactions": True}, "Transactions per month"),
        ({"transactions": 1, "group_size": 0}, "group size"),
        ({"transactions": 1, "group_size": 17}, "group size"),
        ({"transactions": 1, "mode": "hsm"}, "Unknown mode"),
        ({"transactions": 1, "cache_timeout": -1}, "cache timeout"),
        ({"transactions": 1, "cache_timeout": math.nan}, "cache timeout"),
        ({"transactions": 1, "processes": 0}, "Processes"),
        ({"transactions": 1, "request_price": Decimal("-0.01")}, "request price"),
        ({"transactions": 1, "key_price": Decimal("NaN")}, "key price"),
        ({"transactions": 1, "asymmetric_request_price": Decimal("-1")}, "asymmetric"),
    ],
)
def test_bad_input_is_a_typed_error_naming_the_fix(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidCostInputError) as caught:
        cost.monthly_cost(**kwargs)  # type: ignore[arg-type]
    assert needle in str(caught.value)
    assert "Fix:" in str(caught.value)
    assert isinstance(caught.value, ValueError)
