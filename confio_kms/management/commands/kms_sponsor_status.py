"""``manage.py kms_sponsor_status [NAME]``: the sponsor account's balance and runway."""

from __future__ import annotations

from argparse import ArgumentParser, ArgumentTypeError
from typing import Any

from confio_kms import sponsor_health
from confio_kms.algorand.validation import Alias
from confio_kms.management.base import KMSCommand


def _days(value: str) -> float:
    try:
        days = float(value)
    except ValueError:
        raise ArgumentTypeError("expected a number of days, e.g. 7") from None
    if not 0 < days <= 3660:
        raise ArgumentTypeError("expected a number of days above 0 and at most 3660")
    return days


def _micro(value: int) -> str:
    return f"{value:,} microalgos ({value / 1_000_000:,.6f} ALGO)"


class Command(KMSCommand):
    help = (
        "Show the sponsor account's balance, the minimum balance Algorand makes it keep, "
        "the floor (CONFIO_KMS_SPONSOR_MIN_BALANCE), the fees its key signed in the "
        "trailing window (from the audit rows, CONFIO_KMS_AUDIT_DB) and the estimated "
        "runway in days and transactions. NAME: a key's alias (default: the sponsor the "
        "settings select). With --json: one object, amounts in microalgos as integers, "
        "unknown figures null."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name", nargs="?", metavar="NAME", help="the key's alias")
        parser.add_argument(
            "--days",
            type=_days,
            default=sponsor_health.DEFAULT_WINDOW_DAYS,
            help=f"the trailing window of fees, in days (default "
            f"{sponsor_health.DEFAULT_WINDOW_DAYS})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        account = sponsor_health.sponsor_account(options["name"])
        status = sponsor_health.sponsor_status(account, options["days"])
        self.emit(status, _lines(status))


def _lines(s: dict[str, Any]) -> list[str]:
    who = f"{Alias(s['alias'])} " if s["alias"] else ""
    floor = _micro(s["floor"]) if s["floor"] else "none (CONFIO_KMS_SPONSOR_MIN_BALANCE unset)"
    if s["below_floor"]:
        floor += f": BELOW IT, fund {s['address']}"
    days = f"{s['window_days']:g} days"
    fees = s["fees"]
    if fees is None:
        spent = "unknown: audit rows are off (CONFIO_KMS_AUDIT_DB)"
    else:
        spent = (
            f"{fees['fees']:,} microalgos for {fees['transactions']:,} transactions "
            f"in {fees['calls']:,} signing calls"
        )
    rows = [
        ("sponsor", f"{who}{s['address']} ({s['network']})"),
        ("source", s["balance_source"]),
        ("balance", _micro(s["balance"])),
        ("min balance", f"{_micro(s['min_balance'])}, kept by Algorand"),
        ("floor", floor),
        ("spendable", f"{_micro(s['spendable'])} above both"),
        (f"fees {days}", spent),
    ]
    if s["runway_days"] is None:
        rows.append(("runway", "unknown: no fees recorded in the window"))
    else:
        rows += [
            ("per day", f"{s['fees_per_day']:,.0f} microalgos"),
            ("per txn", f"{s['average_fee_per_transaction']:,.0f} microalgos"),
            ("runway", f"{s['runway_days']:,.0f} days"),
            ("", f"{s['runway_transactions']:,} transactions at the average fee"),
        ]
    limits = s["limits"] or [{"name": "none configured"}]
    for limit in limits:
        text = str(limit.get("name", ""))
        if "limit" in limit:
            text += f": {limit.get('used', 0):,} / {limit['limit']:,} per {limit.get('window')}"
        rows.append(("limits" if limit is limits[0] else "", text))
    return [f"{label + ':' if label else '':<14}{text}" for label, text in rows]
