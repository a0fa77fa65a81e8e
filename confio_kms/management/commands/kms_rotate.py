from __future__ import annotations

from argparse import ArgumentParser
from dataclasses import asdict, fields
from typing import Any

from django.core.management.base import CommandError

from confio_kms import factory as conf
from confio_kms.algorand import networks, validation
from confio_kms.algorand.validation import Alias
from confio_kms.lifecycle.manager import KeyRecord
from confio_kms.lifecycle.rotation import RotationResult
from confio_kms.lifecycle.rotation_plan import RotationPlan, with_article
from confio_kms.management.base import BackupDestination, KMSCommand


class Command(KMSCommand):
    help = (
        "Rotate a key without changing the account address: create a new key, rekey the "
        "account to it, and switch the alias once the rekey is confirmed. Running it again "
        "finishes or rolls back an interrupted rotation. --dry-run changes nothing."
    )
    confirms = True
    arguments = ("alias", "native", "mnemonic_out")

    def add_arguments(self, parser: ArgumentParser) -> None:
        how = parser.add_mutually_exclusive_group(required=True)
        how.add_argument("--submit", action="store_true", help="Submit the rekey and wait for it.")
        how.add_argument(
            "--dry-run",
            action="store_true",
            help="Show what a rotation would do now and the transaction it would sign; "
            "creates, tags and signs nothing.",
        )
        how.add_argument(
            "--sign-only",
            action="store_true",
            help="Create the new key (billed) and print the signed rekey (base64 msgpack) "
            "for another submitter; the alias keeps the old key until a later run finds "
            "the rekey confirmed.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = validation.alias_name(options["alias"] or conf.kms_settings().active_alias)
        if options["native"] and options["mnemonic_out"]:
            raise CommandError(
                "A native key has no mnemonic to write; nothing was changed. "
                "Fix: drop --mnemonic-out."
            )
        conf.sandbox_guard()  # before any AWS request: the sandbox flag on a real endpoint
        manager = conf.kms_manager()
        current = manager.get_key(name)
        chain = conf.algorand_chain(fund=current.address, network=current.network)
        if options["dry_run"]:
            self._show_plan(manager.plan_rotation(name, chain, native=options["native"]))
            return
        sign_only = options["sign_only"]
        if options["native"]:
            self._confirm(name, current, options)
            result = manager.rotate_key(name, chain, native=True, sign_only=sign_only)
        else:
            # A new envelope key has a backup: it needs somewhere to go before anything
            # is created, and goes there as soon as the key exists.
            with BackupDestination(self, options["mnemonic_out"], options["interactive"]) as backup:
                self._confirm(name, current, options)
                result = manager.rotate_key(
                    name, chain, sign_only=sign_only, on_backup=backup.deliver
                )
        self._show_result(name, result)

    def _confirm(self, name: str, current: KeyRecord, options: dict[str, Any]) -> None:
        """On mainnet a rotation creates a billed key and moves real money's authority."""
        if current.network == networks.MAINNET:
            what = "Submit a rekey of" if options["submit"] else "Create a key to rekey"
            self.confirm(options, name, f"{what} mainnet account {current.address} ({Alias(name)})")

    def _show_plan(self, plan: RotationPlan) -> None:
        lines = [
            f"dry run: nothing was created, tagged or signed ({Alias(plan.name)})",
            f"account: {plan.account} ({plan.network})",
            f"current: key {plan.current_key_id or '(alias missing)'} ({plan.current_kind})",
            f"would:   {plan.action}, to {with_article(plan.new_kind)} key",
            *(f"  {number}. {step}" for number, step in enumerate(plan.steps, 1)),
        ]
        if plan.rekey:
            lines.append("rekey to be signed:")
            lines += [f"  {field}: {value}" for field, value in plan.rekey.items()]
        data = {"dry_run": True, **asdict(plan), "steps": list(plan.steps)}
        # Deprecated names of the kinds, kept for one release.
        data.update(current_mode=plan.current_kind, new_mode=plan.new_kind)
        self.emit(data, lines)

    def _show_result(self, name: str, result: RotationResult) -> None:
        # Field by field, not asdict(): that would deep-copy the backup mnemonic.
        data = {f.name: getattr(result, f.name) for f in fields(result)}
        del data["backup_mnemonic"]
        data["mode"] = result.kind  # deprecated name of "kind", kept for one release
        lines = []
        if result.rolled_back_key_id:
            lines.append(
                f"rolled back: an expired pending rotation (key {result.rolled_back_key_id} "
                "scheduled for deletion)"
            )
        lines += [
            f"account: {result.account} (unchanged)",
            f"new key: {result.key_id} ({result.kind})",
            f"signer:  {result.auth_address}",
            f"rekey:   {result.rekey_txid}",
        ]
        if result.state == "pending":
            lines += [
                f"pending: {Alias(name)} still signs with {result.previous_key_id}; submit the "
                "rekey below, then run kms_rotate again to switch.",
                result.signed_rekey,
            ]
        else:
            how = "resumed: the rekey was already confirmed" if result.resumed else "confirmed"
            lines.append(f"{how}; {Alias(name)} now signs for {result.account} with the new key")
        self.emit(data, lines)
