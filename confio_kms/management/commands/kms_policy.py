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
from confio_kms.algorand import validation
from confio_kms.common.exceptions import ConfigurationError
from confio_kms.lifecycle import policies as iam
from confio_kms.management.base import KMSCommand

RUNTIME, ADMINISTRATION, KEY_POLICY = "runtime", "administration", "key_policy"
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
# IAM's limit for a managed policy document, whitespace not counted.
MANAGED_POLICY_LIMIT = 6144


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
        account = _account(options["account_id"], key_policy=which == KEY_POLICY)
        settings = conf.kms_settings()
        names = [validation.alias_name(a) for a in options["alias"] or []] or [
            settings.alias_testnet,
            settings.alias_mainnet,
        ]
        names = list(dict.fromkeys(names))  # an alias named twice is covered once
        if which == KEY_POLICY:
            documents = {KEY_POLICY: iam.key_policy(account)}
        else:
            documents = iam.policies(names, settings.region, settings.ssm_prefix, account)
            if which is not None:
                documents = {which: documents[which]}
        # The command line that prints each document alone, for the saving step.
        save_args = [arg for name in names for arg in ("--alias", name)] if options["alias"] else []
        if account != "*":
            save_args += ["--account-id", account]
        steps = [
            step
            for document in documents
            for step in _steps(document, names, settings.region, save_args)
        ]
        warnings = [
            f"The {document} policy has {size:,} characters (without whitespace); IAM "
            f"accepts at most {MANAGED_POLICY_LIMIT:,} in a managed policy: cover fewer "
            "aliases in each (--alias), and create one policy per set."
            for document, size in _sizes(documents).items()
            if size > MANAGED_POLICY_LIMIT
        ]
        if self.as_json:
            data = {
                "account_id": account,
                "aliases": names,
                "documents": documents,
                "commands": [dataclasses.asdict(step) for step in steps],
                "warnings": warnings,
            }
            self.emit(data, [])
            return
        # Today's default, both IAM documents, is one object keyed by name; a document
        # asked for alone is printed as is: what the AWS CLI reads from the file.
        printed = documents if which is None else documents[which]
        self.stdout.write(json.dumps(printed, indent=2))
        if options["verbosity"] == 0:
            return
        for warning in warnings:
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


def _account(value: str, *, key_policy: bool) -> str:
    """The account id for the ARNs: 12 digits, or ``*`` in the IAM policies only."""
    if key_policy and value == "*":
        raise ConfigurationError(
            "--key-policy needs --account-id: a key policy names the account's principals "
            "(arn:aws:iam::ID:root), which * cannot stand for.",
            fix="Pass --account-id with the 12 digits of the account that owns the keys "
            "(`aws sts get-caller-identity --query Account --output text` prints them).",
        )
    return iam.account_id(value, wildcard=not key_policy)


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
                "aws", "kms", "describe-key", "--region", region, "--key-id", f"alias/{name}",
                "--query", "KeyMetadata.KeyId", "--output", "text",
            ]
        )  # fmt: skip
        apply = iam.put_key_policy_command(region, "KEY_ID").replace("KEY_ID", f'"$({key_id})"')
        steps.append(Step(document, file, save, apply, alias=name))
    return steps


def _sizes(documents: dict[str, Any]) -> dict[str, int]:
    """Each IAM policy's length as IAM counts it (no whitespace outside strings)."""
    return {
        name: len(json.dumps(document, separators=(",", ":")))
        for name, document in documents.items()
        if name != KEY_POLICY
    }
