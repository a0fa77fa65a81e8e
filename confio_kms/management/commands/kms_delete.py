from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from confio_kms import factory as conf
from confio_kms.algorand import validation
from confio_kms.core import keys
from confio_kms.lifecycle.manager import MAX_PENDING_DAYS, MIN_PENDING_DAYS
from confio_kms.management.base import KMSCommand

PENDING_DELETION = keys.PENDING_DELETION


class Command(KMSCommand):
    help = (
        "Schedule the deletion of a key after a waiting period (7 to 30 days), or cancel "
        "it with --cancel. The key stops signing at once; until the date, --cancel "
        "restores it exactly as before; after it, the key is gone for good."
    )
    confirms = True

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name", help="Key alias, with or without alias/.")
        parser.add_argument(
            "--days",
            type=int,
            default=MAX_PENDING_DAYS,
            help=f"Waiting period before KMS deletes the key ({MIN_PENDING_DAYS} to "
            f"{MAX_PENDING_DAYS}; default {MAX_PENDING_DAYS}).",
        )
        parser.add_argument(
            "--cancel", action="store_true", help="Cancel a scheduled deletion and re-enable."
        )
        parser.add_argument(
            "--i-understand-there-is-no-backup",
            action="store_true",
            dest="no_backup",
            help="Needed for a native key: its private key exists only in KMS, so after "
            "the waiting period the account can never sign with it again.",
        )
        parser.add_argument(
            "--no-input", action="store_false", dest="interactive", help="Ask nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = validation.alias_name(options["name"])
        days = options["days"]
        if not options["cancel"] and not MIN_PENDING_DAYS <= days <= MAX_PENDING_DAYS:
            raise CommandError(
                f"--days must be from {MIN_PENDING_DAYS} to {MAX_PENDING_DAYS} (AWS's limits), "
                f"not {days}; nothing was changed."
            )
        manager = conf.kms_manager()
        record = manager.get_key(name)
        if options["cancel"]:
            if record.key_state != PENDING_DELETION:
                raise CommandError(
                    f"alias/{name} is not scheduled for deletion (it is {record.key_state}); "
                    "nothing was changed."
                )
            manager.cancel_key_deletion(name)
            self.emit(
                {"alias": f"alias/{name}", "key_id": record.key_id, "state": "Enabled"},
                [
                    f"alias/{name}: deletion cancelled, key {record.key_id} enabled again; "
                    f"it signs for {record.address} as before."
                ],
            )
            return
        if record.key_state == PENDING_DELETION:
            when = record.deletion_date.isoformat() if record.deletion_date else "its date"
            raise CommandError(
                f"alias/{name} is already scheduled for deletion on {when}; nothing was "
                f"changed. Fix: to keep it, run kms_delete {name} --cancel."
            )
        native = record.mode == keys.NATIVE
        if native and not options["no_backup"]:
            raise CommandError(
                f"alias/{name} is a native key: its private key exists only in KMS, so once "
                f"deleted, {record.address} can never be signed for with it again; nothing "
                "was changed. Fix: if the account holds anything, rotate it to another key "
                f"instead (kms_rotate --alias {name}: the alias then signs with the new key "
                "and the old one is retired); to delete this key anyway, pass "
                "--i-understand-there-is-no-backup."
            )
        active = name in (conf.kms_settings().alias_testnet, conf.kms_settings().alias_mainnet)
        self.confirm(
            options,
            name,
            f"Schedule the deletion of alias/{name} ({record.mode} key {record.key_id}, "
            f"account {record.address}, {record.network}) in {days} days"
            + (" (a configured alias: the app stops signing with it)" if active else ""),
        )
        date = manager.delete_key(name, pending_window_days=days)
        when = date.isoformat() if date else f"in {days} days"
        after = (
            "it is gone for good, with no backup."
            if native
            else "its SSM parameter can no longer be decrypted; only the offline backup "
            "mnemonic can restore the account."
        )
        self.emit(
            {
                "alias": f"alias/{name}",
                "key_id": record.key_id,
                "address": record.address,
                "mode": record.mode,
                "state": PENDING_DELETION,
                "deletion_date": date,
                "recoverable_until": date,
            },
            [
                f"alias/{name}: key {record.key_id} is scheduled for deletion on {when}; "
                "it does not sign from now on.",
                f"recover: until then, `manage.py kms_delete {name} --cancel` restores it.",
                f"after:   {after}",
            ],
        )
