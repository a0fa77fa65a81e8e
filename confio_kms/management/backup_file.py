"""kms_setup's backup file: written whole before the first AWS write, never deleted.

The file is created beside its final name as ``<FILE>.partial`` (mode 0600, O_EXCL),
written, flushed and fsynced, then hard-linked to ``FILE`` (which fails rather than
overwrite) and the partial name removed; the directory is fsynced. A kill at any
moment leaves ``FILE`` absent or complete, never empty: a leftover ``.partial`` is
from a run killed before its first AWS write (or is a copy of ``FILE``), and is
removed by the next run. The file holds what a rerun needs to finish the creation,
in ``name: value`` lines (``#`` lines are comments)::

    alias: confio-testnet-sponsor
    network: testnet
    address: <the account's address>
    mnemonic: <25 words>

Given back to ``kms_setup --create-new --mnemonic-out FILE``, it is read, checked
(the mnemonic's address must be the ``address`` line; alias and network must be the
command's) and its account used: the mnemonic is never printed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from algosdk import account
from django.core.management.base import CommandError

from confio_kms.algorand import validation
from confio_kms.common import exceptions as exc
from confio_kms.common import progress
from confio_kms.common.redaction import HiddenStr, holds_secrets
from confio_kms.management.base import unwritable

HEADER = (
    "# confio-kms backup of an Algorand account held in AWS KMS. Anyone holding the\n"
    "# mnemonic controls the account: move this file offline, then delete it.\n"
    "# To finish an interrupted kms_setup, pass this file again as --mnemonic-out.\n"
)
FIELDS = ("alias", "network", "address", "mnemonic")


@dataclass(frozen=True)
class Backup:
    path: str
    alias: str
    network: str
    address: str
    mnemonic: HiddenStr = field(repr=False)


def check_new(path: str) -> None:
    """Refuse, before anything is created, a file that exists or cannot be written."""
    if os.path.lexists(path):
        raise CommandError(
            f"{path} already exists; nothing was created. Fix: choose a new file name "
            "(confio_kms never overwrites a backup; a confio-kms backup file of an "
            "interrupted run is used again)."
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        raise CommandError(
            f"Cannot create {path} (its folder is missing or not writable); nothing was "
            "created. Fix: choose a writable location."
        )


@holds_secrets
def read(path: str, alias: str, network: str) -> Backup | None:
    """The backup at ``path`` if it is a confio-kms backup file; None if there is no
    file. Anything else there is refused (never overwritten)."""
    if not os.path.lexists(path):
        return None
    values: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as file:
            for line in file.read(8192).splitlines():
                key, sep, value = line.partition(":")
                if sep and not line.startswith("#") and key.strip() in FIELDS:
                    values[key.strip()] = value.strip()
    except (OSError, UnicodeDecodeError):
        values = {}
    if set(values) != set(FIELDS):
        check_new(path)  # raises: it exists and is not a backup of ours
    try:
        private_key = validation.private_key_from_mnemonic(values["mnemonic"])
    except exc.ConfioKMSError:
        private_key = ""
    if not private_key or str(account.address_from_private_key(private_key)) != values["address"]:
        raise CommandError(
            f"{path} is damaged: its mnemonic is not the account of its address line; "
            "nothing was changed. Fix: check the file against your offline copy."
        )
    if (values["alias"], values["network"]) != (alias, network):
        raise CommandError(
            f"{path} is the backup of alias/{values['alias']} on {values['network']}, not of "
            f"alias/{alias} on {network}; nothing was changed. Fix: pass that alias and "
            "network, or a new file name."
        )
    return Backup(path, alias, network, values["address"], HiddenStr(values["mnemonic"]))


@holds_secrets
def write(path: str, alias: str, network: str, phrase: str, address: str) -> None:
    """Write the backup whole (see the module docstring), or raise ``CommandError``."""
    partial = f"{path}.partial"
    text = HEADER + "".join(
        f"{key}: {value}\n"
        for key, value in zip(FIELDS, (alias, network, address, phrase), strict=True)
    )
    try:
        if os.path.lexists(partial):
            os.unlink(partial)  # a run killed before its first AWS write, or a copy of path
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(partial, path)  # never replaces an existing file, unlike rename
        finally:
            os.unlink(partial)
        _sync_folder(path)
    except OSError as error:
        raise unwritable(path, error, "write") from None
    progress.step(f"backup of {address} written to {path} (mode 0600), before any AWS change")


def _sync_folder(path: str) -> None:
    """Make the new name durable (the file's own data was fsynced before the link)."""
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
