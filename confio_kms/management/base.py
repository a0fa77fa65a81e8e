"""What the confio_kms commands share: error handling and key tables."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.core.management.base import BaseCommand, CommandError, OutputWrapper

from ..exceptions import ConfioKMSError
from ..manager import KeyRecord


class KMSCommand(BaseCommand):
    """Expected failures (any ConfioKMSError) end as one line on stderr and exit 1.

    ``--traceback`` shows the full chain, as for any Django command. Django's system
    checks are not run first: the commands validate what they use themselves, and
    an operator fixing one key should not be blocked by another app's check.
    """

    requires_system_checks: list[str] = []  # noqa: RUF012 (Django's own attribute)

    def execute(self, *args: Any, **options: Any) -> str | None:
        try:
            return super().execute(*args, **options)
        except ConfioKMSError as error:
            raise CommandError(" ".join(str(error).split())) from error


COLUMNS = ("name", "address", "authorized_by", "network", "mode", "key_state", "created")


def key_rows(records: Sequence[KeyRecord]) -> list[dict[str, str]]:
    return [
        {
            "name": r.name,
            "address": r.address,
            "authorized_by": r.auth_address or "self",
            "network": r.network,
            "mode": r.mode,
            "key_state": r.key_state,
            "created": r.creation_date.isoformat() if r.creation_date else "",
            "key_id": r.key_id,
            "managed_by_confio_kms": str(r.managed).lower(),
        }
        for r in records
    ]


def write_keys(out: OutputWrapper, records: Sequence[KeyRecord], as_json: bool) -> None:
    rows = key_rows(records)
    if as_json:
        out.write(json.dumps(rows, indent=2))
        return
    if not rows:
        out.write("No Algorand keys found in this account and region.")
        return
    widths = {c: max(len(c), *(len(row[c]) for row in rows)) for c in COLUMNS}
    out.write("  ".join(c.upper().ljust(widths[c]) for c in COLUMNS).rstrip())
    for row in rows:
        out.write("  ".join(row[c].ljust(widths[c]) for c in COLUMNS).rstrip())
