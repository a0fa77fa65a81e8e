"""A stand-in for AWS KMS's Ed25519 keys on moto's server, until moto ships them.

moto 5.2.5 has no ``ECC_NIST_EDWARDS25519`` key spec. This patches moto, in the
process that runs its server, to follow AWS's documented contract:

- CreateKey with KeySpec ECC_NIST_EDWARDS25519 (KeyUsage SIGN_VERIFY) makes a real
  Ed25519 key; DescribeKey lists ED25519_SHA_512 and ED25519_PH_SHA_512.
- GetPublicKey returns the 44-byte SubjectPublicKeyInfo DER (OID 1.3.101.112).
- Sign with ED25519_SHA_512 requires MessageType RAW (pure Ed25519 of the message);
  ED25519_PH_SHA_512 requires DIGEST (a 64-byte SHA-512 digest, signed as
  Ed25519ph, RFC 8032 5.1). Other pairings, messages over 4096 bytes and other
  algorithms are ValidationException. Disabled keys are DisabledException, keys
  pending deletion KMSInvalidStateException. The signature is the raw 64 bytes.

Call :func:`install` before the server handles its first request.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from moto.core.exceptions import JsonRESTError
from moto.kms import models, responses
from moto.kms.exceptions import ValidationException
from moto.kms.utils import AbstractPrivateKey, KeySpec

SPEC = "ECC_NIST_EDWARDS25519"
PURE, PREHASHED = "ED25519_SHA_512", "ED25519_PH_SHA_512"
REQUIRED_MESSAGE_TYPE = {PURE: "RAW", PREHASHED: "DIGEST"}
MAX_MESSAGE = 4096
_installed = False


class Ed25519Key(AbstractPrivateKey):
    def __init__(self) -> None:
        self.key = ed25519.Ed25519PrivateKey.generate()

    def seed(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def sign(self, message: bytes, signing_algorithm: str) -> bytes:
        if signing_algorithm == PURE:
            return self.key.sign(message)
        return ed25519ph_sign(self.seed(), message)

    def verify(self, message: bytes, signature: bytes, signing_algorithm: str) -> bool:
        try:
            self.key.public_key().verify(signature, message)
        except Exception:
            return False
        return True

    def public_key(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class KeyStateFault(JsonRESTError):
    code = 400


def _fail(message: str) -> None:
    raise ValidationException(message)


def _raw(value: Any) -> bytes:
    # moto's parameter parsing already base64-decodes blob members.
    return value if isinstance(value, bytes) else str(value or "").encode()


def _sign(self: responses.KmsResponse) -> str:
    key_id = self._get_param("KeyId")
    self._validate_key_id(key_id)
    key = self.kms_backend.describe_key(key_id)
    if key.key_spec != SPEC:
        return _original_sign(self)
    if key.key_state == "Disabled":
        raise KeyStateFault("DisabledException", f"{key.arn} is disabled.")
    if key.key_state != "Enabled":
        raise KeyStateFault("KMSInvalidStateException", f"{key.arn} is {key.key_state}.")
    algorithm = self._get_param("SigningAlgorithm")
    message_type = self._get_param("MessageType") or "RAW"
    message = _raw(self._get_param("Message"))
    if algorithm not in REQUIRED_MESSAGE_TYPE:
        _fail(f"Value '{algorithm}' at 'SigningAlgorithm' is not valid for {SPEC} keys.")
    if message_type != REQUIRED_MESSAGE_TYPE[algorithm]:
        _fail(f"{algorithm} requires MessageType {REQUIRED_MESSAGE_TYPE[algorithm]}.")
    if not 1 <= len(message) <= MAX_MESSAGE:
        _fail(
            "1 validation error detected: Value at 'message' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_MESSAGE}"
        )
    if algorithm == PREHASHED and len(message) != 64:
        _fail("ED25519_PH_SHA_512 with DIGEST takes a 64-byte SHA-512 digest.")
    signature = key.private_key.sign(message, algorithm)
    return json.dumps(
        {
            "KeyId": key.arn,
            "Signature": base64.b64encode(signature).decode(),
            "SigningAlgorithm": algorithm,
        }
    )


def install() -> None:
    """Patch moto (once) so its server implements Ed25519 KMS keys."""
    global _installed, _original_sign
    if _installed:
        return
    _installed = True
    specs = KeySpec.key_specs
    KeySpec.key_specs = classmethod(lambda cls: sorted([*specs(), SPEC]))  # type: ignore[assignment, method-assign]
    generate = models.generate_private_key
    models.generate_private_key = lambda spec: Ed25519Key() if spec == SPEC else generate(spec)
    algorithms = models.Key.signing_algorithms

    def signing_algorithms(key: Any) -> list[str]:
        if key.key_spec == SPEC:
            return [PURE, PREHASHED]
        return algorithms.fget(key)  # type: ignore[no-any-return, union-attr]

    models.Key.signing_algorithms = property(signing_algorithms)  # type: ignore[method-assign, assignment]
    _original_sign = responses.KmsResponse.sign
    responses.KmsResponse.sign = _sign  # type: ignore[method-assign]


_original_sign: Any = None


# --- Ed25519ph (RFC 8032, section 5.1), for ED25519_PH_SHA_512 ------------------------
# No installed library signs Ed25519ph; this is the RFC's reference arithmetic,
# checked against the RFC's own test vector in test_moto_ed25519.py.

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_I = pow(2, (_P - 1) // 4, _P)


def _recover_x(y: int, sign: int) -> int:
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P)
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _I % _P
    return _P - x if x & 1 != sign else x


_G = (
    _recover_x(4 * pow(5, _P - 2, _P) % _P, 0),
    4 * pow(5, _P - 2, _P) % _P,
    1,
    _recover_x(4 * pow(5, _P - 2, _P) % _P, 0) * 4 * pow(5, _P - 2, _P) % _P,
)


def _add(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % _P
    bb = (y1 + x1) * (y2 + x2) % _P
    cc = 2 * t1 * t2 * _D % _P
    dd = 2 * z1 * z2 % _P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(s: int, point: tuple[int, ...]) -> tuple[int, ...]:
    result: tuple[int, ...] = (0, 1, 1, 0)
    while s:
        if s & 1:
            result = _add(result, point)
        point = _add(point, point)
        s >>= 1
    return result


def _encode(point: tuple[int, ...]) -> bytes:
    x, y, z, _ = point
    zi = pow(z, _P - 2, _P)
    x, y = x * zi % _P, y * zi % _P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def _sha512_int(data: bytes) -> int:
    return int.from_bytes(hashlib.sha512(data).digest(), "little")


def ed25519ph_sign(seed: bytes, digest: bytes, context: bytes = b"") -> bytes:
    """Ed25519ph signature of a SHA-512 ``digest`` (the prehash) with ``seed``."""
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    public = _encode(_mul(a, _G))
    dom2 = b"SigEd25519 no Ed25519 collisions" + bytes([1, len(context)]) + context
    r = _sha512_int(dom2 + h[32:] + digest) % _L
    big_r = _encode(_mul(r, _G))
    k = _sha512_int(dom2 + big_r + public + digest) % _L
    return big_r + int.to_bytes((r + k * a) % _L, 32, "little")
