"""Checks on names, networks and mnemonics, done before any AWS request."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from algosdk import encoding as algosdk_encoding
from algosdk import mnemonic as algosdk_mnemonic

from confio_kms.algorand.networks import NETWORKS
from confio_kms.common.exceptions import (
    InvalidAliasError,
    InvalidMnemonicError,
    InvalidNetworkError,
)
from confio_kms.common.redaction import holds_secrets

DEFAULT_SSM_PREFIX = "/confio/algorand"
MNEMONIC_WORDS = 25
RESERVED_SUFFIX = "--pending-rotation"  # rotation's staging aliases

# One path segment only: a name with "/" or ".." could address another key's
# parameter under the SSM prefix, so both are refused.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_PREFIX = re.compile(r"(/[A-Za-z0-9_.-]+)+")


def alias_name(key_alias: object) -> str:
    """Return the bare name of ``key_alias`` (``alias/`` prefix optional) or raise."""
    if not isinstance(key_alias, str):
        raise InvalidAliasError(
            f"A key alias must be a string, not {type(key_alias).__name__}.",
            fix="Pass the alias name, for example 'confio-testnet-sponsor'.",
        )
    name = key_alias.removeprefix("alias/")
    if name.endswith(RESERVED_SUFFIX):
        raise InvalidAliasError(
            f"{key_alias!r} ends with {RESERVED_SUFFIX!r}, which rotation reserves for "
            "its staging aliases.",
            fix="Choose a name without that ending.",
        )
    if not _NAME.fullmatch(name):
        raise InvalidAliasError(
            f"{key_alias!r} is not a valid key alias.",
            fix="Use 1-128 letters, digits, '-' or '_', starting with a letter or digit "
            "(optionally prefixed with 'alias/'), for example 'confio-testnet-sponsor'.",
        )
    return name


def same_address(a: object, b: object) -> bool:
    """Whether two Algorand addresses name one account: compares the public keys they
    encode, since one key has several base32 spellings that all pass the checksum."""
    if a == b:
        return isinstance(a, str) and bool(public_key(a))
    return isinstance(a, str) and isinstance(b, str) and public_key(a) == public_key(b) != b""


@functools.lru_cache(maxsize=1024)
def public_key(address: str) -> bytes:
    """The public key an address encodes, or b"" when it is malformed (cached: decoding
    costs a base32 decode and a SHA-512/256 checksum, on the signing path)."""
    try:
        return bytes(algosdk_encoding.decode_address(address))
    except Exception:  # py-algorand-sdk raises several unrelated types for bad input
        return b""


def staging_name(name: str) -> str:
    """The staging alias name a rotation of ``name`` creates its new key under."""
    return f"{name}{RESERVED_SUFFIX}"


@dataclass(frozen=True)
class Alias:
    """A KMS alias of an Algorand key: ``name`` is the bare name; ``str()`` (and an
    f-string) gives ``alias/<name>``, what KMS takes as an alias or a ``KeyId``."""

    name: str

    @classmethod
    def parse(cls, key_alias: object) -> Alias:
        """The alias ``key_alias`` names (``alias/`` prefix optional), checked."""
        return cls(alias_name(key_alias))

    @property
    def staging(self) -> Alias:
        """The staging alias a rotation of this alias creates its new key under."""
        return Alias(staging_name(self.name))

    def __str__(self) -> str:
        return f"alias/{self.name}"


def network_name(network: object) -> str:
    """Return ``network`` if it is a known Algorand network, else raise."""
    if not isinstance(network, str) or network not in NETWORKS:
        raise InvalidNetworkError(
            f"{network!r} is not a known Algorand network.",
            fix=f"Use one of: {', '.join(NETWORKS)}.",
        )
    return network


def ssm_prefix(prefix: object) -> str:
    """Return the SSM path prefix without a trailing slash, or raise."""
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix.rstrip("/")):
        raise InvalidAliasError(
            f"{prefix!r} is not a valid SSM parameter prefix.",
            fix=f"Use an absolute path such as {DEFAULT_SSM_PREFIX!r}.",
        )
    if any(part in (".", "..") for part in prefix.split("/")):
        raise InvalidAliasError(
            f"{prefix!r} contains '.' or '..' segments.",
            fix=f"Use an absolute path without them, such as {DEFAULT_SSM_PREFIX!r}.",
        )
    return prefix.rstrip("/")


def parameter_path(prefix: str, name: str) -> str:
    """The SSM parameter that holds the encrypted private key of ``name``."""
    return f"{prefix}/{name}/private-key"


@holds_secrets
def private_key_from_mnemonic(phrase: object) -> str:
    """Turn a 25-word mnemonic into py-algorand-sdk's base64 private key string.

    Errors name the position of a bad word, never the word itself, and never
    chain py-algorand-sdk's own errors, which can carry the whole phrase.
    """
    if not isinstance(phrase, str):
        raise InvalidMnemonicError(
            f"A mnemonic must be a string, not {type(phrase).__name__}.",
            fix="Pass the 25 words separated by spaces.",
        )
    words = phrase.lower().split()
    if len(words) != MNEMONIC_WORDS:
        raise InvalidMnemonicError(
            f"An Algorand mnemonic has {MNEMONIC_WORDS} words; this one has {len(words)}.",
            fix="Paste the whole backup phrase, words separated by spaces.",
        )
    for position, word in enumerate(words, start=1):
        if word not in algosdk_mnemonic.word_to_index:
            raise InvalidMnemonicError(
                f"Word {position} of the mnemonic is not in Algorand's word list.",
                fix=f"Check the spelling of word {position} against your backup.",
            )
    try:
        private_key: str | None = str(algosdk_mnemonic.to_private_key(" ".join(words)))
    except Exception:
        private_key = None
    # Raised outside the except block so no exception of py-algorand-sdk's is even
    # attached as __context__.
    if private_key is None:
        raise InvalidMnemonicError(
            "The mnemonic's checksum word does not match the other 24 words.",
            fix="A word is mistyped or out of order: compare the phrase with your backup.",
        )
    return private_key
