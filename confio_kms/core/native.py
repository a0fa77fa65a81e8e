"""Native keys: an Ed25519 key generated inside AWS KMS that signs inside KMS.

KeySpec ``ECC_NIST_EDWARDS25519``, KeyUsage ``SIGN_VERIFY``. The private key never
exists outside KMS: there is nothing to decrypt, log or back up. Each message is
one KMS ``Sign`` request (pure Ed25519: ``ED25519_SHA_512`` with ``MessageType
RAW``); the requests of one call run concurrently. Every signature is verified
locally against the account's public key before it is returned.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextvars import copy_context

from algosdk import encoding

from confio_kms.algorand.networks import MAX_GROUP_SIZE
from confio_kms.algorand.validation import Alias
from confio_kms.common import exceptions as exc
from confio_kms.core.aws import AWSClients
from confio_kms.core.keys import (
    NATIVE,
    TAG_ADDRESS,
    AlgorandKey,
)

KEY_SPEC = "ECC_NIST_EDWARDS25519"
SIGNING_ALGORITHM = "ED25519_SHA_512"
MAX_MESSAGE_BYTES = 4096  # KMS Sign's limit for RAW messages
# The default of Options.native_concurrency: one request per transaction of a group.
MAX_CONCURRENT_REQUESTS = MAX_GROUP_SIZE
# SubjectPublicKeyInfo DER of an Ed25519 key: this prefix (OID 1.3.101.112), then 32 bytes.
SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")

# Per size (Options.native_concurrency): one process normally has one size, so one pool.
_pools: dict[int, tuple[ThreadPoolExecutor, threading.BoundedSemaphore]] = {}
_pool_lock = threading.Lock()
# (key id, address) pairs whose KMS public key this process has checked.
_checked: set[tuple[str, str]] = set()


def _after_fork() -> None:
    """A forked child has none of the parent's pool threads: new pools on first use."""
    global _pool_lock
    _pool_lock = threading.Lock()
    _pools.clear()


os.register_at_fork(after_in_child=_after_fork)


def _executor(size: int) -> tuple[ThreadPoolExecutor, threading.BoundedSemaphore]:
    """The threads that send groups' Sign requests, and the ``size`` slots that bound
    the Sign requests in flight in this process (``Options.native_concurrency``, shared
    by every signer of that size; KMS's asymmetric quota is low)."""
    with _pool_lock:
        if size not in _pools:
            _pools[size] = (
                ThreadPoolExecutor(size, thread_name_prefix="confio-kms"),
                threading.BoundedSemaphore(size),
            )
        return _pools[size]


def public_key_from_spki(der: bytes, key_id: str) -> bytes:
    """The 32-byte Ed25519 key inside GetPublicKey's DER, after checking its form."""
    if len(der) != len(SPKI_PREFIX) + 32 or not der.startswith(SPKI_PREFIX):
        raise exc.KeyMaterialError(
            f"KMS key {key_id} did not return an Ed25519 public key "
            f"(expected 44 bytes of SubjectPublicKeyInfo with OID 1.3.101.112, got {len(der)}).",
            fix=f"Use a key with KeySpec {KEY_SPEC}.",
        )
    return der[len(SPKI_PREFIX) :]


def fetch_address(aws: AWSClients, key_id: str, resource: str) -> str:
    """The Algorand address of a native key, from GetPublicKey (one request)."""
    response = aws.call("kms", "GetPublicKey", resource, KeyId=key_id)
    return str(encoding.encode_address(public_key_from_spki(response["PublicKey"], key_id)))


def remember_checked(key_id: str, address: str) -> None:
    """Record that ``key_id``'s public key in KMS is ``address``'s (just read from KMS)."""
    _checked.add((key_id, address))


def check_size(message: bytes, index: int) -> None:
    if len(message) > MAX_MESSAGE_BYTES:
        raise exc.MessageTooLargeError(
            f"Item {index} signs {len(message)} bytes; KMS signs at most {MAX_MESSAGE_BYTES} "
            "bytes with a native key. Nothing was sent.",
            fix="Sign it with an envelope key (give the accounts that deploy large "
            "applications one: `manage.py kms_setup --create-new` without --native; it signs "
            "locally, with no size limit), or make the transaction smaller (split the "
            "application create into create + update).",
        )


class NativeKey(AlgorandKey):
    """Signs inside KMS: one Sign request per message, concurrently."""

    kind = NATIVE
    key_spec = KEY_SPEC
    aws: AWSClients  # built by kinds.key_for with the whole clients

    def _sign(self, messages: Sequence[bytes]) -> list[bytes]:
        for index, message in enumerate(messages):
            check_size(message, index)
        self._check_public_key()
        # Once per call: a reset elsewhere cannot split a group.
        pool, slots = _executor(self.aws.options.native_concurrency)
        if len(messages) == 1:
            return [self._sign_one(slots, messages[0])]
        # Each request runs in a copy of the caller's context (its tracing span, as in workers).
        jobs = [pool.submit(copy_context().run, self._sign_one, slots, m) for m in messages]
        # Wait for every request, so none is still in flight when the call returns; then
        # result() re-raises the first failure: the whole call fails, never a partial group.
        wait(jobs)
        return [job.result() for job in jobs]

    def _check_public_key(self) -> None:
        """Once per process and key: the key in KMS must be the tagged account's."""
        if (self.info.key_id, self.info.signer_address) in _checked:
            return
        actual = fetch_address(self.aws, self.info.key_id, str(Alias(self.info.name)))
        if actual != self.info.signer_address:
            raise exc.AddressMismatchError(
                f"KMS key {self.info.key_id} ({Alias(self.info.name)}) holds the key of {actual}, "
                f"but is tagged {self.info.signer_address}; nothing was signed.",
                fix=f"Correct the {TAG_ADDRESS} tag to the key's own address after checking "
                "which account this key should sign for.",
            )
        _checked.add((self.info.key_id, self.info.signer_address))

    @classmethod
    def reset(cls) -> None:
        _checked.clear()
        with _pool_lock:  # new pools on next use; calls holding an old one finish on it
            _pools.clear()  # (never shut down under them)

    def _sign_one(self, slots: threading.BoundedSemaphore, message: bytes) -> bytes:
        with slots:
            return self._send_sign(message)

    def _send_sign(self, message: bytes) -> bytes:
        response = self.aws.call(
            "kms",
            "Sign",
            str(Alias(self.info.name)),
            KeyId=self.info.key_id,
            Message=message,
            MessageType="RAW",
            SigningAlgorithm=SIGNING_ALGORITHM,
        )
        self.note_request(response)
        return bytes(response.get("Signature", b""))
