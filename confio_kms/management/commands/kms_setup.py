"""kms_setup: create, import, list and adopt keys.

Crash consistency of ``--create-new`` (docs/commands.md, "Interrupted runs"):

- With ``--mnemonic-out FILE`` the new account is generated first and its backup file
  written whole (``confio_kms.management.backup_file``) before the first AWS write;
  the file is never deleted afterwards. Failing to print the result (standard output
  closed, a broken pipe) is one error line that says the key and its backup exist.
- Every run first looks for what an interrupted run left for the alias
  (``AlgorandKMSManager.unfinished``: keys marked ``CreationState=pending:<alias>``,
  with or without the alias, and an earlier version's alias whose parameter is
  missing). It finishes the one it can (same kind and network; an envelope key only
  when FILE is the backup of its account) and cleans up the others (deletion
  scheduled in 7 days, cancellable), saying which on stderr and under ``recovery``
  in ``--json``; on mainnet both are part of the confirmation.
- A FILE that is already a confio-kms backup of this alias and network is a rerun:
  its account is used (completing its key, or creating it if none was made), and a
  key already complete with that account is reported as such (exit 0).
- ``--import-existing`` reruns alike (``recovery.resume_import``): the unfinished key
  of the mnemonic's account is finished, anything else left for the alias cleaned
  up, and a complete key of that account under the alias is ``already complete``.
"""

from __future__ import annotations

import getpass
import sys
from argparse import ArgumentParser
from typing import IO, Any

from django.core.management.base import CommandError

from confio_kms import factory as conf
from confio_kms import settings as config
from confio_kms.algorand import networks, validation
from confio_kms.algorand.validation import Alias
from confio_kms.common import exceptions as exc
from confio_kms.core import keys
from confio_kms.lifecycle import recovery
from confio_kms.lifecycle.recovery import Leftovers, Unfinished
from confio_kms.management import backup_file
from confio_kms.management.backup_file import Backup
from confio_kms.management.base import BackupDestination, KMSCommand, is_terminal, write_keys

NATIVE_NOTE = (
    "No backup mnemonic: the private key was generated inside KMS and never leaves it. "
    "Recovery options (a multi-region replica key, or an offline account this key is "
    "rekeyed from): docs/native.md."
)

# Said before a native key is created: the choice cannot be changed afterwards.
SINGLE_REGION_NOTE = (
    "note: creating a single-Region native key: AWS can never give it replicas in other "
    "regions later, and its private key never leaves KMS. For a key that can be "
    "replicated, use --multi-region instead (CreateKey MultiRegion=true)."
)


class Command(KMSCommand):
    help = (
        "Create a new Algorand key in KMS, import an existing one from its mnemonic, "
        "or list the keys."
    )
    stealth_options = ("stdin",)
    confirms = True
    arguments = ("alias", "native", "mnemonic_out")

    def add_arguments(self, parser: ArgumentParser) -> None:
        mode = parser.add_mutually_exclusive_group(required=True)
        mode.add_argument("--create-new", action="store_true", help="Generate a new account.")
        mode.add_argument(
            "--import-existing",
            action="store_true",
            help="Import an account from its 25-word mnemonic (hidden input, or standard input).",
        )
        mode.add_argument("--list", action="store_true", help="List the keys (as kms_list).")
        mode.add_argument(
            "--adopt",
            metavar="NAME",
            help="Tag an existing key (e.g. the old setup scripts') with --network, after "
            "checking its key material against its address tag.",
        )
        parser.add_argument(
            "--network", choices=networks.NETWORKS, help="Default: CONFIO_ENV's network."
        )
        parser.add_argument("--description", default="", help="KMS key description.")
        parser.add_argument(
            "--multi-region",
            action="store_true",
            help="With --native: a multi-Region KMS key (CreateKey MultiRegion=true), which "
            "can get replicas in other regions; AWS cannot convert a single-Region key later.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"]:
            write_keys(self.stdout, conf.kms_manager().list_keys(), self.as_json)
            return
        if options["adopt"]:
            self._adopt(options)
            return
        settings = conf.kms_settings()
        # An alias that names its network (confio-mainnet-*) decides it; else CONFIO_ENV.
        named = config.network_of_alias(options["alias"] or "")
        network = options["network"] or named or settings.confio_env
        if not options["alias"] and network not in networks.DEPLOYMENT_NETWORKS:
            raise CommandError(
                f"There is no configured alias for {network}; nothing was created. "
                f"Fix: pass --alias NAME for the {network} key."
            )
        alias = validation.alias_name(options["alias"] or settings.alias_for(network))
        if options["import_existing"]:
            self._import(alias, network, options)
        else:
            self._create(alias, network, options)

    def _confirm(
        self,
        alias: str,
        network: str,
        options: dict[str, Any],
        *,
        finish: Unfinished | None = None,
        stale: list[Unfinished] | None = None,
    ) -> None:
        """Mainnet keys are billed and hold real money: ask, once the inputs are checked."""
        if network != networks.MAINNET:
            return
        what = "Import the account into" if options["import_existing"] else "Create"
        action = f"{what} a KMS key (billed monthly) for {Alias(alias)} on mainnet"
        if finish is not None:
            action = f"Finish the interrupted creation of {finish.describe()}, on mainnet"
        if stale:
            action = (
                "Clean up (deletion scheduled in 7 days, cancellable) the unfinished "
                + "; ".join(item.describe() for item in stale)
                + f", then {action[0].lower()}{action[1:]}"
            )
        self.confirm(options, alias, action)

    def _adopt(self, options: dict[str, Any]) -> None:
        if not options["network"]:
            raise CommandError(
                "--adopt needs --network; nothing was changed. Fix: name the network the "
                "account is on, e.g. --network mainnet."
            )
        record = conf.kms_manager().adopt_key(options["adopt"], options["network"])
        self.emit(
            {
                "alias": str(Alias(record.name)),
                "address": record.address,
                "network": record.network,
                "key_material_verified": True,
            },
            [
                f"alias:   {Alias(record.name)}",
                f"address: {record.address} (key material verified)",
                f"network: {record.network} (AlgorandNetwork tag)",
            ],
        )

    def _create(self, alias: str, network: str, options: dict[str, Any]) -> None:
        """Create, after finishing or cleaning up what an interrupted run left (see the
        module docstring); the backup file is whole before the first AWS write."""
        native, path = options["native"], options["mnemonic_out"]
        if native and path:
            raise CommandError(
                "A native key has no mnemonic to write; nothing was created. "
                "Fix: drop --mnemonic-out, or drop --native for an envelope key with a backup."
            )
        backup = backup_file.read(path, alias, network) if path else None
        if path and backup is None:
            backup_file.check_new(path)
        multi_region = bool(options.get("multi_region"))
        if multi_region and not native:
            raise CommandError(
                "--multi-region is for native keys (an envelope key's backup mnemonic "
                "restores it in any region); nothing was created. Fix: add --native, or "
                "drop --multi-region."
            )
        terminal = None if path or native else BackupDestination(self, None, options["interactive"])
        manager = conf.kms_manager()
        found = manager.unfinished(alias)
        finish, stale = _plan(found, keys.NATIVE if native else keys.ENVELOPE, network, backup)
        if found.holder is not None:
            self._existing(alias, network, found.holder, backup)
            return
        if native and not multi_region and finish is None:
            self.stderr.write(SINGLE_REGION_NOTE, style_func=lambda t: t)
        self._confirm(alias, network, options, finish=finish, stale=stale)
        recovery_data = self._clean_up(manager, stale)
        if finish is not None:
            created = manager.complete(finish, backup.mnemonic if backup else None)
            self.stderr.write(f"completed: {finish.describe()}", style_func=lambda t: t)
            recovery_data["completed"] = [finish.describe()]
        else:

            def save(phrase: str, address: str) -> None:
                if path and backup is None:
                    backup_file.write(path, alias, network, phrase, address)

            created = manager.create_algorand_key(
                alias,
                options["description"],
                network=network,
                native=native,
                save_backup=save,
                from_backup=backup.mnemonic if backup else None,
                multi_region=multi_region,
            )
        self._report(
            alias, network, created.key_id, created.address, native=native,
            note=NATIVE_NOTE if native else "", recovery=recovery_data, backup_path=path,
        )  # fmt: skip
        if terminal is not None:
            terminal.deliver(created.backup_mnemonic or "", created.address)

    def _existing(
        self, alias: str, network: str, holder: tuple[str, dict[str, str]], backup: Any
    ) -> None:
        """The alias holds a complete key: this backup's (a rerun after the last step:
        done), or another (refused, as always)."""
        key_id, tags = holder
        if backup is None or tags.get(keys.TAG_ADDRESS) != backup.address:
            raise exc.AliasExistsError(
                f"The KMS alias {Alias(alias)} already exists; nothing was changed.",
                fix="Choose another alias, or use the existing key (`manage.py kms_list`).",
            )
        self.stderr.write(
            f"already complete: {Alias(alias)} holds key {key_id} of {backup.address}, "
            f"the account of {backup.path}; nothing was changed.",
            style_func=lambda t: t,
        )
        self._report(
            alias, network, key_id, backup.address,
            recovery={"cleaned_up": [], "completed": [], "already_complete": True},
            backup_path=backup.path,
        )  # fmt: skip

    def _clean_up(self, manager: Any, stale: list[Unfinished]) -> dict[str, Any]:
        cleaned: list[str] = []
        for item in stale:
            done, failed = manager.clean_up(item)
            if failed:
                raise CommandError(
                    f"Cleaning up the unfinished {item.describe()} failed: "
                    f"{'; '.join(failed)}; nothing was created. Fix: check the permissions "
                    "(manage.py kms_doctor) and run again."
                )
            line = f"cleaned up: {item.describe()}: {'; '.join(done)}"
            self.stderr.write(line, style_func=lambda t: t)
            cleaned.append(line.removeprefix("cleaned up: "))
        return {"cleaned_up": cleaned, "completed": [], "already_complete": False}

    def _import(self, alias: str, network: str, options: dict[str, Any]) -> None:
        for flag in ("native", "mnemonic_out"):
            if options[flag]:
                raise CommandError(
                    f"--{flag.replace('_', '-')} does not apply to --import-existing (an imported "
                    "key is an envelope key, and its mnemonic is already yours); nothing was "
                    f"imported. Fix: drop --{flag.replace('_', '-')}."
                )
        outcome = recovery.Outcome(
            confirm=lambda finish, stale: self._confirm(
                alias, network, options, finish=finish, stale=stale
            )
        )
        # The phrase is never bound to a name here: error reporters record frame locals.
        imported = conf.kms_manager().import_existing_key(
            alias, _read_mnemonic(options), options["description"], network=network,
            resume=outcome,
        )  # fmt: skip
        for line in outcome.cleaned_up:
            self.stderr.write(f"cleaned up: {line}", style_func=lambda t: t)
        for line in outcome.completed:
            self.stderr.write(f"completed: {line}", style_func=lambda t: t)
        if outcome.already_complete:
            self.stderr.write(
                f"already complete: {Alias(alias)} holds key {imported.key_id} of "
                f"{imported.address}; nothing was changed.",
                style_func=lambda t: t,
            )
        also = ", ".join(str(Alias(other)) for other in imported.also_under)
        if also:
            self.stderr.write(
                f"warning: {imported.address} was already stored under {also}; two aliases "
                "now sign for one account. Fix: keep one (manage.py kms_delete NAME) unless "
                "both are intended."
            )
        self._report(
            alias,
            network,
            imported.key_id,
            imported.address,
            also_under=[str(Alias(other)) for other in imported.also_under],
            recovery=outcome.as_dict(),
        )

    def _report(
        self,
        alias: str,
        network: str,
        key_id: str,
        address: str,
        *,
        native: bool = False,
        note: str = "",
        also_under: list[str] | None = None,
        recovery: dict[str, Any] | None = None,
        backup_path: str | None = None,
    ) -> None:
        name = validation.alias_name(alias)
        parameter = None if native else conf.kms_manager().parameter_path(name)
        mfa = bool(config.key_policy_account())
        data: dict[str, Any] = {
            "alias": str(Alias(name)),
            "key_id": key_id,
            "address": address,
            "network": network,
            "kind": "native" if native else "envelope",
            "ssm_parameter": parameter,
            "deletion_needs_mfa": mfa,
        }
        data["mode"] = data["kind"]  # deprecated name of "kind", kept for one release
        if also_under is not None:
            data["also_under"] = also_under
        if recovery is not None:
            data["recovery"] = recovery
        if backup_path:
            data["backup_file"] = backup_path
        lines = [
            f"alias:   {Alias(name)}",
            f"key id:  {key_id}",
            f"address: {address}",
            f"network: {network}",
            "kind:    native (Ed25519 inside KMS)" if native else "kind:    envelope",
            *([f"SSM:     {parameter}"] if parameter else []),
            "policy:  deletion and disabling need MFA (CONFIO_KMS_KEY_POLICY_ACCOUNT)"
            if mfa
            else "policy:  KMS's default: deletion needs no MFA. To require it, set "
            "CONFIO_KMS_KEY_POLICY_ACCOUNT for new keys, or apply `manage.py kms_policy "
            "--key-policy` (docs/install.md, step 5).",
            *([note] if note else []),
            *(
                [f"Backup mnemonic written to {backup_path} (mode 0600). Move it offline "
                 "and delete the file."] if backup_path and not self.as_json else []
            ),
        ]  # fmt: skip
        if backup_path and self.as_json:  # news, like progress: stdout keeps the JSON alone
            self.stderr.write(
                f"Backup mnemonic written to {backup_path} (mode 0600). Move it offline and "
                "delete the file.",
                style_func=lambda text: text,
            )
        where = f"; its backup is in {backup_path}" if backup_path else ""
        done = f"The key exists: {Alias(name)} ({key_id}) signs for {address}{where}."
        self.emit(data, lines, done=done)


def _plan(
    found: Leftovers, kind: str, network: str, backup: Backup | None
) -> tuple[Unfinished | None, list[Unfinished]]:
    """Which unfinished key to finish (an envelope one only with the backup of its
    account), and which to clean up (all the others)."""
    return recovery.plan(found, kind, network, backup.address if backup else None)


def _read_mnemonic(options: dict[str, Any]) -> str:
    """Hidden input at a terminal, else standard input (never echoed)."""
    stdin: IO[str] | None = options.get("stdin") or sys.stdin
    if stdin is not None and is_terminal(stdin):
        return getpass.getpass("25-word mnemonic (input hidden): ")
    try:
        if stdin is None:  # Python sets sys.stdin to None when descriptor 0 is closed
            raise OSError("standard input is closed")
        return stdin.read()
    except (OSError, ValueError) as error:
        raise CommandError(
            f"Cannot read the mnemonic ({error}); nothing was created. Fix: run "
            "`manage.py kms_setup --import-existing` at a terminal, or pipe the 25 words "
            "into its standard input."
        ) from None
