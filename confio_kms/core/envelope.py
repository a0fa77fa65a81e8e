"""Envelope keys: the Ed25519 private key is an SSM SecureString encrypted by KMS.

This is the layout existing deployments have: a symmetric KMS key per account
(alias ``alias/<name>``, address in its tags) encrypting the private key stored at
``<prefix>/<name>/private-key`` as py-algorand-sdk's base64 private key string.
Signing decrypts it with one SSM GetParameter request per call, signs every
message of the call, and drops it; calls for the same key that overlap in a process
share one decrypt (``confio_kms.core.coalescing``), and the last of them drops it.

Python cannot wipe memory: the decrypted key lives only in locals of the calls that
use it and in objects whose repr is redacted, and the functions that hold it re-raise
failures without their frames (``redaction.holds_secrets``), so it does not show in
tracebacks that print locals (Django's debug page, Sentry).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Sequence

from algosdk import encoding
from nacl.signing import SigningKey

from confio_kms.algorand.validation import Alias, parameter_path, public_key
from confio_kms.common import exceptions as exc
from confio_kms.common.redaction import holds_secrets
from confio_kms.core.aws import AWSClients
from confio_kms.core.coalescing import Coalescer
from confio_kms.core.keys import (
    ENVELOPE,
    AlgorandKey,
    KeyInfo,
)

# Decrypts in flight in this process, shared by the signing calls that overlap them.
_decrypts: Coalescer[_PrivateKey] = Coalescer()


class _PrivateKey:
    """A decrypted private key; its repr never shows the key. ``request_id`` is the AWS
    request that decrypted it (shared by the calls of a coalesced burst)."""

    __slots__ = ("_signing_key", "public_key", "request_id")

    def __init__(self, signing_key: SigningKey, request_id: str) -> None:
        self._signing_key = signing_key
        self.public_key = bytes(signing_key.verify_key)
        self.request_id = request_id

    @property
    def address(self) -> str:
        return str(encoding.encode_address(self.public_key))

    def sign(self, message: bytes) -> bytes:
        return bytes(self._signing_key.sign(message).signature)

    def __repr__(self) -> str:
        return f"<private key of {self.address}: redacted>"


def _signing_key(value: object) -> tuple[SigningKey | None, str]:
    """Parse py-algorand-sdk's base64 private key: (key, "") or (None, what is wrong).

    Returns instead of raising, so no exception is ever raised from a frame that
    holds the secret (error reporters record the locals of every frame).
    """
    try:
        raw = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 64:
        return (
            None,
            "does not hold an Algorand private key "
            "(expected py-algorand-sdk's base64 encoding of 64 bytes)",
        )
    key = SigningKey(raw[:32])
    if bytes(key.verify_key) != raw[32:]:
        return None, "is corrupt: its public half does not match its private half"
    return key, ""


class EnvelopeKey(AlgorandKey):
    """Signs with the private key decrypted from SSM, once per call."""

    kind = ENVELOPE
    key_spec = "SYMMETRIC_DEFAULT"

    def __init__(self, aws: AWSClients, info: KeyInfo, prefix: str) -> None:
        super().__init__(aws, info, prefix)
        own = parameter_path(prefix, info.name)
        # A rotated key's parameter lives beside the alias's own; a path anywhere else
        # (a tampered tag or shared cache entry) could point at another account's key.
        if info.parameter and not info.parameter.startswith(f"{own}-"):
            raise exc.KeyMaterialError(
                f"{Alias(info.name)} names the parameter {info.parameter}, outside "
                f"{own}[-*]; nothing was signed.",
                fix=f"Correct the key's SSMParameter tag to a path under {own}-.",
            )
        self.path = info.parameter or own

    @holds_secrets
    def _sign(self, messages: Sequence[bytes]) -> list[bytes]:
        shared = self.aws.coalescing
        if not shared.enabled:
            return self._sign_with(self._decrypt(), messages)
        # Calls for this key in flight now share one decrypt; each checks and signs
        # on its own. Keyed by the SSM client too: its credentials are the caller's.
        wait = shared.max_wait
        if self.aws.deadline is not None:
            wait = max(0.0, min(wait, self.aws.deadline - time.monotonic()))
        try:
            return _decrypts.run(
                (id(self.aws.ssm), self.path),
                self._decrypt,
                lambda key: self._sign_with(key, messages),
                max_calls=shared.max_calls,
                max_wait=wait,
                join_window=shared.join_window,
            )
        except exc.CoalescingTimeoutError:
            if wait >= shared.max_wait:
                raise
            raise exc.DeadlineExceededError(  # the call's deadline, not the wait, ran out
                f"The signing call's deadline (CONFIO_KMS_CALL_DEADLINE = "
                f"{self.aws.call_deadline:g} s) passed while it waited for another call's "
                f"decrypt of {self.path}; nothing was signed.",
                fix="AWS is slow or throttling: retry, or raise CONFIO_KMS_CALL_DEADLINE.",
            ) from None

    def _sign_with(self, key: _PrivateKey, messages: Sequence[bytes]) -> list[bytes]:
        self.request_ids.append(key.request_id)
        # A malformed address (say, a tampered shared cache) is b"": a mismatch too.
        if key.public_key != public_key(self.info.signer_address):
            raise exc.AddressMismatchError(
                f"The key in {self.path} belongs to {key.address}, but {Alias(self.info.name)} "
                f"is tagged {self.info.signer_address}; nothing was signed.",
                fix="The parameter was swapped or the tag edited: restore the parameter from "
                "the account's backup, or re-create the key. Do not retag without checking.",
            )
        return [key.sign(message) for message in messages]

    def _decrypt(self) -> _PrivateKey:
        response = self.aws.call(
            "ssm", "GetParameter", self.path, Name=self.path, WithDecryption=True
        )
        request_id = str(response.get("ResponseMetadata", {}).get("RequestId", ""))
        key, problem = _signing_key(response.get("Parameter", {}).get("Value"))
        response.clear()  # the decrypted value must not outlive this line in any frame
        if key is None:
            raise exc.KeyMaterialError(
                f"The SSM parameter {self.path} {problem}.",
                fix="Restore the key from the backup mnemonic with "
                "`manage.py kms_setup --import-existing` under a new alias.",
            )
        return _PrivateKey(key, request_id)
