from __future__ import annotations

from typing import Any

from confio_kms import factory as conf
from confio_kms import settings as config
from confio_kms.guardrails import pauses
from confio_kms.management.base import KMSCommand, write_keys


class Command(KMSCommand):
    help = "List the Algorand keys in KMS: name, address, network, mode, key state, creation date."

    def handle(self, *args: Any, **options: Any) -> None:
        paused = set(pauses()) if config.guard_on() else set()
        write_keys(self.stdout, conf.kms_manager().list_keys(), options["json"], paused)
