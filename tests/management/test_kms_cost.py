"""kms_cost: the estimate printed, its errors, and the docs' tables are its real output."""

from __future__ import annotations

import io
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

ROOT = Path(__file__).resolve().parents[2]
DOCS_COMPARE = ("--cache-timeout", "300", "--cache", "shared", "--processes", "1")


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("kms_cost", *args, stdout=out)
    return out.getvalue()


def field(output: str, label: str) -> str:
    match = re.search(rf"^{label}:\s+(.*)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


def test_an_envelope_estimate() -> None:
    out = run("--transactions-per-month", "10000", "--group-size", "16", "--cache-timeout", "never")
    assert field(out, "signing").startswith("625 requests")
    assert field(out, "lookups").startswith("2 requests")
    assert field(out, "requests") == "627 a month: $0.0019 at $0.03 per 10,000"
    assert field(out, "total") == "$1.00 a month"


def test_native_and_baseline_count_a_request_per_transaction() -> None:
    native = run("--transactions-per-month", "10000", "--group-size", "16", "--native")
    baseline = run("--transactions-per-month", "10000", "--group-size", "16", "--baseline")
    assert field(native, "signing").startswith("10,000 requests")
    assert field(native, "public key").startswith("1 requests")
    assert field(baseline, "signing").startswith("10,000 requests")
    assert field(baseline, "lookups").startswith("1,250 requests")


@override_settings(CONFIO_KMS_CACHE_TIMEOUT=None)
def test_the_cache_timeout_and_kind_default_to_the_settings() -> None:
    # tests.settings uses LocMemCache: a per-process cache.
    out = run("--transactions-per-month", "5000", "--processes", "3")
    assert (
        field(out, "lookups") == "6 requests (at most: 2 in each process, as entries never expire)"
    )
    shared = run("--transactions-per-month", "5000", "--processes", "3", "--cache", "shared")
    assert field(shared, "lookups").startswith("2 requests")


@override_settings(CONFIO_KMS_CACHE_TIMEOUT=0)
def test_a_zero_timeout_setting_means_a_lookup_per_call() -> None:
    out = run("--transactions-per-month", "50")
    assert field(out, "lookups") == "100 requests (at most: 2 per call, as nothing is cached)"


def test_custom_prices() -> None:
    out = run(
        "--transactions-per-month",
        "20000",
        "--native",
        "--cache-timeout",
        "never",
        "--price-per-10k-requests",
        "0.03",
        "--price-per-10k-asymmetric",
        "0.15",
        "--price-per-key-month",
        "2",
    )
    assert field(out, "requests") == (
        "20,003 a month: $0.3000 at $0.03 per 10,000, Sign and GetPublicKey $0.15"
    )
    assert field(out, "total") == "$2.30 a month"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((), "--transactions-per-month N, or --compare"),
        (("--compare", "--transactions-per-month", "5"), "tabulates fixed volumes"),
        (("--transactions-per-month", "5", "--processes", "0"), "Processes must be"),
    ],
)
def test_refusals(args: tuple[str, ...], needle: str) -> None:
    with pytest.raises(CommandError, match=re.escape(needle)):
        run(*args)


def test_expected_failures_are_one_line(manage_py) -> None:  # type: ignore[no-untyped-def]
    result = manage_py("kms_cost", "--transactions-per-month", "5", "--group-size", "17")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0
    assert "group size" in result.stderr and "Fix:" in result.stderr


@pytest.mark.parametrize("group", ["1", "16"])
def test_the_docs_tables_are_the_commands_output(group: str) -> None:
    table = run("--compare", "--group-size", group, *DOCS_COMPARE)
    assert table.count("\n") == 11  # header, rule, 3 volumes x 3 modes
    assert table in (ROOT / "docs" / "cost.md").read_text()


def test_the_docs_examples_are_the_commands_output() -> None:
    commands = (ROOT / "docs" / "commands.md").read_text()
    assert run("--transactions-per-month", "100000", "--group-size", "4", "--cache", "shared") in (
        commands
    )
    cost_page = (ROOT / "docs" / "cost.md").read_text()
    assert run("--transactions-per-month", "10000", "--group-size", "4", "--cache", "shared") in (
        cost_page
    )


# --- --json -------------------------------------------------------------------------


def test_json_is_one_object_with_integers_and_exact_dollar_strings() -> None:
    args = ("--transactions-per-month", "100000", "--group-size", "4", "--cache", "shared")
    data = json.loads(run(*args, "--json"))
    assert data == {
        "mode": "envelope",
        "transactions": 100000,
        "group_size": 4,
        "calls": 25000,
        "processes": 1,
        "shared_cache": True,
        "cache_timeout_seconds": 300,
        "signing_requests": 25000,
        "lookup_requests": 17280,
        "public_key_requests": 0,
        "requests": 42280,
        "asymmetric_requests": 0,
        "price_per_10k_requests_usd": "0.03",
        "price_per_10k_asymmetric_usd": "0.15",
        "key_usd": "1",
        "requests_usd": "0.12684",
        "requests_usd_after_free_tier": "0.06684",
        "total_usd": "1.12684",
    }
    # the text rounds the same figures to cents
    text = run(*args)
    assert field(text, "total") == f"${Decimal(data['total_usd']):.2f} a month"
    assert field(text, "requests").startswith(f"{data['requests']:,} a month")


def test_json_dollars_are_exact_and_never_exponents() -> None:
    data = json.loads(
        run(
            "--transactions-per-month", "20000", "--native", "--cache-timeout", "never",
            "--price-per-10k-asymmetric", "0.15", "--price-per-key-month", "1E-9", "--json",
        )
    )  # fmt: skip
    assert data["cache_timeout_seconds"] is None
    assert data["asymmetric_requests"] == 20001 and data["public_key_requests"] == 1
    assert data["key_usd"] == "0.000000001"
    assert Decimal(data["requests_usd"]) == (2 * Decimal("0.03") + 20001 * Decimal("0.15")) / 10000
    assert Decimal(data["total_usd"]) == Decimal(data["requests_usd"]) + Decimal("1E-9")
    for name, value in data.items():
        if name.endswith("_usd"):
            assert isinstance(value, str) and "E" not in value.upper(), (name, value)
        elif name.endswith(("requests", "transactions", "calls")):
            assert type(value) is int, name
    fractional = json.loads(
        run("--transactions-per-month", "5", "--cache-timeout", "2.5", "--json")
    )
    assert fractional["cache_timeout_seconds"] == 2.5


def test_json_compare_is_one_object_of_every_row() -> None:
    data = json.loads(run("--compare", "--group-size", "16", *DOCS_COMPARE, "--json"))
    assert list(data) == ["estimates"]
    rows = data["estimates"]
    assert [(r["transactions"], r["mode"]) for r in rows] == [
        (v, m) for v in (1_000, 10_000, 100_000) for m in ("baseline", "envelope", "native")
    ]
    table = run("--compare", "--group-size", "16", *DOCS_COMPARE).splitlines()[2:]
    for row, line in zip(rows, table, strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[3] == f"{row['requests']:,}"
        assert cells[6] == f"${Decimal(row['total_usd']):,.2f}"


def test_json_errors_stay_on_stderr(manage_py) -> None:  # type: ignore[no-untyped-def]
    result = manage_py("kms_cost", "--json")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "--transactions-per-month N" in result.stderr
