from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from ... import conf, iam, validation
from ..base import KMSCommand


class Command(KMSCommand):
    help = (
        "Print least-privilege IAM policies (runtime and administration) for the configured "
        "aliases, region and SSM prefix."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--alias",
            action="append",
            help="An alias to cover (repeatable; default: KMS_KEY_ALIAS_TESTNET and _MAINNET).",
        )
        parser.add_argument(
            "--account-id", default="*", help="AWS account id for the ARNs (default: *)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        settings = conf.kms_settings()
        names = [validation.alias_name(a) for a in options["alias"] or []] or [
            settings.alias_testnet,
            settings.alias_mainnet,
        ]
        documents = iam.policies(names, settings.region, settings.ssm_prefix, options["account_id"])
        self.stdout.write(json.dumps(documents, indent=2))
