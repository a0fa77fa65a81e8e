from __future__ import annotations

import math
from argparse import ArgumentParser, ArgumentTypeError
from decimal import Decimal, InvalidOperation
from typing import Any

from confio_kms import settings as config
from confio_kms.common.exceptions import InvalidCostInputError
from confio_kms.management.base import KMSCommand
from confio_kms.ops import cost

COMPARED_VOLUMES = (1_000, 10_000, 100_000)
MODE_NAMES = {
    cost.ENVELOPE: "one envelope key",
    cost.NATIVE: "one native key",
    cost.BASELINE: "the old scripts' per-transaction decrypt, one envelope key",
}
PER_PROCESS_BACKENDS = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


def _seconds(value: str) -> float:
    if value == "never":
        return math.inf
    try:
        return float(value)
    except ValueError:
        raise ArgumentTypeError("expected seconds or 'never'") from None


def _dollars(value: str) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation:
        raise ArgumentTypeError("expected dollars, e.g. 0.03") from None


def _money(value: Decimal, places: int = 2) -> str:
    return f"${value:,.{places}f}"


def _configured_cache_is_shared() -> bool:
    return config.cache_backend(config.cache_alias()) not in PER_PROCESS_BACKENDS


def _exact(value: Decimal) -> str:
    """Dollars for --json: the exact decimal, unrounded, never in exponent notation."""
    return f"{value:f}"


def estimate_data(
    c: cost.MonthlyCost, timeout: float | None, shared: bool, processes: int
) -> dict[str, Any]:
    """One estimate as --json prints it: counts as integers, US dollars as exact
    decimal strings (``"0.12684"``), the cache timeout in seconds (null: never)."""
    seconds: float | None = timeout
    if timeout is not None and float(timeout).is_integer():
        seconds = int(timeout)
    return {
        "mode": c.mode,
        "transactions": c.transactions,
        "group_size": c.group_size,
        "calls": c.calls,
        "processes": processes,
        "shared_cache": shared,
        "cache_timeout_seconds": seconds,
        "signing_requests": c.signing_requests,
        "lookup_requests": c.lookup_requests,
        "public_key_requests": c.public_key_requests,
        "requests": c.requests,
        "asymmetric_requests": c.asymmetric_requests,
        "price_per_10k_requests_usd": _exact(c.request_price),
        "price_per_10k_asymmetric_usd": _exact(c.asymmetric_request_price),
        "key_usd": _exact(c.key_price),
        "requests_usd": _exact(c.request_dollars),
        "requests_usd_after_free_tier": _exact(c.request_dollars_after_free_tier),
        "total_usd": _exact(c.total_dollars),
    }


class Command(KMSCommand):
    help = (
        "Estimate the monthly AWS requests and dollars of signing with one key "
        "(default prices, AWS's: $1 per key-month, $0.03 per 10,000 symmetric requests, "
        "$0.15 per 10,000 Sign and GetPublicKey of native keys). With --json: "
        "one object, request counts as integers and US dollars as exact decimal strings "
        '(fields ending in _usd, e.g. "0.12684": unrounded, unlike the text\'s cents); '
        'with --compare, {"estimates": [...]} of such objects.'
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--transactions-per-month", type=int, metavar="N")
        parser.add_argument("--group-size", type=int, default=1, metavar="G", help="default 1")
        kind = parser.add_mutually_exclusive_group()
        kind.add_argument("--native", action="store_true", help="a native key")
        kind.add_argument(
            "--baseline", action="store_true", help="the old scripts' per-transaction approach"
        )
        kind.add_argument(
            "--compare",
            action="store_true",
            help="a markdown table of all modes for 1k, 10k and 100k transactions a month",
        )
        parser.add_argument(
            "--cache-timeout",
            type=_seconds,
            metavar="SECONDS",
            help="address cache lifetime, 0, or 'never' (default: CONFIO_KMS_CACHE_TIMEOUT)",
        )
        parser.add_argument(
            "--cache",
            choices=["shared", "per-process"],
            help="whether processes share the address cache (default: from CONFIO_KMS_CACHE's "
            "backend; LocMemCache and DummyCache are per process)",
        )
        parser.add_argument(
            "--processes", type=int, default=1, help="processes that sign in a month (default 1)"
        )
        parser.add_argument(
            "--price-per-10k-requests", type=_dollars, default=cost.PRICE_PER_10K_REQUESTS
        )
        parser.add_argument(
            "--price-per-10k-asymmetric",
            type=_dollars,
            default=cost.ASYMMETRIC_PRICE_PER_10K,
            help="price of native keys' Sign and GetPublicKey (default 0.15: asymmetric ECC, "
            "never in the free tier)",
        )
        parser.add_argument("--price-per-key-month", type=_dollars, default=cost.KEY_MONTH_PRICE)

    def handle(self, *args: Any, **options: Any) -> None:
        seconds = options["cache_timeout"]
        if seconds is None:
            seconds = config.cache_seconds()
        timeout = None if seconds == math.inf else seconds
        shared = (
            _configured_cache_is_shared()
            if options["cache"] is None
            else options["cache"] == "shared"
        )

        def estimate(transactions: int, mode: str) -> cost.MonthlyCost:
            return cost.monthly_cost(
                transactions,
                options["group_size"],
                mode,
                cache_timeout=timeout,
                processes=options["processes"],
                shared_cache=shared,
                request_price=options["price_per_10k_requests"],
                asymmetric_request_price=options["price_per_10k_asymmetric"],
                key_price=options["price_per_key_month"],
            )

        volume = options["transactions_per_month"]
        if options["compare"]:
            if volume is not None:
                raise InvalidCostInputError(
                    "--compare tabulates fixed volumes (1k, 10k, 100k a month).",
                    fix="Drop --transactions-per-month, or drop --compare.",
                )
            if self.as_json:
                rows = [
                    estimate_data(estimate(v, m), timeout, shared, options["processes"])
                    for v in COMPARED_VOLUMES
                    for m in (cost.BASELINE, cost.ENVELOPE, cost.NATIVE)
                ]
                self.emit({"estimates": rows}, [])
                return
            self._compare(estimate, options["group_size"])
            return
        if volume is None:
            raise InvalidCostInputError(
                "No signing volume given.", fix="Pass --transactions-per-month N, or --compare."
            )
        mode = cost.NATIVE if options["native"] else cost.ENVELOPE
        if options["baseline"]:
            mode = cost.BASELINE
        result = estimate(volume, mode)
        if self.as_json:
            self.emit(estimate_data(result, timeout, shared, options["processes"]), [])
            return
        self._render(result, timeout, shared)

    def _render(self, c: cost.MonthlyCost, timeout: float | None, shared: bool) -> None:
        per_call = {
            cost.ENVELOPE: "1 kms:Decrypt per call; the ciphertext is read once per process",
            cost.NATIVE: "1 kms:Sign per transaction",
            cost.BASELINE: "1 ssm:GetParameter per transaction, billed as one kms:Decrypt",
        }[c.mode]
        if c.mode == cost.BASELINE:
            lookups = "2 per signing call: each call built a new signer"
        else:
            where = "in the shared cache" if shared else "in each process"
            if timeout is None:
                lookups = f"at most: 2 {where}, as entries never expire"
            elif timeout == 0:
                lookups = "at most: 2 per call, as nothing is cached"
            else:
                lookups = f"at most: 2 per {timeout:g} s {where}"
        lines = [
            ("mode", MODE_NAMES[c.mode]),
            (
                "load",
                f"{c.transactions:,} transactions a month in groups of {c.group_size}: "
                f"{c.calls:,} signing calls",
            ),
            ("signing", f"{c.signing_requests:,} requests ({per_call})"),
            ("lookups", f"{c.lookup_requests:,} requests ({lookups})"),
        ]
        if c.mode == cost.NATIVE:
            lines.append(
                ("public key", f"{c.public_key_requests:,} requests (1 per process start)")
            )
        prices = f"${c.request_price} per 10,000"
        if c.asymmetric_requests and c.asymmetric_request_price != c.request_price:
            prices += f", Sign and GetPublicKey ${c.asymmetric_request_price}"
        free = (
            f"{_money(c.request_dollars_after_free_tier, 4)} if this key has the account's "
            f"{cost.FREE_TIER_REQUESTS:,} free requests a month"
        )
        if c.asymmetric_requests:
            free += " (Sign and GetPublicKey are never free)"
        lines += [
            ("requests", f"{c.requests:,} a month: {_money(c.request_dollars, 4)} at {prices}"),
            ("free tier", free),
            ("key", f"{_money(c.key_price)} a month"),
            ("total", f"{_money(c.total_dollars)} a month"),
        ]
        for label, text in lines:
            self.stdout.write(f"{label + ':':<12}{text}")

    def _compare(self, estimate: Any, group_size: int) -> None:
        self.stdout.write(
            "| transactions a month | group | mode | requests | requests $ | key $ | total $ |"
        )
        self.stdout.write("| ---: | ---: | --- | ---: | ---: | ---: | ---: |")
        for volume in COMPARED_VOLUMES:
            for mode in (cost.BASELINE, cost.ENVELOPE, cost.NATIVE):
                c = estimate(volume, mode)
                self.stdout.write(
                    f"| {volume:,} | {group_size} | {mode} | {c.requests:,} "
                    f"| {_money(c.request_dollars, 4)} | {_money(c.key_price)} "
                    f"| {_money(c.total_dollars)} |"
                )
