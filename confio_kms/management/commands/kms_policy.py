"""kms_policy: the IAM policies and the key policy, each alone or the two IAM policies
together, and the AWS CLI commands that apply them.

stdout holds the document(s) only, so it can be redirected into the file the commands
name; the commands go to stderr (silent with ``-v 0``). With ``--json`` stdout is one
object holding the documents and the commands.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from argparse import ArgumentParser
from typing import Any

from confio_kms import factory as conf
from confio_kms.algorand.validation import Alias
from confio_kms.lifecycle import policies as iam
from confio_kms.lifecycle.policy_documents import (
    ADMINISTRATION,
    KEY_POLICY,
    RUNTIME,
    PolicyDocuments,
    policy_documents,
)
from confio_kms.management.base import KMSCommand

# The flag that prints each document alone, and its option name.
FLAGS = {RUNTIME: "--runtime", ADMINISTRATION: "--admin", KEY_POLICY: "--key-policy"}
DESTS = {RUNTIME: "runtime", ADMINISTRATION: "admin", KEY_POLICY: "key_policy"}
# The IAM policy names in the printed create-policy commands.
POLICY_NAMES = {RUNTIME: "confio-kms-runtime", ADMINISTRATION: "confio-kms-administration"}
FILES = {
    RUNTIME: "confio-kms-runtime.json",
    ADMINISTRATION: "confio-kms-administration.json",
    KEY_POLICY: iam.KEY_POLICY_FILE,
}


@dataclasses.dataclass(frozen=True)
class Step:
    """How to apply one document: save it to ``file``, then run ``apply``."""

    document: str
    file: str
    save: str
    apply: str
    alias: str | None = None


class Command(KMSCommand):
    help = (
        "Print the least-privilege IAM policies (runtime and administration) for the "
        "configured aliases, region and SSM prefix, or with --runtime, --admin or "
        "--key-policy one document alone, ready for `aws iam create-policy` or `aws kms "
        "put-key-policy`. The AWS CLI commands that apply it go to stderr (-v 0: none), "
        "so stdout can be redirected into the file they name. With --json: one object "
        "holding the documents and the commands. Makes no AWS request."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        which = parser.add_mutually_exclusive_group()
        which.add_argument(
            FLAGS[RUNTIME],
            action="store_true",
            help="Print only the runtime IAM policy (the signing identity's).",
        )
        which.add_argument(
            FLAGS[ADMINISTRATION],
            action="store_true",
            help="Print only the administration IAM policy (kms_setup, kms_rotate, deletion).",
        )
        which.add_argument(
            FLAGS[KEY_POLICY],
            action="store_true",
            help="Print only the key policy for the confio keys (MFA for deletion and "
            "disabling; native keys deleted only by the break-glass role). Needs --account-id.",
        )
        parser.add_argument(
            "--alias",
            action="append",
            help="An alias to cover (repeatable; default: KMS_KEY_ALIAS_TESTNET and _MAINNET).",
        )
        parser.add_argument(
            "--account-id",
            default="*",
            help="The 12-digit AWS account id for the ARNs (default: * in the IAM policies; "
            "--key-policy needs the real one).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        which = next((name for name, dest in DESTS.items() if options[dest]), None)
        settings = conf.kms_settings()
        chosen = policy_documents(
            options["alias"] or [settings.alias_testnet, settings.alias_mainnet],
            settings.region,
            settings.ssm_prefix,
            options["account_id"],
            only=which,
        )
        # The command line that prints each document alone, for the saving step.
        names = chosen.aliases
        save_args = [arg for name in names for arg in ("--alias", name)] if options["alias"] else []
        if chosen.account != "*":
            save_args += ["--account-id", chosen.account]
        steps = [
            step
            for document in chosen.documents
            for step in _steps(document, names, settings.region, save_args)
        ]
        if self.as_json:
            data = {
                "account_id": chosen.account,
                "aliases": names,
                "documents": chosen.documents,
                "commands": [dataclasses.asdict(step) for step in steps],
                "warnings": chosen.warnings,
            }
            self.emit(data, [])
            return
        self._print(chosen, which, steps, quiet=options["verbosity"] == 0)

    def _print(
        self, chosen: PolicyDocuments, which: str | None, steps: list[Step], *, quiet: bool
    ) -> None:
        """The document(s) on stdout; the warnings and the commands on stderr."""
        # Today's default, both IAM documents, is one object keyed by name; a document
        # asked for alone is printed as is: what the AWS CLI reads from the file.
        printed = chosen.documents if which is None else chosen.documents[which]
        self.stdout.write(json.dumps(printed, indent=2))
        if quiet:
            return
        for warning in chosen.warnings:
            self.stderr.write(f"Warning: {warning}")
        lines = [
            "To apply, save it and run, from an MFA session (once on a key, the key policy "
            "denies PutKeyPolicy without MFA):"
            if which == KEY_POLICY
            else "To apply, save each document alone and run, as an IAM administrator:"
        ]
        saved: set[str] = set()
        for step in steps:
            if step.save not in saved:
                saved.add(step.save)
                lines.append(f"  {step.save}")
            lines.append(f"  {step.apply}")
        for line in lines:
            self.stderr.write(line, style_func=lambda text: text)


def _steps(document: str, names: list[str], region: str, save_args: list[str]) -> list[Step]:
    """The commands that save ``document`` alone in its file and apply it."""
    file = FILES[document]
    save = shlex.join(["manage.py", "kms_policy", FLAGS[document], *save_args])
    save += f" > {file}"
    if document != KEY_POLICY:
        apply = shlex.join(
            [
                "aws", "iam", "create-policy",
                "--policy-name", POLICY_NAMES[document],
                "--policy-document", f"file://{file}",
            ]
        )  # fmt: skip
        return [Step(document, file, save, apply)]
    # PutKeyPolicy takes a key id or ARN, not an alias: describe-key resolves each one.
    steps = []
    for name in names:
        key_id = shlex.join(
            [
                "aws", "kms", "describe-key", "--region", region, "--key-id", str(Alias(name)),
                "--query", "KeyMetadata.KeyId", "--output", "text",
            ]
        )  # fmt: skip
        apply = iam.put_key_policy_command(region, "KEY_ID").replace("KEY_ID", f'"$({key_id})"')
        steps.append(Step(document, file, save, apply, alias=name))
    return steps
