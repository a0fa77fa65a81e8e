from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from confio_kms import factory as conf
from confio_kms.algorand.validation import Alias
from confio_kms.lifecycle import deletion
from confio_kms.lifecycle.manager import MAX_PENDING_DAYS, MIN_PENDING_DAYS, AlgorandKMSManager
from confio_kms.management.base import KMSCommand


class Command(KMSCommand):
    help = (
        "Schedule the deletion of a key after a waiting period (7 to 30 days), or cancel "
        "it with --cancel. The key stops signing at once; until the date, --cancel "
        "restores it exactly as before; after it, the key is gone for good."
    )
    confirms = True

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "name",
            help="Key alias, with or without alias/; or the key id of a retired or orphaned "
            "key (one no alias names: `kms_list --all` lists them).",
        )
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

    def handle(self, *args: Any, **options: Any) -> None:
        manager = conf.kms_manager()
        if deletion.is_key_id(options["name"]):
            self._by_key_id(manager, options)
            return
        if options["cancel"]:
            self._show_cancelled(deletion.cancel_deletion(manager, options["name"]))
            return
        settings = conf.kms_settings()
        plan = deletion.plan_deletion(
            manager,
            options["name"],
            options["days"],
            no_backup=options["no_backup"],
            configured_aliases=(settings.alias_testnet, settings.alias_mainnet),
        )
        self.confirm(options, plan.record.name, plan.action)
        self._show_scheduled(deletion.schedule_deletion(manager, plan))

    def _by_key_id(self, manager: AlgorandKMSManager, options: dict[str, Any]) -> None:
        """A retired or orphaned key: the same rules and confirmation, by its key id."""
        if options["cancel"]:
            self._show_cancelled(deletion.cancel_key_id_deletion(manager, options["name"]))
            return
        plan = deletion.plan_key_id_deletion(
            manager, options["name"], options["days"], no_backup=options["no_backup"]
        )
        self.confirm(options, plan.record.key_id, plan.action, what="key id")
        self._show_scheduled(deletion.schedule_deletion(manager, plan))

    def _show_cancelled(self, cancelled: deletion.CancelledDeletion) -> None:
        record = cancelled.record
        if cancelled.status:
            self.emit(
                {"alias": None, "key_id": record.key_id, "state": "Enabled"},
                [f"key {record.key_id}: deletion cancelled, enabled again ({cancelled.status})."],
            )
            return
        self.emit(
            {"alias": str(Alias(record.name)), "key_id": record.key_id, "state": "Enabled"},
            [
                f"{Alias(record.name)}: deletion cancelled, key {record.key_id} enabled again; "
                f"it signs for {record.address} as before."
            ],
        )

    def _show_scheduled(self, scheduled: deletion.ScheduledDeletion) -> None:
        record, date = scheduled.record, scheduled.deletion_date
        when = date.isoformat() if date else f"in {scheduled.days} days"
        after = (
            "it is gone for good, with no backup."
            if scheduled.native
            else "its SSM parameter can no longer be decrypted; only the offline backup "
            "mnemonic can restore the account."
        )
        if scheduled.status:
            after = f"it is gone for good ({scheduled.status}: it signed for nobody)."
        label = (
            f"key {record.key_id}"
            if scheduled.status
            else f"{Alias(record.name)}: key {record.key_id}"
        )
        handle = record.key_id if scheduled.status else record.name
        self.emit(
            {
                "alias": None if scheduled.status else str(Alias(record.name)),
                "key_id": record.key_id,
                "address": record.address,
                "kind": record.kind,
                "mode": record.kind,  # deprecated name of "kind", kept for one release
                "state": deletion.PENDING_DELETION,
                "deletion_date": date,
                "recoverable_until": date,
            },
            [
                f"{label} is scheduled for deletion on {when}; it does not sign from now on.",
                f"recover: until then, `manage.py kms_delete {handle} --cancel` restores it.",
                f"after:   {after}",
            ],
        )
