"""``manage.py kms_resume NAME``: lift a key's fleet-wide pause."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from confio_kms.algorand.validation import Alias
from confio_kms.management import guarded


class Command(guarded.GuardCommand):
    help = "Resume a key paused with kms_pause: every process signs with it again."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name", help="Key alias, with or without alias/.")

    def handle(self, *args: Any, **options: Any) -> None:
        name = self.key_name(options["name"])
        self.confirm(options, name, f"Resume {Alias(name)}: it signs again in every process")
        lifted = guarded.resume(name, self.audit_sink())
        state = "resumed" if lifted else "was not paused; nothing changed"
        self.emit({"alias": str(Alias(name)), "paused": False, "changed": lifted},
                  [f"{Alias(name)}: {state}."])  # fmt: skip
