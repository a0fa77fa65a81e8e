"""What the confio_kms commands share: errors, --json, progress, confirmations, key tables."""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Iterable, Sequence, Set
from datetime import datetime
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from confio_kms.common import progress
from confio_kms.common.exceptions import ConfioKMSError
from confio_kms.common.redaction import holds_secrets
from confio_kms.lifecycle.created import KeyRecord

# The arguments several commands take, declared once: name -> (flags, add_argument's
# keywords). A command lists the ones it takes in ``arguments``.
SHARED: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "alias": (("--alias",), {"help": "Key alias (default: the active network's alias)."}),
    "native": (
        ("--native",),
        {
            "action": "store_true",
            "help": "The new key is a native one: Ed25519, generated and used inside KMS "
            "(no private key or mnemonic ever exists outside it).",
        },
    ),
    "mnemonic_out": (
        ("--mnemonic-out",),
        {
            "metavar": "FILE",
            "help": "Write a new envelope key's backup mnemonic to this new file (mode 0600) "
            "instead of the terminal.",
        },
    ),
    "interactive": (
        ("--no-input",),
        {"action": "store_false", "dest": "interactive", "help": "Ask nothing (scripts)."},
    ),
    "yes": (
        ("--yes",),
        {
            "action": "store_true",
            "help": "Do not ask for confirmation (scripts that confirmed another way).",
        },
    ),
    "json": (
        ("--json",),
        {"action": "store_true", "help": "Print the result as JSON (for scripts)."},
    ),
}
# What ``confirms = True`` adds: --no-input asks nothing, so --yes stands in for the prompt.
CONFIRMATION_ARGUMENTS = ("interactive", "yes")


class KMSCommand(BaseCommand):
    """What every confio_kms command does the same way.

    - Expected failures (any ConfioKMSError) end as one line on stderr and exit 1;
      ``--traceback`` shows the full chain, as for any Django command.
    - ``--json`` prints the result as one JSON document on stdout (real booleans,
      numbers and nulls); errors and progress stay on stderr.
    - Slow steps print one line each on stderr; ``-v 0`` silences them.
    - Commands with ``confirms = True`` get ``--no-input`` and ``--yes`` and call
      :meth:`confirm` before anything destructive or costly on mainnet.
    - Arguments several commands take (``--alias``, ``--native``, ``--mnemonic-out``)
      are declared once, in ``SHARED``; a command names those it takes in ``arguments``.

    Django's system checks are not run first: the commands validate what they use
    themselves, and an operator fixing one key should not be blocked by another app's.
    """

    requires_system_checks: list[str] = []  # noqa: RUF012 (Django's own attribute)
    confirms = False
    """True for commands that spend money or destroy a key: ``--yes`` and ``--no-input``."""
    arguments: tuple[str, ...] = ()
    """The shared arguments (keys of ``SHARED``) the command takes besides its own."""
    as_json = False

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        for name in (*self.arguments, *(CONFIRMATION_ARGUMENTS if self.confirms else ()), "json"):
            flags, declaration = SHARED[name]
            parser.add_argument(*flags, **declaration)
        return parser

    def execute(self, *args: Any, **options: Any) -> str | None:
        self.as_json = bool(options.get("json"))
        quiet = options.get("verbosity", 1) == 0
        try:
            with progress.reported_to(None if quiet else self.progress):
                return super().execute(*args, **options)
        except ConfioKMSError as error:
            raise CommandError(" ".join(str(error).split())) from error

    def progress(self, message: str) -> None:
        # Not styled as an error: it is news, and stdout stays for the result.
        self.stderr.write(f"... {message}", style_func=lambda text: text)

    def emit(self, data: Any, lines: Iterable[str], *, done: str = "") -> None:
        """The result: ``data`` as JSON with --json, else ``lines`` for people.

        Standard output closed, a broken pipe or an unwritable stream end as one
        ``CommandError`` line saying ``done`` (what was already done, e.g. that a key
        and its backup exist): the result is lost, never what was made.
        """
        lines = list(lines)
        if not self.as_json and not lines:
            return
        text = json.dumps(data, indent=2, default=_json_value) if self.as_json else "\n".join(lines)
        try:
            if getattr(self.stdout, "_out", self.stdout) is None:
                raise OSError(errno.EBADF, "standard output is closed")
            self.stdout.write(text)
            self.stdout.flush()
        except (OSError, ValueError) as error:
            if getattr(self.stdout, "_out", None) in (None, sys.__stdout__):
                _silence_stdout()
            why = getattr(error, "strerror", None) or str(error)
            raise CommandError(
                f"Could not print the result ({why}). {done or 'The command completed.'} "
                "Fix: run again with standard output open to see the result (a terminal, "
                "a file, or a pipe read to the end)."
            ) from None

    def confirm(self, options: dict[str, Any], name: str, action: str, what: str = "alias") -> None:
        """Have the operator type ``name`` at a terminal, or have passed --yes.

        ``action`` says what would happen, e.g. "Create a key on mainnet"; ``what`` names
        what ``name`` is ("alias", or "key id" for a key no alias names).
        """
        if options.get("yes"):
            return
        stdin = options.get("stdin") or sys.stdin
        if options.get("interactive", True) and is_terminal(stdin):
            # The question goes to stderr, not input()'s stdout: stdout is the result's
            # (--json, or redirected to a file the operator would never see ask).
            self.stderr.write(f"{action}.", style_func=lambda text: text)
            self.stderr.write(
                f"Type the {what} ({name}) to go on: ", style_func=lambda text: text, ending=""
            )
            self.stderr.flush()
            answer = stdin.readline()  # "" when input is closed: not a confirmation
            if answer.strip().removeprefix("alias/") != name:
                raise CommandError(f"Not confirmed (expected {name}); nothing was done.")
            return
        raise CommandError(
            f"{action} needs confirmation; nothing was done. Fix: run at a terminal and "
            f"type the {what} when asked, or pass --yes."
        )


def _silence_stdout() -> None:
    """Point a broken or closed standard output at /dev/null, so that Python's own
    flush at exit reports nothing more (the failure has been said once)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    except OSError:
        pass


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


CONFIRMATION = "saved"


class BackupDestination:
    """Where a new envelope key's mnemonic goes: a new 0600 file, or the terminal, once.

    Checked before anything is created (no file may be overwritten; without a file
    there must be a terminal). Leaving the block with an error removes the unused file.
    """

    def __init__(self, command: KMSCommand, path: str | None, interactive: bool) -> None:
        self.command, self.path, self.interactive = command, path, interactive
        if not path and command.as_json:
            raise CommandError(
                "With --json, standard output is for the JSON result, not the backup "
                "mnemonic; nothing was created. Fix: pass --mnemonic-out FILE."
            )
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
            # With --json the notice is news, like progress: stdout keeps the JSON alone.
            (self.command.stderr if self.command.as_json else out).write(
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


COLUMNS = ("name", "address", "authorized_by", "network", "kind", "key_state", "created")


def key_rows(records: Sequence[KeyRecord]) -> list[dict[str, Any]]:
    """One JSON object per key; ``authorized_by`` and ``created`` are null when unknown."""
    return [
        {
            "name": r.name,
            "address": r.address,
            "authorized_by": r.auth_address or None,
            "network": r.network,
            "kind": r.kind,
            "mode": r.kind,  # deprecated name of "kind", kept for one release
            "key_state": r.key_state,
            "created": r.creation_date.isoformat() if r.creation_date else None,
            "key_id": r.key_id,
            "managed_by_confio_kms": r.managed,
        }
        for r in records
    ]


def _cell(column: str, value: Any) -> str:
    if column == "paused":
        return "PAUSED" if value else ""
    if column == "authorized_by":
        return str(value or "self")
    return "" if value is None else str(value)


def paused_rows(records: Sequence[KeyRecord], paused: Set[str]) -> list[dict[str, Any]]:
    """``key_rows`` with ``paused``: whether kms_pause paused each alias."""
    return [{**row, "paused": row["name"] in paused} for row in key_rows(records)]


def write_keys(
    out: OutputWrapper, records: Sequence[KeyRecord], as_json: bool, paused: Set[str] = frozenset()
) -> None:
    """The key table, or JSON; ``paused``: alias names paused by kms_pause (a column,
    shown only when one is, and ``paused`` in JSON)."""
    rows = paused_rows(records, paused)
    columns = (*COLUMNS, "paused") if paused & {row["name"] for row in rows} else COLUMNS
    if as_json:
        out.write(json.dumps(rows, indent=2))
        return
    if not rows:
        out.write("No Algorand keys found in this account and region.")
        return
    cells = [{c: _cell(c, row[c]) for c in columns} for row in rows]
    widths = {c: max(len(c), *(len(row[c]) for row in cells)) for c in columns}
    out.write("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in cells:
        out.write("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip())


def is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def unwritable(path: str, error: OSError, verb: str = "create") -> CommandError:
    """The one-line refusal when the backup file ``path`` cannot be made."""
    if isinstance(error, FileExistsError):
        return CommandError(
            f"{path} already exists; nothing was created. Fix: choose a new file name "
            "(confio_kms never overwrites a backup)."
        )
    return CommandError(
        f"Cannot {verb} {path} ({error.strerror}); nothing was created. "
        "Fix: choose a writable location."
    )


def new_private_file(path: str) -> IO[str]:
    """Open a file that did not exist, readable by its owner only."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        raise unwritable(path, error) from None
    return os.fdopen(fd, "w")
