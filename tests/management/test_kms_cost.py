"""kms_cost: the estimate printed, its errors, and the docs' tables are its real output."""

from __future__ import annotations

import io
import re
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
