"""The registry of key kinds: kind name -> the ``AlgorandKey`` subclass that signs.

Adding a kind is a new module with an ``AlgorandKey`` subclass (``kind``,
``key_spec``, ``_sign``) and one line in ``KINDS``, and its creator
(``confio_kms.lifecycle.provision.KeyCreator``) in ``CREATORS``. Everything that
depends on the kind (signing, rotation, listing, decoding KMS metadata) looks it up
here.
"""

from __future__ import annotations

from typing import Any

from algosdk import encoding

from confio_kms.algorand.validation import Alias
from confio_kms.common import exceptions as exc
from confio_kms.core.aws import AWSClients
from confio_kms.core.envelope import EnvelopeKey
from confio_kms.core.keys import (
    TAG_ADDRESS,
    TAG_AUTH_ADDRESS,
    TAG_PARAMETER,
    AlgorandKey,
    KeyInfo,
    describe_key,
    network_of,
    read_tags,
)
from confio_kms.core.native import NativeKey
from confio_kms.core.options import DEFAULTS, Options

KINDS: dict[str, type[AlgorandKey]] = {cls.kind: cls for cls in (EnvelopeKey, NativeKey)}
DEFAULT_KIND = EnvelopeKey.kind


def named(kind: object) -> type[AlgorandKey]:
    """The class of ``kind``, or a typed error naming the kinds there are."""
    if not isinstance(kind, str) or kind not in KINDS:
        raise exc.ConfigurationError(
            f"{kind!r} is not a kind of key confio_kms knows.",
            fix=f"Use one of: {', '.join(KINDS)}.",
        )
    return KINDS[kind]


def for_spec(spec: str) -> str:
    """The kind whose KMS keys have KeySpec ``spec``; "" if none does."""
    return next((kind for kind, cls in KINDS.items() if cls.key_spec == spec), "")


def key_for(aws: AWSClients, info: KeyInfo, prefix: str) -> AlgorandKey:
    """The key object that signs for ``info`` (one per signing call)."""
    return KINDS[info.kind](aws, info, prefix)


def reset() -> None:
    """Forget what every kind remembers in this process."""
    for cls in KINDS.values():
        cls.reset()


def key_info(
    name: str, metadata: dict[str, Any], tags: dict[str, str], options: Options = DEFAULTS
) -> KeyInfo:
    """Build a KeyInfo from DescribeKey metadata and the key's tags, or raise; an
    untagged key's network is what its alias stands for under ``options``."""
    alias = str(Alias(name))
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
    kind = for_spec(spec)
    if not kind:
        raise exc.NotAnAlgorandKeyError(
            f"The KMS key behind {alias} has key spec {spec}, which confio_kms cannot sign with.",
            fix="Point the alias at a key of one of these kinds: "
            + ", ".join(f"{kind} ({cls.key_spec})" for kind, cls in KINDS.items())
            + ".",
        )
    return KeyInfo(
        name=name,
        key_id=metadata["KeyId"],
        address=address,
        network=network_of(name, tags, options),
        kind=kind,
        auth_address=auth_address if auth_address != address else "",
        parameter=tags.get(TAG_PARAMETER, ""),
    )


def resolve(aws: AWSClients, name: str) -> KeyInfo:
    """Look the alias up in KMS: DescribeKey, then ListResourceTags (two requests)."""
    metadata = describe_key(aws, name)
    tags = read_tags(aws, metadata["KeyId"], str(Alias(name)))
    return key_info(name, metadata, tags, aws.options)
