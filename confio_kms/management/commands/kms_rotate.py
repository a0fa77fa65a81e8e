from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from ... import conf, validation
from ..base import BackupDestination, KMSCommand


class Command(KMSCommand):
    help = (
        "Rotate a key without changing the account address: create a new key, rekey the "
        "account to it, and switch the alias once the rekey is confirmed. Running it again "
        "finishes or rolls back an interrupted rotation."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--alias", help="Key alias (default: the active network's alias).")
        parser.add_argument(
            "--native", action="store_true", help="The new key is a native KMS Ed25519 key."
        )
        how = parser.add_mutually_exclusive_group(required=True)
        how.add_argument("--submit", action="store_true", help="Submit the rekey and wait for it.")
        parser.add_argument(
            "--mnemonic-out",
            metavar="FILE",
            help="For a new envelope key: write its backup mnemonic to this new file (mode "
            "0600) instead of the terminal.",
        )
        parser.add_argument(
            "--no-input", action="store_false", dest="interactive", help="Ask nothing."
        )
        how.add_argument(
            "--dry-run",
            action="store_true",
            help="Create the new key and print the signed rekey (base64 msgpack); the alias "
            "keeps the old key until a later run finds the rekey confirmed.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = validation.alias_name(options["alias"] or conf.kms_settings().active_alias)
        if options["native"] and options["mnemonic_out"]:
            raise CommandError(
                "A native key has no mnemonic to write; nothing was changed. "
                "Fix: drop --mnemonic-out."
            )
        manager = conf.kms_manager()
        address = manager.get_key(name).address
        chain = conf.algorand_chain(fund=address)
        if options["native"]:
            result = manager.rotate_key(name, chain, native=True, dry_run=options["dry_run"])
        else:
            # A new envelope key has a backup: it needs somewhere to go before anything
            # is created, and goes there as soon as the key exists.
            with BackupDestination(self, options["mnemonic_out"], options["interactive"]) as backup:
                result = manager.rotate_key(
                    name, chain, dry_run=options["dry_run"], on_backup=backup.deliver
                )
        if result.rolled_back_key_id:
            self.stdout.write(
                f"rolled back: an expired pending rotation (key {result.rolled_back_key_id} "
                "scheduled for deletion)"
            )
        self.stdout.write(f"account: {result.account} (unchanged)")
        self.stdout.write(f"new key: {result.key_id} ({result.mode})")
        self.stdout.write(f"signer:  {result.auth_address}")
        self.stdout.write(f"rekey:   {result.rekey_txid}")
        if result.state == "pending":
            self.stdout.write(
                f"pending: alias/{name} still signs with {result.previous_key_id}; submit the "
                "rekey below, then run kms_rotate again to switch."
            )
            self.stdout.write(result.signed_rekey)
            return
        how = "resumed: the rekey was already confirmed" if result.resumed else "confirmed"
        self.stdout.write(f"{how}; alias/{name} now signs for {result.account} with the new key")
