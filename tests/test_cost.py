"""The cost model: its counts are the requests the signers really send (counted on
the local endpoint), and its arithmetic, prices and input checks."""

from __future__ import annotations

import math
import re
import shlex
from decimal import ROUND_HALF_UP, Decimal
from io import StringIO
from pathlib import Path

import boto3
import pytest
from algosdk import mnemonic, transaction
from django.core.cache import cache as django_cache
from django.core.management import call_command

from benchmarks.baseline import ScriptSigner
from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms import factory as conf
from confio_kms.common.exceptions import InvalidCostInputError
from confio_kms.ops import cost
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
    # The model counts KMS requests; the ciphertext's one read (ssm:GetParameter without
    # decryption, once per process) is no KMS request, and free.
    assert counter.by_operation()["ssm.GetParameter"] == 1
    assert counter.total - 1 == model[cost.ENVELOPE].requests
    assert counter.by_operation()["kms.Decrypt"] == model[cost.ENVELOPE].signing_requests

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


def test_default_prices_and_free_tier_are_awss() -> None:
    """Issue 25: native requests were priced like symmetric ones ($0.03 per 10,000).
    AWS: $0.15 per 10,000 asymmetric (non-RSA-2048) requests, outside the free tier."""
    assert (
        Decimal("0.03"),
        Decimal("0.15"),
    ) == (cost.PRICE_PER_10K_REQUESTS, cost.ASYMMETRIC_PRICE_PER_10K)
    assert cost.FREE_TIER_REQUESTS == FREE_TIER
    native = cost.monthly_cost(30_000, 1, cost.NATIVE, cache_timeout=None)
    assert native.asymmetric_request_price == Decimal("0.15")
    assert native.request_dollars == (30_001 * Decimal("0.15") + 2 * Decimal("0.03")) / 10_000
    # The free tier takes the two symmetric lookups, never a Sign or GetPublicKey.
    assert native.request_dollars_after_free_tier == 30_001 * Decimal("0.15") / 10_000
    envelope = cost.monthly_cost(30_000, 1, cost.ENVELOPE, cache_timeout=None)
    assert envelope.request_dollars_after_free_tier == 10_002 * Decimal("0.03") / 10_000


def test_the_cost_page_states_the_prices_and_quotas_the_model_uses() -> None:
    page = " ".join(COST_PAGE.read_text().split())
    assert f"${cost.PRICE_PER_10K_REQUESTS} per 10,000 symmetric requests" in page
    assert f"${cost.ASYMMETRIC_PRICE_PER_10K} per 10,000 requests to asymmetric keys" in page
    assert f"free tier of {cost.FREE_TIER_REQUESTS:,} requests a month" in page
    assert "1,000 a second, shared by all ECC keys of the account and region" in page
    assert "hundreds a second" not in page
    assert "`PutParameter`" in page and "shares the same 40/s with the reads" in page


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


# --- the cost page's figures are the model's ----------------------------------------------

COST_PAGE = Path(__file__).resolve().parent.parent / "docs" / "cost.md"
FREE_TIER = 20_000  # KMS requests a month, per account


def _money(value: Decimal, places: str) -> str:
    return f"${value.quantize(Decimal(places), rounding=ROUND_HALF_UP)}"


def test_the_cost_pages_command_outputs_are_the_commands() -> None:
    """Each `$ manage.py kms_cost ...` block of docs/cost.md is the command's output."""
    page = COST_PAGE.read_text()
    blocks = re.findall(r"```console\n\$ manage\.py (kms_cost[^\n]*)\n(.*?)```", page, re.S)
    assert len(blocks) >= 3
    for command, shown in blocks:
        name, *args = shlex.split(command)
        out = StringIO()
        call_command(name, *args, stdout=out)
        assert out.getvalue() == shown, command


def test_the_cost_pages_compare_tables_are_the_commands() -> None:
    page = COST_PAGE.read_text()
    commands = re.findall(r"\(`manage\.py (kms_cost --compare[^`]*)`\)", page)
    assert len(commands) == 2
    for command in commands:
        name, *args = shlex.split(command)
        out = StringIO()
        call_command(name, *args, stdout=out)
        assert out.getvalue().strip() in page, command


def test_the_cost_pages_keys_and_free_tier_table() -> None:
    """Rows: keys, transactions, then the figures monthly_cost and the free tier give."""
    page = COST_PAGE.read_text()
    section = page.split("## Keys and the free tier", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in section.splitlines() if re.match(r"\| \d+ \| [\d,]+ \|", r)]
    assert [r.split(" | ")[0:2] for r in rows] == [
        [f"| {k}", v] for v in ("10,000", "100,000") for k in (1, 2, 5)
    ]
    for row in rows:
        keys, transactions = (int(c.replace(",", "")) for c in row.strip("| ").split(" | ")[:2])
        c = cost.monthly_cost(transactions, 1, cost.ENVELOPE)
        free = max(0, c.requests - FREE_TIER) * c.request_price / 10_000
        key_dollars = keys * c.key_price
        expected = [
            str(keys),
            f"{transactions:,}",
            f"{c.requests:,}",
            _money(c.request_dollars, "0.0001"),
            _money(free, "0.0001"),
            _money(key_dollars, "0.01"),
            _money(c.request_dollars + key_dollars, "0.01"),
            _money(free + key_dollars, "0.01"),
        ]
        assert row.strip("| ").split(" | ") == expected, row
    never = {
        t: cost.monthly_cost(t, 1, cost.ENVELOPE, cache_timeout=None) for t in (10_000, 100_000)
    }
    assert never[10_000].requests == 10_002 and never[100_000].requests == 100_002
    assert "10,002 requests ($0.0300" in section and "100,002\n($0.3000; $0.2400" in section


def test_the_default_cache_timeout_is_the_settings() -> None:
    # ops.cost reads no setting: its default must stay CONFIO_KMS_CACHE_TIMEOUT's.
    from confio_kms import settings as config

    assert cost.DEFAULT_CACHE_TIMEOUT == config.DEFAULT_CACHE_TIMEOUT
    default = cost.monthly_cost(100, 1, cost.ENVELOPE)
    assert default == cost.monthly_cost(100, 1, cost.ENVELOPE, cache_timeout=300)
    assert default != cost.monthly_cost(100, 1, cost.ENVELOPE, cache_timeout=None)
