from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from confio_kms.management.base import KMSCommand


class Command(KMSCommand):
    help = (
        "Run a local AWS endpoint (KMS and SSM on loopback, the sandbox extra) and print "
        "the settings that point this project at it (--json: as one JSON object); "
        "Ctrl-C stops it."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--port", type=int, default=0, help="Loopback port (default: free).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:  # the sandbox extra is optional: only this command needs it
            from confio_kms.sandbox.serve import serve
        except ImportError as error:
            raise CommandError(
                f"The local endpoint needs the sandbox extra ({error.name} is missing). "
                'Fix: pip install "confio-kms[sandbox]".'
            ) from None
        serve(self.stdout, options["port"], as_json=options["json"])
