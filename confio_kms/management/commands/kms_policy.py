from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from ... import conf, iam, validation
from ..base import KMSCommand


class Command(KMSCommand):
    help = (
        "Print least-privilege IAM policies (runtime and administration) for the configured "
        "aliases, region and SSM prefix; with --key-policy, the key policy for the keys."
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
        parser.add_argument(
            "--key-policy",
            action="store_true",
            help="Print the key policy for the confio keys instead (MFA for deletion and "
            "disabling; native keys deleted only by the break-glass role). Needs --account-id.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["key_policy"]:
            if options["account_id"] == "*":
                raise CommandError(
                    "--key-policy needs --account-id: a key policy names the account's "
                    "principals. Fix: pass --account-id with the 12 digits of the account."
                )
            document = iam.key_policy(iam.account_id(options["account_id"]))
            self.stdout.write(json.dumps(document, indent=2))
            return
        account = iam.account_id(options["account_id"], wildcard=True)
        settings = conf.kms_settings()
        names = [validation.alias_name(a) for a in options["alias"] or []] or [
            settings.alias_testnet,
            settings.alias_mainnet,
        ]
        documents = iam.policies(names, settings.region, settings.ssm_prefix, account)
        self.stdout.write(json.dumps(documents, indent=2))
