from __future__ import annotations

import math
from argparse import ArgumentParser, ArgumentTypeError
from decimal import Decimal, InvalidOperation
from typing import Any

from ... import cache, cost
from ...exceptions import InvalidCostInputError
from ..base import KMSCommand

COMPARED_VOLUMES = (1_000, 10_000, 100_000)
MODE_NAMES = {
    cost.ENVELOPE: "one envelope key",
    cost.NATIVE: "one native key",
    cost.BASELINE: "the old scripts' per-transaction decrypt, one envelope key",
}


def _seconds(value: str) -> float:
    if value == "never":
        return math.inf
    try:
        return int(value)
    except ValueError:
        raise ArgumentTypeError("expected whole seconds or 'never'") from None


def _dollars(value: str) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation:
        raise ArgumentTypeError("expected dollars, e.g. 0.03") from None


def _money(value: Decimal, places: int = 2) -> str:
    return f"${value:,.{places}f}"


class Command(KMSCommand):
    help = (
        "Estimate the monthly AWS requests and dollars of signing with one key "
        "(default prices: $1 per key-month, $0.03 per 10,000 requests)."
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
            help="address cache lifetime, or 'never' (default: CONFIO_KMS_CACHE_TIMEOUT)",
        )
        parser.add_argument(
            "--processes", type=int, default=1, help="process starts a month (default 1)"
        )
        parser.add_argument(
            "--price-per-10k-requests", type=_dollars, default=cost.PRICE_PER_10K_REQUESTS
        )
        parser.add_argument("--price-per-key-month", type=_dollars, default=cost.KEY_MONTH_PRICE)

    def handle(self, *args: Any, **options: Any) -> None:
        seconds = options["cache_timeout"]
        if seconds is None:
            seconds = cache.timeout()
        timeout = None if seconds == math.inf else int(seconds)

        def estimate(transactions: int, mode: str) -> cost.MonthlyCost:
            return cost.monthly_cost(
                transactions,
                options["group_size"],
                mode,
                cache_timeout=timeout,
                processes=options["processes"],
                request_price=options["price_per_10k_requests"],
                key_price=options["price_per_key_month"],
            )

        if options["compare"]:
            self._compare(estimate, options["group_size"])
            return
        if options["transactions_per_month"] is None:
            raise InvalidCostInputError(
                "No signing volume given.", fix="Pass --transactions-per-month N, or --compare."
            )
        mode = cost.NATIVE if options["native"] else cost.ENVELOPE
        if options["baseline"]:
            mode = cost.BASELINE
        self._render(estimate(options["transactions_per_month"], mode), timeout)

    def _render(self, c: cost.MonthlyCost, timeout: int | None) -> None:
        per_call = {
            cost.ENVELOPE: "1 ssm:GetParameter per call, billed as one kms:Decrypt",
            cost.NATIVE: "1 kms:Sign per transaction",
            cost.BASELINE: "1 ssm:GetParameter per transaction, billed as one kms:Decrypt",
        }[c.mode]
        if c.mode == cost.BASELINE:
            lookups = "2 per signing call: each call built a new signer"
        else:
            window = "per process start" if timeout is None else f"per {timeout} s cache window"
            lookups = f"at most; 2 {window} with signing in it"
            if c.mode == cost.NATIVE:
                lookups += ", plus kms:GetPublicKey per process start"
        lines = [
            ("mode", MODE_NAMES[c.mode]),
            (
                "load",
                f"{c.transactions:,} transactions a month in groups of {c.group_size}: "
                f"{c.calls:,} signing calls",
            ),
            ("signing", f"{c.signing_requests:,} requests ({per_call})"),
            ("lookups", f"{c.lookup_requests:,} requests ({lookups})"),
            (
                "requests",
                f"{c.requests:,} a month: {_money(c.request_dollars, 4)} "
                f"at ${c.request_price} per 10,000",
            ),
            ("key", f"{_money(c.key_price)} a month"),
            ("total", f"{_money(c.total_dollars)} a month"),
        ]
        for label, text in lines:
            self.stdout.write(f"{label + ':':<10}{text}")

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
