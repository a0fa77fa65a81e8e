from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from confio_kms import factory as conf
from confio_kms import settings as config
from confio_kms.common.exceptions import GuardUnavailableError
from confio_kms.guardrails import pauses
from confio_kms.management.base import KMSCommand, key_rows, paused_rows, write_keys


class Command(KMSCommand):
    help = "List the Algorand keys in KMS: name, address, network, mode, key state, creation date."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--all",
            action="store_true",
            dest="all_keys",
            help="Also list this library's keys no alias names: retired by a rotation or "
            "orphaned by an interrupted kms_setup (each costs $1 a month until deleted: "
            "`kms_delete KEY_ID`).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        manager = conf.kms_manager()
        aliased = manager.list_keys()  # AWS first: its failure is the one line to show
        paused = self._paused()
        if not options["all_keys"]:
            write_keys(self.stdout, aliased, options["json"], paused)
            return
        unaliased = manager.unaliased().keys()
        if options["json"]:
            rows = [{**row, "status": "active"} for row in paused_rows(aliased, paused)]
            for key, row in zip(unaliased, key_rows([k.record for k in unaliased]), strict=True):
                served = f"alias/{key.record.name}" if key.record.name else None
                rows.append({**row, "name": None, "status": key.status, "alias_before": served})
            self.emit(rows, [])
            return
        write_keys(self.stdout, aliased, False, paused)
        if not unaliased:
            self.stdout.write("\nNo retired or orphaned keys of confio-kms.")
            return
        self.stdout.write("\nKeys no alias names (retired or orphaned; `kms_delete KEY_ID`):")
        header = ("KEY_ID", "STATUS", "ALIAS_BEFORE", "ADDRESS", "KIND", "KEY_STATE", "CREATED")
        lines = [header]
        for key in unaliased:
            r = key.record
            created = r.creation_date.isoformat() if r.creation_date else ""
            before = f"alias/{r.name}" if r.name else "unknown"
            lines.append((r.key_id, key.status, before, r.address, r.kind, r.key_state, created))
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        for line in lines:
            self.stdout.write(
                "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
            )

    def _paused(self) -> set[str]:
        """The paused alias names; none, with a warning, if the database cannot say (the
        keys are listed all the same: listing must work before `migrate`)."""
        if not config.guard_on():
            return set()
        try:
            return set(pauses())
        except GuardUnavailableError as error:
            self.stderr.write(f"Warning: pauses unknown: {error.message} Fix: {error.fix}")
            return set()
