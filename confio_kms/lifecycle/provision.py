"""Creating keys: one creator per key kind, separate from the kinds that sign.

A creator makes a new key under ``alias/<name>`` from a ``KeyRequest`` and returns
``Provisioned`` (key id, own address, backup): every AWS step is reported to a
``Rollback``, so a failure leaves nothing half-made (``confio_kms.lifecycle.rollback``).
A process killed half-way cannot roll back: CreateKey marks the key
``CreationState=pending:<name>`` and the last step (one TagResource) marks it
``complete``, so what a kill leaves is found and finished or cleaned up later
(``confio_kms.lifecycle.recovery``). An envelope creation hands its backup to
``KeyRequest.save_backup`` before its first AWS write.
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from algosdk import account, mnemonic
from algosdk.account import address_from_private_key

from confio_kms.algorand.validation import RESERVED_SUFFIX, parameter_path
from confio_kms.common import exceptions as exc
from confio_kms.common.redaction import HiddenStr, holds_secrets
from confio_kms.core import native
from confio_kms.core.aws import AWSClients
from confio_kms.core.keys import (
    ENVELOPE,
    MANAGED_BY,
    NATIVE,
    TAG_ADDRESS,
    TAG_AUTH_ADDRESS,
    TAG_MANAGED_BY,
    TAG_NETWORK,
    TAG_PARAMETER,
)
from confio_kms.lifecycle import policies as iam
from confio_kms.lifecycle.rollback import (
    Provisioned,
    Rollback,
    create_alias,
    create_key,
    may_have_applied,
    provisioning,
    written_with,
)

# Every new key is marked while it is made (``confio_kms.lifecycle.recovery``): CreateKey
# tags it pending for its alias, the last step retags it complete.
TAG_CREATION = "CreationState"
PENDING = "pending:"
COMPLETE = "complete"


def pending_tag(name: str) -> dict[str, str]:
    """The mark CreateKey gives a key being made for ``alias/<name>``."""
    return {TAG_CREATION: f"{PENDING}{name}"}


def mark_complete(aws: AWSClients, key_id: str) -> None:
    """The last step of every creation: the key is whole (alias, parameter, tags)."""
    tags = [{"TagKey": TAG_CREATION, "TagValue": COMPLETE}]
    aws.call("kms", "TagResource", key_id, KeyId=key_id, Tags=tags)


@dataclass(frozen=True)
class KeyRequest:
    """What a new key is for: the arguments every creator takes.

    ``account``: the account the key will sign for when it is not the key's own
    (rotation by rekey, under a staging alias); the key's own address is then tagged
    as its auth address. ``extra_tags`` are added to the key's tags.
    ``save_backup(mnemonic, address)``: called with a new envelope key's backup
    before the first AWS write (it must store it durably; if it raises, nothing is
    created). ``private_key``: the envelope account to use instead of a new one (the
    account of a backup saved by an interrupted creation).
    """

    name: str
    prefix: str
    network: str
    description: str = ""
    account: str = ""
    extra_tags: Mapping[str, str] = field(default_factory=dict)
    save_backup: Callable[[str, str], None] | None = field(default=None, repr=False)
    private_key: str = field(default="", repr=False)
    multi_region: bool = False
    """CreateKey ``MultiRegion=true``: a key that can get replicas (native keys only)."""


class KeyCreator(ABC):
    """Creates keys of one kind (``kind``), rolling back on any failure."""

    kind: ClassVar[str]
    # Whether the kind keeps key material in SSM under <prefix>/<name>/private-key
    # (creation then refuses an existing parameter there).
    uses_parameter: ClassVar[bool] = False

    def __init__(self, aws: AWSClients) -> None:
        self.aws = aws

    @abstractmethod
    def create(self, request: KeyRequest) -> Provisioned:
        """Create the key; ``Provisioned.backup_mnemonic`` is None when no backup exists."""


class EnvelopeCreator(KeyCreator):
    """A new random account; its private key encrypted in SSM; its mnemonic the backup.

    For a rotation (``account`` given, ``name`` a staging alias) the parameter goes
    beside the final alias's own, at ``<own path>-<random>``.
    """

    kind = ENVELOPE
    uses_parameter = True

    @holds_secrets
    def create(self, request: KeyRequest) -> Provisioned:
        aws, name, prefix, account = self.aws, request.name, request.prefix, request.account
        if request.private_key:
            private_key = request.private_key
            own_address = str(address_from_private_key(private_key))
        else:
            private_key, own_address = new_account()
        backup = HiddenStr(mnemonic.from_private_key(private_key))
        if request.save_backup is not None:
            request.save_backup(backup, own_address)  # before the first AWS write
        path = parameter_path(prefix, name)
        tags = dict(request.extra_tags)
        if account:
            path = f"{parameter_path(prefix, name.removesuffix(RESERVED_SUFFIX))}-"
            path += secrets.token_hex(4)
            tags.update({TAG_AUTH_ADDRESS: own_address, TAG_PARAMETER: path})
        key_id = store(
            aws,
            name=name,
            path=path,
            private_key=private_key,
            address=account or own_address,
            network=request.network,
            description=request.description,
            extra_tags=tags,
        )
        return Provisioned(key_id, own_address, backup)


class NativeCreator(KeyCreator):
    """KMS generates the key, tagged with its address, then aliased: the alias comes
    last, so it never points at a half-made key. No backup exists.

    Until its address is known, the key's address tag holds a placeholder unique to
    this call: a key whose CreateKey answer was lost is found by it and rolled back.
    """

    kind = NATIVE

    def create(self, request: KeyRequest) -> Provisioned:
        aws, name, account = self.aws, request.name, request.account
        rollback = Rollback()
        address = ""
        placeholder = f"pending-creation-{secrets.token_hex(8)}"

        def run(step: Callable[[str], None]) -> str:
            nonlocal address
            step("CreateKey")
            key_id = create_key(
                aws,
                name,
                rollback,
                description=request.description or "Algorand account (confio-kms, native Ed25519)",
                tags={
                    TAG_NETWORK: request.network,
                    TAG_MANAGED_BY: MANAGED_BY,
                    **request.extra_tags,
                    TAG_ADDRESS: placeholder,  # replaced by TagResource below
                    **pending_tag(name),
                },
                KeySpec=native.KEY_SPEC,
                KeyUsage="SIGN_VERIFY",
                # AWS cannot make a single-Region key multi-Region later: now or never.
                **({"MultiRegion": True} if request.multi_region else {}),
                **iam.creation_params(self.aws.options.key_policy_account),
            )
            step("GetPublicKey")
            address = native.fetch_address(aws, key_id, key_id)
            step("TagResource")
            tags: Any = [{"TagKey": TAG_ADDRESS, "TagValue": account or address}]
            if account and account != address:
                tags.append({"TagKey": TAG_AUTH_ADDRESS, "TagValue": address})
            aws.call("kms", "TagResource", key_id, KeyId=key_id, Tags=tags)
            step("CreateAlias")
            create_alias(aws, name, key_id, rollback)
            step("MarkComplete")
            mark_complete(aws, key_id)
            return key_id

        key_id = provisioning(name, rollback, run)
        native.remember_checked(key_id, address)  # its own public key, just read from KMS
        return Provisioned(key_id, address)


CREATORS: dict[str, type[KeyCreator]] = {ENVELOPE: EnvelopeCreator, NATIVE: NativeCreator}


def creator(kind: str) -> type[KeyCreator]:
    """The creator of ``kind`` (a kind name already checked by ``kinds.named``)."""
    return CREATORS[kind]


def new_account() -> tuple[str, str]:
    """A new random account: (py-algorand-sdk's base64 private key, address)."""
    private_key, address = account.generate_account()
    return str(private_key), str(address)


@holds_secrets
def store(
    aws: AWSClients,
    *,
    name: str,
    path: str,
    private_key: str,
    address: str,
    network: str,
    description: str,
    extra_tags: dict[str, str] | None = None,
) -> str:
    """Create the KMS key, alias ``name`` and the parameter at ``path``; return the key id.

    ``address`` is the account the key signs for. Any failure undoes what this call
    made, as read back from AWS (parameter deleted, alias removed, key scheduled for
    deletion; see ``rollback.Rollback``), and raises ``ProvisioningError`` saying so.
    """
    tags = {
        TAG_ADDRESS: address,
        TAG_NETWORK: network,
        TAG_MANAGED_BY: MANAGED_BY,
        **(extra_tags or {}),
    }
    rollback = Rollback()

    def run(step: Callable[[str], None]) -> str:
        step("CreateKey")
        key_id = create_key(
            aws,
            name,
            rollback,
            description=description or f"Algorand account {address} (confio-kms)",
            tags={**tags, **pending_tag(name)},
            KeySpec="SYMMETRIC_DEFAULT",
            KeyUsage="ENCRYPT_DECRYPT",
            **iam.creation_params(aws.options.key_policy_account),
        )
        step("CreateAlias")
        create_alias(aws, name, key_id, rollback)
        step("PutParameter")
        put_parameter(aws, path, private_key, address, key_id, tags, rollback)
        step("MarkComplete")
        mark_complete(aws, key_id)  # last: a key marked complete is whole
        return key_id

    return provisioning(name, rollback, run)


@holds_secrets
def put_parameter(
    aws: AWSClients,
    path: str,
    private_key: str,
    address: str,
    key_id: str,
    tags: dict[str, str],
    rollback: Rollback,
) -> None:
    """PutParameter of the private key, encrypted under ``key_id``, never overwriting;
    ``rollback`` learns of it (a lost answer included)."""
    try:
        aws.call(
            "ssm",
            "PutParameter",
            path,
            Name=path,
            Description=f"Algorand private key of {address} (confio-kms)",
            Value=private_key,
            Type="SecureString",
            KeyId=key_id,
            Overwrite=False,
            Tags=[{"Key": key, "Value": value} for key, value in tags.items()],
        )
    except exc.ParameterExistsError:
        # Encrypted with the key made just now: this call's own write, whose answer
        # was lost and whose retry found it. Anything else is someone else's.
        if not written_with(aws, path, key_id):
            raise
    except Exception as error:
        if may_have_applied(error):
            rollback.expect_parameter(aws, path)
        raise
    rollback.expect_parameter(aws, path)
