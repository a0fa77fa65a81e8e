"""What the confio_kms commands share: error handling and key tables."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, OutputWrapper

from ..exceptions import ConfioKMSError
from ..manager import KeyRecord
from ..redaction import holds_secrets


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


CONFIRMATION = "saved"


class BackupDestination:
    """Where a new envelope key's mnemonic goes: a new 0600 file, or the terminal, once.

    Checked before anything is created (no file may be overwritten; without a file
    there must be a terminal). Leaving the block with an error removes the unused file.
    """

    def __init__(self, command: BaseCommand, path: str | None, interactive: bool) -> None:
        self.command, self.path, self.interactive = command, path, interactive
        self.file = new_private_file(path) if path else None
        if self.file is None and not is_terminal(command.stdout):
            raise CommandError(
                "No terminal to show the backup mnemonic on; nothing was created. "
                "Fix: run at a terminal, or pass --mnemonic-out FILE."
            )
        self.delivered = False

    def __enter__(self) -> BackupDestination:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.file is not None and not self.delivered:
            self.file.close()
            os.unlink(str(self.path))

    @holds_secrets
    def deliver(self, phrase: str, address: str) -> None:
        out = self.command.stdout
        self.delivered = True
        if self.file is not None:
            with self.file:
                self.file.write(f"{phrase}\n")
            out.write(
                f"Backup mnemonic written to {self.path} (mode 0600). "
                "Move it offline and delete the file."
            )
            return
        # The one deliberate display of a secret: on the terminal, once.
        out.write("")
        out.write("BACKUP MNEMONIC (shown once; write it down offline, never in a file):")
        out.write(f"  {phrase}")
        out.write("")
        if not self.interactive:
            return
        while True:
            try:
                answer = input(f"Type '{CONFIRMATION}' once the mnemonic is stored offline: ")
            except EOFError:
                raise CommandError(
                    f"No confirmation received; the key was created ({address}). "
                    "Fix: make sure the mnemonic shown above is stored offline."
                ) from None
            if answer.strip().lower() == CONFIRMATION:
                break
        out.write("Confirmed. Clear your terminal's scrollback now.")


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


def is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def new_private_file(path: str) -> IO[str]:
    """Open a file that did not exist, readable by its owner only."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CommandError(
            f"{path} already exists; nothing was created. Fix: choose a new file name "
            "(confio_kms never overwrites a backup)."
        ) from None
    except OSError as error:
        raise CommandError(
            f"Cannot create {path} ({error.strerror}); nothing was created. "
            "Fix: choose a writable location."
        ) from None
    return os.fdopen(fd, "w")
