"""What every kind of KMS-held Algorand key shares.

A key kind (``envelope``, ``native``; registered in ``confio_kms.core.kinds``) subclasses
``AlgorandKey``: it signs byte strings with the account's Ed25519 key
(``_sign``); creating keys is ``confio_kms.lifecycle.provision``'s. The base ``sign`` verifies
every signature against the account before it is returned, whatever the kind.
Everything above the kinds (the signing core, the manager, rotation) works with
``KeyInfo``, the public metadata an alias resolves to, read from the KMS key's
metadata and tags by ``kinds.key_info``, the one decoder of keys.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Protocol

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from confio_kms.algorand import validation
from confio_kms.algorand.networks import NETWORKS, UNKNOWN
from confio_kms.algorand.validation import Alias
from confio_kms.common import exceptions as exc

# Re-exported: their documented path is this module.
from confio_kms.core.key_info import ENVELOPE as ENVELOPE
from confio_kms.core.key_info import NATIVE as NATIVE
from confio_kms.core.key_info import KeyInfo as KeyInfo
from confio_kms.core.options import DEFAULTS, Options

TAG_ADDRESS = "AlgorandAddress"
# After a rotation by rekey: the key's own address, which authorizes for AlgorandAddress.
TAG_AUTH_ADDRESS = "AlgorandAuthAddress"
# Where an envelope key's private key is stored, when not at <prefix>/<alias>/private-key.
TAG_PARAMETER = "SSMParameter"
TAG_NETWORK = "AlgorandNetwork"
TAG_MANAGED_BY = "ManagedBy"
MANAGED_BY = "confio-kms"

PENDING_DELETION = "PendingDeletion"  # a KMS key state


class AWSRequests(Protocol):
    """What the key abstraction uses of ``confio_kms.core.aws.AWSClients``: its options
    and its translated requests. A kind that needs more (envelope keys: coalescing, the
    deadline) narrows ``aws`` to ``AWSClients``; this module stays below the AWS layer."""

    options: Options

    def call(self, service: str, operation: str, resource: str, **params: Any) -> dict[str, Any]:
        """One request; its failures translated into confio_kms errors."""

    def paginate(
        self, service: str, operation: str, resource: str, items: str, **params: Any
    ) -> Iterator[dict[str, Any]]:
        """Every item of ``items`` across the pages of a list operation."""


@functools.lru_cache(maxsize=256)
def _verify_key(address: str) -> VerifyKey:
    """The verify key of an address (cached: built once per address)."""
    return VerifyKey(validation.public_key(address))


class AlgorandKey(ABC):
    """One kind of KMS-held Algorand key: signs messages with the account's key.

    A subclass sets ``kind`` and ``key_spec`` (the KMS KeySpec its keys have),
    implements ``_sign``, and is registered in
    ``confio_kms.core.kinds``. One key object serves one signing call.
    """

    kind: ClassVar[str]
    key_spec: ClassVar[str]
    # The SSM parameter whose ciphertext was decrypted, if any (audit joins CloudTrail on it).
    parameter_arn = ""

    def __init__(self, aws: AWSRequests, info: KeyInfo, prefix: str) -> None:
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
                raise self.unverified(index) from None
        return signatures

    def unverified(self, index: int) -> exc.ConfioKMSError:
        """The error for a signature (of item ``index``) that does not verify."""
        return exc.SignatureVerificationError(
            f"The {self.kind} key {self.info.key_id} ({Alias(self.info.name)}) produced "
            f"a signature for item {index} that does not verify against "
            f"{self.info.signer_address} (AWS requests: "
            f"{', '.join(filter(None, self.request_ids)) or 'none'}); nothing was "
            "returned.",
            fix="Retry; if it persists, check the key's AlgorandAddress tag and "
            "KeySpec and report the request ids to AWS support.",
        )

    @abstractmethod
    def _sign(self, messages: Sequence[bytes]) -> list[bytes]:
        """The signature of each message, in order (verified by ``sign``)."""

    @classmethod  # noqa: B027 (an optional hook: most kinds remember nothing)
    def reset(cls) -> None:
        """Forget what this kind remembers in the process (as in a fresh process)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {Alias(self.info.name)} {self.info.address}>"


def tags_dict(tags: Sequence[dict[str, str]]) -> dict[str, str]:
    return {tag["TagKey"]: tag["TagValue"] for tag in tags}


def kms_tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"TagKey": key, "TagValue": value} for key, value in tags.items()]


def tagged_network(tags: dict[str, str]) -> str:
    """The network of an explicit AlgorandNetwork tag, or "" when there is none."""
    network = tags.get(TAG_NETWORK, "").lower()
    return network if network in NETWORKS else ""


def network_of(name: str, tags: dict[str, str], options: Options = DEFAULTS) -> str:
    """The network of the key behind ``alias/<name>``: its AlgorandNetwork tag, else
    what the alias name stands for (``options.network_of_alias``), else "unknown".

    The old setup scripts never wrote the network (their ``Environment`` tag says
    ``Production``, whatever the network), so their keys are known by their alias.
    """
    return tagged_network(tags) or options.network_of_alias(name) or UNKNOWN


def read_tags(aws: AWSRequests, key_id: str, resource: str) -> dict[str, str]:
    return tags_dict(list(aws.paginate("kms", "ListResourceTags", resource, "Tags", KeyId=key_id)))


def describe_key(aws: AWSRequests, name: str) -> dict[str, Any]:
    alias = str(Alias(name))
    metadata: dict[str, Any] = aws.call("kms", "DescribeKey", alias, KeyId=alias)["KeyMetadata"]
    return metadata
