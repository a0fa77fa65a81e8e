"""Parameter Store SecureStrings for the sandbox's local AWS endpoint (moto), encrypted
by KMS as AWS documents it.

A stand-in, for the embedded sandbox and the test suite only: moto 5.2.5 stores a
SecureString as the text ``kms:<key id>:<value>``, not bound to KMS (a disabled key,
one pending deletion or none at all still "decrypts"), and its KMS answers Encrypt and
Decrypt whatever the key's state. :func:`install` patches moto, in the process that
runs its server (``LocalAWS.start()`` calls it), to follow the KMS developer guide
("How AWS Systems Manager Parameter Store uses AWS KMS") and KMS's key-state table.
It is not AWS. What it follows:

- PutParameter of a standard-tier SecureString encrypts the value with moto's KMS
  (same account and region) under the parameter's KMS key (``KeyId``: key id, key ARN,
  alias or alias ARN; without one, ``alias/aws/ssm``, which moto's KMS creates on first
  use as AWS does), with the encryption context
  ``{"PARAMETER_ARN": "arn:aws:ssm:REGION:ACCOUNT:parameter/NAME"}`` (NAME without its
  leading slash: ``/confio/x`` is ``parameter/confio/x``). The parameter keeps that
  ciphertext. A key that does not exist, is not a symmetric encryption key, is
  disabled or pending deletion fails the request with ``InvalidKeyId`` naming the KMS
  error (as SSM words it: ``... is pending deletion. (Service: AWSKMS; ... Error Code:
  KMSInvalidStateException)``); nothing is stored.
- GetParameter, GetParameters, GetParametersByPath and GetParameterHistory with
  ``WithDecryption=false`` return that ciphertext, base64: KMS Decrypt with the same
  context returns the value, with another context or none it fails
  (``InvalidCiphertextException``; moto's KMS binds the context as AES-GCM associated
  data). With ``WithDecryption=true`` the value is decrypted through moto's KMS with
  that context: a disabled key or one pending deletion fails with ``InvalidKeyId``.
- Versions, labels and history stay moto's: each version keeps the ciphertext it was
  written with, under the key it was written with (an overwrite without ``KeyId``
  keeps the previous version's key, as moto does).
- KMS Encrypt, Decrypt, ReEncrypt, GenerateDataKey and GenerateDataKeyWithoutPlaintext
  refuse a disabled key (``DisabledException``) and one in any other state but
  Enabled, pending deletion included (``KMSInvalidStateException``), as AWS's key
  state table says; moto answers them whatever the state.

What it does not emulate: advanced-tier SecureStrings (AWS encrypts them with the AWS
Encryption SDK under a data key; here they keep moto's placeholder, so their
``WithDecryption=false`` value is not a KMS ciphertext and key state is not checked
for them); the ciphertext format (moto's own, not AWS's); IAM and key policies (moto
evaluates neither, so ``kms:EncryptionContext:PARAMETER_ARN`` and ``kms:ViaService``
conditions are not enforced: the tests weigh the policies with
``confio_kms.ops.iam_evaluator`` instead); CloudTrail; quotas; parameters moto makes
itself (its public ``/aws/...`` parameters and CloudFormation's keep moto's behaviour).

Needs the ``sandbox`` extra (moto); imported only by ``confio_kms.sandbox``, lazily.
"""

from __future__ import annotations

import base64
import contextvars
import threading
from collections.abc import Callable
from typing import Any

from moto.kms import models as kms_models
from moto.kms import responses as kms_responses
from moto.kms.utils import _deserialize_ciphertext_blob
from moto.ssm import models as ssm_models
from moto.ssm.exceptions import SSMException
from moto.ssm.utils import parameter_arn

from confio_kms.sandbox.ed25519 import KMSError

CONTEXT_KEY = "PARAMETER_ARN"
SECURE = "SecureString"
ADVANCED = "Advanced"
SYMMETRIC = "SYMMETRIC_DEFAULT"
# Where a stand-in parameter keeps what decrypting it needs: (region, parameter ARN).
_SEALED = "_confio_sealed"

_install_lock = threading.Lock()
_installed = False
_original: dict[str, Any] = {}
# The region of the PutParameter being served: moto's Parameter knows only its account.
_region: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "confio_sandbox_ssm_region", default=None
)


def encryption_context(account: str, region: str, name: str) -> dict[str, str]:
    """The encryption context Parameter Store uses for parameter ``name``."""
    return {CONTEXT_KEY: parameter_arn(account, region, name)}


def _key_state_error(key: Any) -> tuple[str, str] | None:
    """The KMS error code and message for a key in a state that refuses cryptographic
    operations; None for an enabled key."""
    if key.key_state == "Enabled":
        return None
    if key.key_state == "Disabled":
        return "DisabledException", f"{key.arn} is disabled."
    if key.key_state == "PendingDeletion":
        return "KMSInvalidStateException", f"{key.arn} is pending deletion."
    return "KMSInvalidStateException", f"{key.arn} is {key.key_state}."


def _invalid_key_id(code: str, message: str) -> SSMException:
    """SSM's answer when KMS refuses: InvalidKeyId, carrying KMS's own error."""
    return SSMException(
        "InvalidKeyId",
        f"{message} (Service: AWSKMS; Status Code: 400; Error Code: {code})",
    )


def _usable(kms: kms_models.KmsBackend, key_id: str) -> Any:
    """The symmetric encryption key ``key_id`` names, if SSM may use it now."""
    try:
        key = kms.describe_key(key_id)
    except Exception:  # moto raises KeyError/AttributeError for unknown ids and aliases
        raise _invalid_key_id("NotFoundException", f"Key '{key_id}' does not exist.") from None
    # moto leaves KeyUsage unset when CreateKey omits it (AWS's default: ENCRYPT_DECRYPT).
    if (key.key_usage or "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT" or key.key_spec != SYMMETRIC:
        raise _invalid_key_id(
            "InvalidKeyUsageException", f"{key.arn} is not a symmetric encryption key."
        )
    refused = _key_state_error(key)
    if refused:
        raise _invalid_key_id(*refused)
    return key


def _encrypt(self: ssm_models.Parameter, value: str) -> str:
    region = _region.get()
    if region is None or self.tier == ADVANCED:
        return str(_original["ssm.encrypt"](self, value))
    kms = kms_models.kms_backends[self.account_id][region]
    key = _usable(kms, str(self.keyid))
    context = encryption_context(self.account_id, region, self.name)
    blob, _ = kms.encrypt(key.id, value.encode(), context)
    setattr(self, _SEALED, (region, context[CONTEXT_KEY]))
    return base64.b64encode(blob).decode()


def _decrypt(self: ssm_models.Parameter, value: str) -> str | None:
    sealed = getattr(self, _SEALED, None)
    if self.parameter_type != SECURE or sealed is None:
        return _original["ssm.decrypt"](self, value)  # type: ignore[no-any-return]
    region, arn = sealed
    kms = kms_models.kms_backends[self.account_id][region]
    blob = base64.b64decode(value)
    key = kms.keys.get(_deserialize_ciphertext_blob(blob).key_id)
    if key is None:
        raise _invalid_key_id("NotFoundException", "The parameter's KMS key does not exist.")
    refused = _key_state_error(key)
    if refused:
        raise _invalid_key_id(*refused)
    plaintext, _ = kms.decrypt(blob, {CONTEXT_KEY: arn})
    return plaintext.decode()


def _put_parameter(original: Callable[..., Any]) -> Callable[..., Any]:
    def put_parameter(self: ssm_models.SimpleSystemManagerBackend, *args: Any, **kw: Any) -> Any:
        token = _region.set(self.region_name)
        try:
            return original(self, *args, **kw)
        except Exception:
            # moto's store is a defaultdict: a refused first version leaves an empty
            # history behind, which its GetParameter cannot read. Nothing was stored.
            store = self._parameters
            key = store.normalize_name(str(args[0] if args else kw.get("name", "")))
            if dict.get(store, key, None) == []:
                dict.pop(store, key)
            raise
        finally:
            _region.reset(token)

    return put_parameter


def _key_of_request(response: kms_responses.KmsResponse, operation: str) -> Any:
    """The key a symmetric KMS request uses: from KeyId, or (Decrypt and ReEncrypt
    without one) from the ciphertext; None when moto's own checks should answer."""
    key_id = response._get_param("DestinationKeyId" if operation == "re_encrypt" else "KeyId")
    try:
        if key_id:
            return response.kms_backend.describe_key(key_id)
        blob = response._get_param("CiphertextBlob")
        if isinstance(blob, str):
            blob = base64.b64decode(blob)
        return response.kms_backend.keys.get(_deserialize_ciphertext_blob(blob).key_id)
    except Exception:  # unknown key or malformed ciphertext: moto answers as it ships
        return None


def _checking_state(operation: str) -> Callable[[kms_responses.KmsResponse], str]:
    def handler(self: kms_responses.KmsResponse) -> str:
        keys = [_key_of_request(self, operation)]
        if operation == "re_encrypt":
            keys.append(_key_of_request(self, "decrypt"))
        for key in keys:
            refused = _key_state_error(key) if key is not None else None
            if refused:
                raise KMSError(*refused)
        return str(_original[f"kms.{operation}"](self))

    return handler


_STATEFUL: tuple[str, ...] = ("encrypt", "decrypt", "re_encrypt", "generate_data_key")
_STATEFUL += ("generate_data_key_without_plaintext",)


def install() -> None:
    """Patch moto, once per process, so its SSM encrypts SecureStrings with its KMS and
    its KMS refuses keys that are not enabled. Call it before the server handles its
    first request; calling it again does nothing."""
    global _installed
    with _install_lock:
        if _installed:
            return
        for name, patch in (("encrypt", _encrypt), ("decrypt", _decrypt)):
            _original[f"ssm.{name}"] = getattr(ssm_models.Parameter, name)
            setattr(ssm_models.Parameter, name, patch)
        backend = ssm_models.SimpleSystemManagerBackend
        backend.put_parameter = _put_parameter(backend.put_parameter)  # type: ignore[method-assign]
        for operation in _STATEFUL:
            _original[f"kms.{operation}"] = getattr(kms_responses.KmsResponse, operation)
            setattr(kms_responses.KmsResponse, operation, _checking_state(operation))
        _installed = True
