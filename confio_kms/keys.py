"""What every kind of KMS-held Algorand key shares.

A key kind (``envelope``, ``native``; registered in ``confio_kms.kinds``) subclasses
``AlgorandKey``: it signs byte strings with the account's Ed25519 key
(``_sign``), and provisions new keys (``provision``). The base ``sign`` verifies
every signature against the account before it is returned, whatever the kind.
Everything above the kinds (the signing core, the manager, rotation) works with
``KeyInfo``, the public metadata an alias resolves to, read from the KMS key's
metadata and tags by ``key_info``, the one decoder of keys.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from algosdk import encoding
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from . import config
from . import exceptions as exc
from .aws import AWSClients
from .networks import NETWORKS, UNKNOWN

TAG_ADDRESS = "AlgorandAddress"
# After a rotation by rekey: the key's own address, which authorizes for AlgorandAddress.
TAG_AUTH_ADDRESS = "AlgorandAuthAddress"
# Where an envelope key's private key is stored, when not at <prefix>/<alias>/private-key.
TAG_PARAMETER = "SSMParameter"
TAG_NETWORK = "AlgorandNetwork"
TAG_MANAGED_BY = "ManagedBy"
MANAGED_BY = "confio-kms"

# Kind names; each kind's class is in confio_kms.kinds.
ENVELOPE = "envelope"
NATIVE = "native"

# Shortest deletion window KMS allows; used when rolling back a key nobody has used.
ROLLBACK_PENDING_DAYS = 7


@dataclass(frozen=True)
class KeyInfo:
    """Public facts about the KMS key an alias points at.

    ``address`` is the account the key signs for; ``auth_address`` is the key's own
    address, which differs once the account has been rekeyed to this key.
    """

    name: str
    key_id: str
    address: str
    network: str
    mode: str
    auth_address: str = ""
    parameter: str = ""

    @property
    def signer_address(self) -> str:
        """The address whose key this is (the authorizer of the account's transactions)."""
        return self.auth_address or self.address


@dataclass(frozen=True)
class Provisioned:
    """A key a kind has just created: its id, its own address, and its backup.

    ``backup_mnemonic`` is None for a kind whose key never leaves KMS.
    """

    key_id: str
    address: str
    backup_mnemonic: str | None = field(default=None, repr=False)


@functools.lru_cache(maxsize=256)
def _verify_key(address: str) -> VerifyKey:
    """The verify key of an address (cached: decoding costs a checksum per call)."""
    return VerifyKey(encoding.decode_address(address))


class AlgorandKey(ABC):
    """One kind of KMS-held Algorand key: signs messages with the account's key.

    A subclass sets ``kind`` and ``key_spec`` (the KMS KeySpec its keys have),
    implements ``_sign`` and ``provision``, and is registered in
    ``confio_kms.kinds``. One key object serves one signing call.
    """

    kind: ClassVar[str]
    key_spec: ClassVar[str]
    # Whether the kind keeps key material in SSM under <prefix>/<name>/private-key
    # (creation then refuses an existing parameter there).
    uses_parameter: ClassVar[bool] = False

    def __init__(self, aws: AWSClients, info: KeyInfo, prefix: str) -> None:
        self.aws = aws
        self.info = info
        self.prefix = prefix
        # AWS request ids of this key object's signing requests, for the audit trail.
        self.request_ids: list[str] = []

    def note_request(self, response: dict[str, Any]) -> None:
        self.request_ids.append(str(response.get("ResponseMetadata", {}).get("RequestId", "")))

    def sign(self, messages: Sequence[bytes]) -> list[bytes]:
        """Return the 64-byte Ed25519 signature of each message, in order.

        Every signature is verified against the key's address first: a signature
        that would not verify on chain is never returned.
        """
        signatures = self._sign(messages)
        verify_key = _verify_key(self.info.signer_address)
        for index, (message, signature) in enumerate(zip(messages, signatures, strict=True)):
            try:
                verify_key.verify(message, signature)
            except (BadSignatureError, ValueError):
                raise exc.SignatureVerificationError(
                    f"The {self.kind} key {self.info.key_id} (alias/{self.info.name}) produced "
                    f"a signature for item {index} that does not verify against "
                    f"{self.info.signer_address} (AWS requests: "
                    f"{', '.join(filter(None, self.request_ids)) or 'none'}); nothing was "
                    "returned.",
                    fix="Retry; if it persists, check the key's AlgorandAddress tag and "
                    "KeySpec and report the request ids to AWS support.",
                ) from None
        return signatures

    @abstractmethod
    def _sign(self, messages: Sequence[bytes]) -> list[bytes]:
        """The signature of each message, in order (verified by ``sign``)."""

    @classmethod
    @abstractmethod
    def provision(
        cls,
        aws: AWSClients,
        *,
        name: str,
        prefix: str,
        network: str,
        description: str,
        account: str = "",
        extra_tags: dict[str, str] | None = None,
    ) -> Provisioned:
        """Create a new key under ``alias/<name>``, rolling back on any failure.

        ``account``: the account the key will sign for when it is not the key's own
        (rotation by rekey, under a staging alias); the key's own address is then
        tagged as its auth address.
        """

    @classmethod  # noqa: B027 (an optional hook: most kinds remember nothing)
    def reset(cls) -> None:
        """Forget what this kind remembers in the process (as in a fresh process)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} alias/{self.info.name} {self.info.address}>"


def tags_dict(tags: Sequence[dict[str, str]]) -> dict[str, str]:
    return {tag["TagKey"]: tag["TagValue"] for tag in tags}


def kms_tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"TagKey": key, "TagValue": value} for key, value in tags.items()]


def tagged_network(tags: dict[str, str]) -> str:
    """The network of an explicit AlgorandNetwork tag, or "" when there is none."""
    network = tags.get(TAG_NETWORK, "").lower()
    return network if network in NETWORKS else ""


def network_of(name: str, tags: dict[str, str]) -> str:
    """The network of the key behind ``alias/<name>``: its AlgorandNetwork tag, else
    what the alias name stands for (``config.network_of_alias``), else "unknown".

    The old setup scripts never wrote the network (their ``Environment`` tag says
    ``Production``, whatever the network), so their keys are known by their alias.
    """
    return tagged_network(tags) or config.network_of_alias(name) or UNKNOWN


def read_tags(aws: AWSClients, key_id: str, resource: str) -> dict[str, str]:
    return tags_dict(list(aws.paginate("kms", "ListResourceTags", resource, "Tags", KeyId=key_id)))


def describe_key(aws: AWSClients, name: str) -> dict[str, Any]:
    alias = f"alias/{name}"
    metadata: dict[str, Any] = aws.call("kms", "DescribeKey", alias, KeyId=alias)["KeyMetadata"]
    return metadata


class Rollback:
    """Undo steps of a creation in progress, run newest first if a later step fails."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], object]]] = []

    def add(self, description: str, undo: Callable[[], object]) -> None:
        self._steps.append((description, undo))

    def run(self) -> tuple[list[str], list[str]]:
        """Return (what was undone, what could not be undone)."""
        done: list[str] = []
        failed: list[str] = []
        for description, undo in reversed(self._steps):
            try:
                undo()
                done.append(description)
            except Exception as error:
                failed.append(f"{description} FAILED ({error})")
        self._steps.clear()
        return done, failed


def create_key(
    aws: AWSClients,
    name: str,
    rollback: Rollback,
    *,
    description: str,
    tags: dict[str, str],
    **key_params: Any,
) -> str:
    """CreateKey, registering its undo (scheduled deletion); returns the key id."""
    created = aws.call(
        "kms",
        "CreateKey",
        f"alias/{name}",
        Description=description,
        Tags=kms_tags(tags),
        **key_params,
    )
    key_id: str = created["KeyMetadata"]["KeyId"]
    rollback.add(
        f"KMS key {key_id} scheduled for deletion in {ROLLBACK_PENDING_DAYS} days",
        lambda: aws.call(
            "kms",
            "ScheduleKeyDeletion",
            key_id,
            KeyId=key_id,
            PendingWindowInDays=ROLLBACK_PENDING_DAYS,
        ),
    )
    return key_id


def create_alias(aws: AWSClients, name: str, key_id: str, rollback: Rollback) -> None:
    """CreateAlias, registering its undo."""
    alias = f"alias/{name}"
    aws.call("kms", "CreateAlias", alias, AliasName=alias, TargetKeyId=key_id)
    rollback.add(
        f"alias {alias} removed", lambda: aws.call("kms", "DeleteAlias", alias, AliasName=alias)
    )


def provisioning(name: str, rollback: Rollback, run: Callable[[Callable[[str], None]], str]) -> str:
    """Run the creation steps in ``run``; on a failure roll back and say what was undone.

    ``run`` receives a function to name the step in progress, and returns the key id.
    """
    step = ["start"]
    try:
        return run(step.append)
    except Exception as error:  # whatever failed, nothing half-made may stay behind
        undone, failed = rollback.run()
        report = "; ".join(undone) or "nothing had been created"
        if failed:
            report += "; NOT undone, clean up by hand: " + "; ".join(failed)
        known = error if isinstance(error, exc.ConfioKMSError) else None
        raise exc.ProvisioningError(
            f"Creating alias/{name} failed at {step[-1]}: "
            f"{known.message if known else type(error).__name__} Rolled back: {report}.",
            fix=known.fix if known else "Report this as a bug in confio-kms.",
            cause=known.cause if known else None,
        ) from error
