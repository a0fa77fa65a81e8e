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
from confio_kms.management.base import BackupDestination, KMSCommand, is_terminal, write_keys


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

    def _confirm(self, alias: str, network: str, options: dict[str, Any]) -> None:
        """Mainnet keys are billed and hold real money: ask, once the inputs are checked."""
        if network == networks.MAINNET:
            what = "Import the account into" if options["import_existing"] else "Create"
            self.confirm(
                options, alias, f"{what} a KMS key (billed monthly) for {Alias(alias)} on mainnet"
            )

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
        if options["native"]:
            self._create_native(alias, network, options)
            return
        with BackupDestination(self, options["mnemonic_out"], options["interactive"]) as backup:
            self._confirm(alias, network, options)
            created = conf.kms_manager().create_algorand_key(
                alias, options["description"], network=network
            )
            self._report(alias, network, created.key_id, created.address)
            backup.deliver(created.backup_mnemonic or "", created.address)

    def _create_native(self, alias: str, network: str, options: dict[str, Any]) -> None:
        if options["mnemonic_out"]:
            raise CommandError(
                "A native key has no mnemonic to write; nothing was created. "
                "Fix: drop --mnemonic-out, or drop --native for an envelope key with a backup."
            )
        self._confirm(alias, network, options)
        created = conf.kms_manager().create_algorand_key(
            alias, options["description"], network=network, native=True
        )
        self._report(
            alias,
            network,
            created.key_id,
            created.address,
            native=True,
            note="No backup mnemonic: the private key was generated inside KMS and never "
            "leaves it. Recovery options (a multi-region replica key, or an offline account "
            "this key is rekeyed from): docs/native.md.",
        )

    def _import(self, alias: str, network: str, options: dict[str, Any]) -> None:
        for flag in ("native", "mnemonic_out"):
            if options[flag]:
                raise CommandError(
                    f"--{flag.replace('_', '-')} does not apply to --import-existing (an imported "
                    "key is an envelope key, and its mnemonic is already yours); nothing was "
                    f"imported. Fix: drop --{flag.replace('_', '-')}."
                )
        self._confirm(alias, network, options)
        # The phrase is never bound to a name here: error reporters record frame locals.
        imported = conf.kms_manager().import_existing_key(
            alias, _read_mnemonic(options), options["description"], network=network
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
        ]
        self.emit(data, lines)


def _read_mnemonic(options: dict[str, Any]) -> str:
    """Hidden input at a terminal, else standard input (never echoed)."""
    stdin: IO[str] = options.get("stdin") or sys.stdin
    if is_terminal(stdin):
        return getpass.getpass("25-word mnemonic (input hidden): ")
    return stdin.read()
