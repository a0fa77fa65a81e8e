"""``manage.py kms_pause NAME [--reason TEXT]``: stop every process signing with a key."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from confio_kms.algorand.validation import Alias
from confio_kms.management import guarded


class Command(guarded.GuardCommand):
    help = (
        "Pause a key fleet-wide: every process sharing this database refuses to sign with "
        "it from its next signing call (typed error with the reason) until kms_resume."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name", help="Key alias, with or without alias/.")
        parser.add_argument("--reason", default="", help="Why (shown to every refused caller).")

    def handle(self, *args: Any, **options: Any) -> None:
        name = self.key_name(options["name"])
        self.confirm(options, name, f"Pause {Alias(name)}: nothing is signed with it until resumed")
        made = guarded.pause(name, options["reason"], self.audit_sink())
        state = "paused" if made else "already paused (its first reason stays)"
        self.emit({"alias": str(Alias(name)), "paused": True, "changed": made},
                  [f"{Alias(name)}: {state}."])  # fmt: skip
