"""Envelope keys: the Ed25519 private key is an SSM SecureString encrypted by KMS.

This is the layout existing deployments have: a symmetric KMS key per account
(alias ``alias/<name>``, address in its tags) encrypting the private key stored at
``<prefix>/<name>/private-key`` as py-algorand-sdk's base64 private key string.
Signing reads the parameter's KMS ciphertext once (GetParameter without decryption;
kept in the process and, authenticated, in the shared cache), then decrypts it with
one kms:Decrypt per call under the encryption context Parameter Store uses
(``PARAMETER_ARN``), signs every message of the call, and drops the key. A parameter
KMS will not decrypt directly (advanced tier) is decrypted by Parameter Store as
before (GetParameter with decryption), logged once; calls for the same key that overlap in a process
share one decrypt (``confio_kms.core.coalescing``), and the last of them drops it.

Python cannot wipe memory: the decrypted key lives only in locals of the calls that
use it and in objects whose repr is redacted, and the functions that hold it re-raise
failures without their frames (``redaction.holds_secrets``), so it does not show in
tracebacks that print locals (Django's debug page, Sentry).
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from algosdk import encoding
from nacl import bindings

from confio_kms.algorand.validation import Alias, parameter_path, public_key
from confio_kms.common import exceptions as exc
from confio_kms.common.redaction import holds_secrets
from confio_kms.core import cache
from confio_kms.core.aws import AWSClients
from confio_kms.core.coalescing import Coalescer
from confio_kms.core.keys import (
    ENVELOPE,
    AlgorandKey,
    KeyInfo,
)

# Decrypts in flight in this process, shared by the signing calls that overlap them.
_decrypts: Coalescer[_PrivateKey] = Coalescer()
_Slot = tuple[str, str, str]  # (AWS scope, parameter path, KMS key id)
# Each parameter's ciphertext and ARN, read once (GetParameter without decryption).
_ciphertexts: dict[_Slot, tuple[bytes, str]] = {}
# Parameters KMS will not decrypt directly (advanced tier): Parameter Store decrypts them.
_fallback: set[_Slot] = set()
_lock = threading.Lock()
# KMS's answers to a ciphertext it cannot decrypt (not its format, or another key's).
_REFUSED_CIPHERTEXT = ("InvalidCiphertextException", "IncorrectKeyException")
logger = logging.getLogger("confio_kms.envelope")


class _PrivateKey:
    """A decrypted private key (libsodium's 64 bytes: seed, then public key); its repr
    never shows the key. ``request_id`` is the AWS request that decrypted it (shared by
    the calls of a coalesced burst)."""

    __slots__ = ("_secret", "public_key", "request_id")

    def __init__(self, secret: bytes, request_id: str) -> None:
        self._secret = secret
        self.public_key = secret[32:]
        self.request_id = request_id

    @property
    def address(self) -> str:
        return str(encoding.encode_address(self.public_key))

    def sign(self, message: bytes) -> bytes:
        return bytes(bindings.crypto_sign(message, self._secret)[: bindings.crypto_sign_BYTES])

    def __repr__(self) -> str:
        return f"<private key of {self.address}: redacted>"


def _signing_key(value: object) -> tuple[bytes | None, str]:
    """Parse py-algorand-sdk's base64 private key: (its 64 bytes, "") or (None, what is
    wrong).

    The public half is not derived from the seed here (a scalar multiplication, about
    40 us a call): a seed that does not match it signs what does not verify against
    the address, and every signature is verified (``EnvelopeKey.unverified`` names it).
    Returns instead of raising, so no exception is ever raised from a frame that
    holds the secret (error reporters record the locals of every frame).
    """
    try:
        raw = base64.b64decode(value, validate=True) if isinstance(value, (str, bytes)) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 64:
        return (
            None,
            "does not hold an Algorand private key "
            "(expected py-algorand-sdk's base64 encoding of 64 bytes)",
        )
    return raw, ""


class EnvelopeKey(AlgorandKey):
    """Signs with the private key decrypted from SSM, once per call."""

    kind = ENVELOPE
    key_spec = "SYMMETRIC_DEFAULT"
    aws: AWSClients  # built by kinds.key_for with the whole clients

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
        # on its own. Keyed by the clients too: their credentials are the caller's.
        wait = shared.max_wait
        if self.aws.deadline is not None:
            wait = max(0.0, min(wait, self.aws.deadline - time.monotonic()))
        try:
            return _decrypts.run(
                (id(self.aws.ssm), id(self.aws.kms), self.path, self.info.key_id),
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

    def unverified(self, index: int) -> exc.ConfioKMSError:
        # The key's public half matched the address (``_sign_with``) and libsodium signs
        # what verifies under it: a signature that does not means the seed is not its.
        return exc.KeyMaterialError(
            f"The SSM parameter {self.path} is corrupt: its public half does not match "
            "its private half; nothing was returned.",
            fix="Restore the key from the backup mnemonic with "
            "`manage.py kms_setup --import-existing` under a new alias.",
        )

    def _decrypt(self) -> _PrivateKey:
        """The private key: one kms:Decrypt of the parameter's ciphertext (read once, then
        kept), or today's SSM decrypt for a parameter KMS will not decrypt directly."""
        slot = (self.aws.scope, self.path, self.info.key_id)
        if slot in _fallback:
            return self._decrypt_by_ssm()
        found, cached = self._ciphertext(slot)
        if found is None:
            return self._fall_back(slot, "its value is not a KMS ciphertext (advanced tier?)")
        try:
            key = self._decrypt_by_kms(*found)
            if cached and key.public_key != public_key(self.info.signer_address):
                # A kept ciphertext of an older value: never reuse it, read it again once.
                self._drop(slot)
                found, _ = self._ciphertext(slot)
                if found is None:
                    return self._fall_back(slot, "its value is not a KMS ciphertext")
                key = self._decrypt_by_kms(*found)
        except exc.AWSError as error:
            code = (error.cause or "").split(":", 1)[0]
            if type(error) is not exc.AWSError or code not in _REFUSED_CIPHERTEXT:
                raise
            self._drop(slot)
            return self._fall_back(slot, f"KMS refused its ciphertext ({code})")
        return key

    def _ciphertext(self, slot: _Slot) -> tuple[tuple[bytes, str] | None, bool]:
        """((ciphertext, parameter ARN) or None when the value is no KMS ciphertext,
        whether it was kept from before)."""
        with _lock:
            kept = _ciphertexts.get(slot)
        if kept is not None:
            return kept, True
        shared = cache.read_ciphertext(*slot, options=self.aws.options)
        if shared is not None:
            blob = _blob(shared[0])
            if blob is not None:
                with _lock:
                    _ciphertexts[slot] = (blob, shared[1])
                return (blob, shared[1]), True
        response = self.aws.call(
            "ssm", "GetParameter", self.path, Name=self.path, WithDecryption=False
        )
        parameter = response.get("Parameter", {})
        value, arn = parameter.get("Value"), str(parameter.get("ARN", ""))
        secure = parameter.get("Type") == "SecureString"
        response.clear()  # a String parameter's value would be the key itself
        if not arn.endswith(f":parameter{self.path}"):
            raise exc.KeyMaterialError(
                f"SSM answered for {self.path} with the parameter {arn or '(no ARN)'}; "
                "nothing was signed.",
                fix="Check the endpoint (AWS_ENDPOINT_URL / KMS_ENDPOINT_URL) and the SSM prefix.",
            )
        blob = _blob(value) if secure else None
        if blob is None:
            return None, False
        with _lock:
            _ciphertexts[slot] = (blob, arn)
        cache.put_ciphertext(*slot, str(value), arn, self.aws.options)
        return (blob, arn), False

    def _decrypt_by_kms(self, blob: bytes, arn: str) -> _PrivateKey:
        response = self.aws.call(
            "kms",
            "Decrypt",
            str(Alias(self.info.name)),  # what an error names: the operator's alias
            CiphertextBlob=blob,
            KeyId=self.info.key_id,  # a ciphertext under another key is refused
            EncryptionContext={"PARAMETER_ARN": arn},
        )
        self.parameter_arn = arn
        return self._parsed(response)

    def _decrypt_by_ssm(self) -> _PrivateKey:
        response = self.aws.call(
            "ssm", "GetParameter", self.path, Name=self.path, WithDecryption=True
        )
        self.parameter_arn = str(response.get("Parameter", {}).get("ARN", ""))
        return self._parsed(response)

    def _parsed(self, response: dict[str, Any]) -> _PrivateKey:
        """The key in a Decrypt or GetParameter answer, which is cleared."""
        request_id = str(response.get("ResponseMetadata", {}).get("RequestId", ""))
        value = response.get("Plaintext", response.get("Parameter", {}).get("Value"))
        key, problem = _signing_key(value)
        response.clear()  # the decrypted value must not outlive this line in any frame
        del value
        if key is None:
            raise exc.KeyMaterialError(
                f"The SSM parameter {self.path} {problem}.",
                fix="Restore the key from the backup mnemonic with "
                "`manage.py kms_setup --import-existing` under a new alias.",
            )
        return _PrivateKey(key, request_id)

    def _fall_back(self, slot: _Slot, why: str) -> _PrivateKey:
        """Use today's path for this parameter from now on in this process; say so once."""
        with _lock:
            first = slot not in _fallback
            _fallback.add(slot)
        if first:
            logger.warning(
                "%s (%s): %s; it is decrypted through Parameter Store (GetParameter "
                "WithDecryption) from now on in this process.",
                self.path,
                Alias(self.info.name),
                why,
            )
        return self._decrypt_by_ssm()

    def _drop(self, slot: _Slot) -> None:
        with _lock:
            _ciphertexts.pop(slot, None)
        cache.forget_ciphertext(*slot, self.aws.options)

    @classmethod
    def reset(cls) -> None:
        with _lock:
            _ciphertexts.clear()
            _fallback.clear()


def _blob(value: object) -> bytes | None:
    """The bytes of a base64 KMS ciphertext, or None when ``value`` is not one."""
    try:
        blob = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except (binascii.Error, ValueError):
        return None
    return blob or None
