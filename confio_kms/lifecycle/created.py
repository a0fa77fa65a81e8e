"""What ``AlgorandKMSManager`` returns for a created or imported key (kept apart from
the manager so the secret-holding result type is small and easy to audit), and for a
listed one (``KeyRecord``, so the commands that print keys need not import the manager)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from confio_kms.core import keys


class CreatedKey:
    """The result of ``create_algorand_key``: unpacks as ``(key_id, address, backup_mnemonic)``.

    Its repr and str never show the mnemonic; read ``backup_mnemonic`` or unpack it.
    A native key has no mnemonic (``None``): its private key never leaves KMS.
    """

    __slots__ = ("_mnemonic", "address", "key_id", "kind")

    def __init__(
        self, key_id: str, address: str, backup_mnemonic: str | None, kind: str = keys.ENVELOPE
    ) -> None:
        self.key_id = key_id
        self.address = address
        self._mnemonic = backup_mnemonic
        self.kind = kind

    @property
    def backup_mnemonic(self) -> str | None:
        return self._mnemonic

    def _parts(self) -> tuple[str, str, str | None]:
        return (self.key_id, self.address, self._mnemonic)

    def __iter__(self) -> Iterator[str | None]:
        return iter(self._parts())

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int) -> str | None:
        return self._parts()[index]

    def __repr__(self) -> str:
        hidden = "<hidden>" if self._mnemonic else "None"
        return (
            f"CreatedKey(key_id={self.key_id!r}, address={self.address!r}, "
            f"kind={self.kind!r}, backup_mnemonic={hidden})"
        )

    __str__ = __repr__


class ImportedKey(tuple[str, str]):
    """The result of ``import_existing_key``: unpacks as ``(key_id, address)``.

    ``also_under`` names the aliases that already held this account before the
    import (two aliases, one account: usually a mistake, so it is reported).
    """

    also_under: tuple[str, ...]

    def __new__(cls, key_id: str, address: str, also_under: tuple[str, ...] = ()) -> ImportedKey:
        imported = super().__new__(cls, (key_id, address))
        imported.also_under = also_under
        return imported

    @property
    def key_id(self) -> str:
        return self[0]

    @property
    def address(self) -> str:
        return self[1]


@dataclass(frozen=True)
class KeyRecord:
    """One Algorand key found in KMS, as ``list_keys`` reports it."""

    name: str
    key_id: str
    address: str
    network: str
    key_state: str
    creation_date: datetime | None
    kind: str
    managed: bool
    """True for keys tagged ManagedBy=confio-kms, False for the old scripts' keys."""
    deletion_date: datetime | None = None
    auth_address: str = ""
    """The key's own address when the account (``address``) was rekeyed to it."""
