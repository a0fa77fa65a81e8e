"""KMS Ed25519 keys for the sandbox's local AWS endpoint (moto), until moto ships them.

A stand-in, for the embedded sandbox and the test suite only: moto 5.2.5 has no
``ECC_NIST_EDWARDS25519`` key spec, so :func:`install` patches moto, in the process
that runs its server (``LocalAWS.start()`` calls it), to follow AWS KMS's documented
contract for these keys. It is not AWS and says nothing about how AWS behaves beyond
that contract. What it follows:

- CreateKey with KeySpec ECC_NIST_EDWARDS25519 (KeyUsage SIGN_VERIFY) makes a real
  Ed25519 key (``cryptography``); DescribeKey and GetPublicKey list
  ED25519_SHA_512 and ED25519_PH_SHA_512.
- GetPublicKey returns the 44-byte SubjectPublicKeyInfo DER (OID 1.3.101.112).
- Sign and Verify with ED25519_SHA_512 require MessageType RAW (pure Ed25519 of the
  message, what Algorand verifies); ED25519_PH_SHA_512 requires DIGEST (a 64-byte
  SHA-512 digest, Ed25519ph, RFC 8032 5.1). Other pairings, messages over 4096 bytes
  and other algorithms are ValidationException. Sign returns the raw 64 bytes; a
  signature that does not verify is KMSInvalidSignatureException.
- Sign, Verify and GetPublicKey of a disabled key are DisabledException; of a key
  pending deletion, KMSInvalidStateException.

What it does not emulate: the private key is an ordinary object in the endpoint's
memory (no HSM; it is lost when the endpoint stops, and anyone who can read that
process can read it); Ed25519ph is the RFC's reference arithmetic in pure Python
(not constant time); key policies, grants and IAM are not evaluated (moto does not
evaluate them for any key); no request quotas or throttling; no key material import
(moto has no ImportKeyMaterial) and no CloudTrail; a multi-Region replica is moto's
plain copy of the key (same key material), not checked against AWS's rules. Every
other key spec is left to moto as it ships.

Needs the ``sandbox`` extra (moto); imported only by ``confio_kms.sandbox``, lazily.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from moto.core.exceptions import JsonRESTError
from moto.kms import models, responses
from moto.kms.exceptions import ValidationException
from moto.kms.utils import AbstractPrivateKey, KeySpec, generate_private_key

SPEC = "ECC_NIST_EDWARDS25519"
PURE, PREHASHED = "ED25519_SHA_512", "ED25519_PH_SHA_512"
REQUIRED_MESSAGE_TYPE = {PURE: "RAW", PREHASHED: "DIGEST"}
MAX_MESSAGE = 4096

_install_lock = threading.Lock()
_installed = False
_original: dict[str, Any] = {}


class Ed25519Key(AbstractPrivateKey):
    """A KMS key's Ed25519 private key, as moto keeps its other asymmetric keys."""

    def __init__(self) -> None:
        self.key = ed25519.Ed25519PrivateKey.generate()

    def seed(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def raw_public_key(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def sign(self, message: bytes, signing_algorithm: str) -> bytes:
        if signing_algorithm == PURE:
            return self.key.sign(message)
        return ed25519ph_sign(self.seed(), message)

    def verify(self, message: bytes, signature: bytes, signing_algorithm: str) -> bool:
        if signing_algorithm == PREHASHED:
            return ed25519ph_verify(self.raw_public_key(), message, signature)
        try:
            self.key.public_key().verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def public_key(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class KMSError(JsonRESTError):
    """A KMS error answer (HTTP 400 with ``__type``), as AWS sends it."""

    code = 400


def _raw(value: Any) -> bytes:
    # moto's parameter parsing already base64-decodes blob members.
    return value if isinstance(value, bytes) else str(value or "").encode()


def _usable_key(response: responses.KmsResponse) -> Any:
    """The request's key if it is an Ed25519 key in a state that allows its use, None
    for any other key spec (moto answers those as it ships)."""
    key_id = response._get_param("KeyId")
    response._validate_key_id(key_id)
    key = response.kms_backend.describe_key(key_id)
    if key.key_spec != SPEC:
        return None
    if key.key_state == "Disabled":
        raise KMSError("DisabledException", f"{key.arn} is disabled.")
    if key.key_state != "Enabled":
        raise KMSError("KMSInvalidStateException", f"{key.arn} is {key.key_state}.")
    return key


def _message(response: responses.KmsResponse) -> tuple[str, bytes]:
    """The request's signing algorithm and message, checked as AWS checks them."""
    algorithm = response._get_param("SigningAlgorithm")
    message_type = response._get_param("MessageType") or "RAW"
    message = _raw(response._get_param("Message"))
    if algorithm not in REQUIRED_MESSAGE_TYPE:
        raise ValidationException(
            f"Value '{algorithm}' at 'SigningAlgorithm' is not valid for {SPEC} keys."
        )
    if message_type != REQUIRED_MESSAGE_TYPE[algorithm]:
        raise ValidationException(
            f"{algorithm} requires MessageType {REQUIRED_MESSAGE_TYPE[algorithm]}."
        )
    if not 1 <= len(message) <= MAX_MESSAGE:
        raise ValidationException(
            "1 validation error detected: Value at 'message' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_MESSAGE}"
        )
    if algorithm == PREHASHED and len(message) != 64:
        raise ValidationException("ED25519_PH_SHA_512 with DIGEST takes a 64-byte SHA-512 digest.")
    return algorithm, message


def _sign(self: responses.KmsResponse) -> str:
    key = _usable_key(self)
    if key is None:
        return str(_original["sign"](self))
    algorithm, message = _message(self)
    signature = key.private_key.sign(message, algorithm)
    return json.dumps(
        {
            "KeyId": key.arn,
            "Signature": base64.b64encode(signature).decode(),
            "SigningAlgorithm": algorithm,
        }
    )


def _verify(self: responses.KmsResponse) -> str:
    key = _usable_key(self)
    if key is None:
        return str(_original["verify"](self))
    algorithm, message = _message(self)
    signature = self._get_param("Signature")
    if isinstance(signature, str):  # as moto's own Verify: base64 when not yet decoded
        signature = base64.b64decode(signature)
    if not key.private_key.verify(message, signature or b"", algorithm):
        raise KMSError("KMSInvalidSignatureException", "The signature is not valid.")
    return json.dumps({"KeyId": key.arn, "SignatureValid": True, "SigningAlgorithm": algorithm})


def _get_public_key(self: responses.KmsResponse) -> str:
    _usable_key(self)  # AWS refuses GetPublicKey of a disabled key, too
    return str(_original["get_public_key"](self))


def install() -> None:
    """Patch moto, once per process, so its server implements Ed25519 KMS keys.

    Call it before the server handles its first request; calling it again does nothing.
    """
    global _installed
    with _install_lock:
        if _installed:
            return
        specs = KeySpec.key_specs
        KeySpec.key_specs = classmethod(lambda cls: sorted([*specs(), SPEC]))  # type: ignore[assignment, method-assign]

        def generate(key_spec: str) -> AbstractPrivateKey:
            return Ed25519Key() if key_spec == SPEC else generate_private_key(key_spec)

        models.generate_private_key = generate  # type: ignore[attr-defined]
        algorithms: Callable[[models.Key], Any] = vars(models.Key)["signing_algorithms"].fget

        def signing_algorithms(key: models.Key) -> Any:
            # moto's own answer, None for encryption keys included, for every other spec.
            return [PURE, PREHASHED] if key.key_spec == SPEC else algorithms(key)

        models.Key.signing_algorithms = property(signing_algorithms)  # type: ignore[assignment, method-assign]
        for name, patch in (
            ("sign", _sign),
            ("verify", _verify),
            ("get_public_key", _get_public_key),
        ):
            _original[name] = getattr(responses.KmsResponse, name)
            setattr(responses.KmsResponse, name, patch)
        _installed = True


# --- Ed25519ph (RFC 8032, section 5.1), for ED25519_PH_SHA_512 ------------------------
# No installed library does Ed25519ph; this is the RFC's reference arithmetic (pure
# Python, not constant time: the sandbox only), checked against the RFC's own test
# vector in tests/test_moto_ed25519.py.

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_I = pow(2, (_P - 1) // 4, _P)
_Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T)


def _recover_x(y: int, sign: int) -> int | None:
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P)
    if x2 % _P == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _I % _P
    if (x * x - x2) % _P:
        return None
    return _P - x if x & 1 != sign else x


_GY = 4 * pow(5, _P - 2, _P) % _P
_GX = _recover_x(_GY, 0) or 0
_G: _Point = (_GX, _GY, 1, _GX * _GY % _P)


def _add(a: _Point, b: _Point) -> _Point:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % _P
    bb = (y1 + x1) * (y2 + x2) % _P
    cc = 2 * t1 * t2 * _D % _P
    dd = 2 * z1 * z2 % _P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(s: int, point: _Point) -> _Point:
    result: _Point = (0, 1, 1, 0)
    while s:
        if s & 1:
            result = _add(result, point)
        point = _add(point, point)
        s >>= 1
    return result


def _encode(point: _Point) -> bytes:
    x, y, z, _ = point
    zi = pow(z, _P - 2, _P)
    x, y = x * zi % _P, y * zi % _P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def _decode(data: bytes) -> _Point | None:
    y = int.from_bytes(data, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= _P:
        return None
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % _P)


def _sha512_int(data: bytes) -> int:
    return int.from_bytes(hashlib.sha512(data).digest(), "little")


def _dom2(context: bytes) -> bytes:
    return b"SigEd25519 no Ed25519 collisions" + bytes([1, len(context)]) + context


def ed25519ph_sign(seed: bytes, digest: bytes, context: bytes = b"") -> bytes:
    """Ed25519ph signature of a SHA-512 ``digest`` (the prehash) with ``seed``."""
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    public = _encode(_mul(a, _G))
    r = _sha512_int(_dom2(context) + h[32:] + digest) % _L
    big_r = _encode(_mul(r, _G))
    k = _sha512_int(_dom2(context) + big_r + public + digest) % _L
    return big_r + int.to_bytes((r + k * a) % _L, 32, "little")


def ed25519ph_verify(public: bytes, digest: bytes, signature: bytes, context: bytes = b"") -> bool:
    """Whether ``signature`` is an Ed25519ph signature of ``digest`` by ``public``."""
    if len(public) != 32 or len(signature) != 64:
        return False
    point_a, point_r = _decode(public), _decode(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if point_a is None or point_r is None or s >= _L:
        return False
    k = _sha512_int(_dom2(context) + signature[:32] + public + digest) % _L
    return _encode(_mul(s, _G)) == _encode(_add(point_r, _mul(k, point_a)))
