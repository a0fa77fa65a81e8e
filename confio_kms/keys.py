"""What every kind of KMS-held Algorand key shares.

A key kind (``envelope``, ``native``) implements ``AlgorandKey``: it
signs byte strings with the account's Ed25519 key. Everything above it (the
signer, the manager) works with ``KeyInfo``, the public metadata an alias
resolves to, read from the KMS key's description and tags.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from algosdk import encoding

from . import exceptions as exc
from .aws import AWSClients
from .validation import NETWORKS

TAG_ADDRESS = "AlgorandAddress"
# After a rotation by rekey: the key's own address, which authorizes for AlgorandAddress.
TAG_AUTH_ADDRESS = "AlgorandAuthAddress"
# Where an envelope key's private key is stored, when not at <prefix>/<alias>/private-key.
TAG_PARAMETER = "SSMParameter"
TAG_NETWORK = "AlgorandNetwork"
TAG_MANAGED_BY = "ManagedBy"
MANAGED_BY = "confio-kms"
# The old setup scripts recorded the network as Environment.
TAG_LEGACY_NETWORK = "Environment"

ENVELOPE = "envelope"
NATIVE = "native"
KEY_SPEC_MODES = {"SYMMETRIC_DEFAULT": ENVELOPE, "ECC_NIST_EDWARDS25519": NATIVE}

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


class AlgorandKey(ABC):
    """One kind of KMS-held Algorand key: signs messages with the account's key."""

    mode: ClassVar[str]

    def __init__(self, aws: AWSClients, info: KeyInfo) -> None:
        self.aws = aws
        self.info = info
        # AWS request ids of this key object's signing requests, for the audit trail
        # (one key object per signing call).
        self.request_ids: list[str] = []

    def note_request(self, response: dict[str, Any]) -> None:
        self.request_ids.append(str(response.get("ResponseMetadata", {}).get("RequestId", "")))

    @abstractmethod
    def sign(self, messages: Sequence[bytes]) -> list[bytes]:
        """Return the 64-byte Ed25519 signature of each message, in order."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} alias/{self.info.name} {self.info.address}>"


def tags_dict(tags: Sequence[dict[str, str]]) -> dict[str, str]:
    return {tag["TagKey"]: tag["TagValue"] for tag in tags}


def kms_tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"TagKey": key, "TagValue": value} for key, value in tags.items()]


def network_from_tags(tags: dict[str, str]) -> str:
    network = tags.get(TAG_NETWORK) or tags.get(TAG_LEGACY_NETWORK, "")
    return network.lower() if network.lower() in NETWORKS else "unknown"


def read_tags(aws: AWSClients, key_id: str, resource: str) -> dict[str, str]:
    tags: list[dict[str, str]] = []
    marker: str | None = None
    while True:
        page = aws.call(
            "kms",
            "ListResourceTags",
            resource,
            KeyId=key_id,
            **({"Marker": marker} if marker else {}),
        )
        tags.extend(page.get("Tags", []))
        marker = page.get("NextMarker")
        if not page.get("Truncated") or not marker:
            return tags_dict(tags)


def describe_key(aws: AWSClients, name: str) -> dict[str, Any]:
    alias = f"alias/{name}"
    metadata: dict[str, Any] = aws.call("kms", "DescribeKey", alias, KeyId=alias)["KeyMetadata"]
    return metadata


def key_info(name: str, metadata: dict[str, Any], tags: dict[str, str]) -> KeyInfo:
    """Build a KeyInfo from DescribeKey metadata and the key's tags, or raise."""
    alias = f"alias/{name}"
    address = tags.get(TAG_ADDRESS)
    if not address:
        raise exc.NotAnAlgorandKeyError(
            f"The KMS key behind {alias} ({metadata['KeyId']}) has no {TAG_ADDRESS} tag.",
            fix="Point the alias at a key created by `manage.py kms_setup`, or tag the key "
            f"with its account address ({TAG_ADDRESS}).",
        )
    auth_address = tags.get(TAG_AUTH_ADDRESS, "")
    for tag, value in ((TAG_ADDRESS, address), (TAG_AUTH_ADDRESS, auth_address)):
        if value and not encoding.is_valid_address(value):
            raise exc.NotAnAlgorandKeyError(
                f"The {tag} tag of the KMS key behind {alias} is not a valid Algorand address.",
                fix=f"Correct the {tag} tag to a 58-character Algorand address.",
            )
    spec = metadata.get("KeySpec", "SYMMETRIC_DEFAULT")
    mode = KEY_SPEC_MODES.get(spec)
    if mode is None:
        raise exc.NotAnAlgorandKeyError(
            f"The KMS key behind {alias} has key spec {spec}, which confio_kms cannot sign with.",
            fix="Use a symmetric key with the private key in SSM (envelope) or an "
            "ECC_NIST_EDWARDS25519 key (native).",
        )
    return KeyInfo(
        name=name,
        key_id=metadata["KeyId"],
        address=address,
        network=network_from_tags(tags),
        mode=mode,
        auth_address=auth_address if auth_address != address else "",
        parameter=tags.get(TAG_PARAMETER, ""),
    )


def resolve(aws: AWSClients, name: str) -> KeyInfo:
    """Look the alias up in KMS: DescribeKey, then ListResourceTags (two requests)."""
    metadata = describe_key(aws, name)
    return key_info(name, metadata, read_tags(aws, metadata["KeyId"], f"alias/{name}"))


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
