"""The sandbox endpoint's Ed25519 stand-in (confio_kms.sandbox.ed25519) follows AWS's
documented contract."""

from __future__ import annotations

import hashlib

import boto3
import pytest
from botocore.exceptions import ClientError
from nacl.signing import VerifyKey

from confio_kms.sandbox.ed25519 import ed25519ph_sign, ed25519ph_verify

SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


@pytest.fixture
def key_id() -> str:
    created = boto3.client("kms").create_key(
        KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY"
    )
    return str(created["KeyMetadata"]["KeyId"])


def sign(key_id: str, message: bytes, algorithm: str, message_type: str) -> bytes:
    response = boto3.client("kms").sign(
        KeyId=key_id, Message=message, MessageType=message_type, SigningAlgorithm=algorithm
    )
    return bytes(response["Signature"])


def test_describe_and_public_key(key_id: str) -> None:
    kms = boto3.client("kms")
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["KeySpec"] == "ECC_NIST_EDWARDS25519"
    assert metadata["KeyUsage"] == "SIGN_VERIFY"
    assert metadata["SigningAlgorithms"] == ["ED25519_SHA_512", "ED25519_PH_SHA_512"]
    public = kms.get_public_key(KeyId=key_id)["PublicKey"]
    assert len(public) == 44 and public.startswith(SPKI_PREFIX)


def test_pure_ed25519_over_raw_messages(key_id: str) -> None:
    public = boto3.client("kms").get_public_key(KeyId=key_id)["PublicKey"][12:]
    for message in (b"x", b"TX" + bytes(range(256)) * 3, b"m" * 4096):
        signature = sign(key_id, message, "ED25519_SHA_512", "RAW")
        assert len(signature) == 64
        VerifyKey(public).verify(message, signature)  # an independent implementation


def test_ed25519ph_over_digests_matches_rfc8032() -> None:
    # RFC 8032, 7.3, test "abc".
    seed = bytes.fromhex("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42")
    assert ed25519ph_sign(seed, hashlib.sha512(b"abc").digest()).hex() == (
        "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41"
        "31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406"
    )


def test_ph_signature_via_the_endpoint(key_id: str) -> None:
    signature = sign(key_id, hashlib.sha512(b"abc").digest(), "ED25519_PH_SHA_512", "DIGEST")
    assert len(signature) == 64


@pytest.mark.parametrize(
    "message, algorithm, message_type, needle",
    [
        (b"abc", "ED25519_SHA_512", "DIGEST", "requires MessageType RAW"),
        (b"a" * 64, "ED25519_PH_SHA_512", "RAW", "requires MessageType DIGEST"),
        (b"a" * 4097, "ED25519_SHA_512", "RAW", "less than or equal to 4096"),
        (b"a" * 32, "ED25519_PH_SHA_512", "DIGEST", "64-byte"),
        (b"abc", "ECDSA_SHA_256", "RAW", "not valid"),
    ],
)
def test_invalid_requests_are_validation_errors(
    key_id: str, message: bytes, algorithm: str, message_type: str, needle: str
) -> None:
    with pytest.raises(ClientError) as raised:
        sign(key_id, message, algorithm, message_type)
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert needle in raised.value.response["Error"]["Message"]


def test_key_state_is_enforced(key_id: str) -> None:
    kms = boto3.client("kms")
    kms.disable_key(KeyId=key_id)
    with pytest.raises(ClientError, match="DisabledException"):
        sign(key_id, b"abc", "ED25519_SHA_512", "RAW")
    kms.enable_key(KeyId=key_id)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    with pytest.raises(ClientError, match="KMSInvalidStateException"):
        sign(key_id, b"abc", "ED25519_SHA_512", "RAW")


def test_other_keys_still_sign_as_moto_does() -> None:
    kms = boto3.client("kms")
    ecc = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    assert sign(ecc, b"abc", "ECDSA_SHA_256", "RAW")


def test_ed25519ph_verify_accepts_the_rfc_vector_and_nothing_else() -> None:
    seed = bytes.fromhex("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42")
    public = bytes.fromhex("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf")
    digest = hashlib.sha512(b"abc").digest()
    signature = ed25519ph_sign(seed, digest)
    assert ed25519ph_verify(public, digest, signature)
    tampered = bytes([signature[0] ^ 1]) + signature[1:]
    assert not ed25519ph_verify(public, digest, tampered)
    assert not ed25519ph_verify(public, hashlib.sha512(b"abd").digest(), signature)
    assert not ed25519ph_verify(
        public, digest, signature[:32] + (2**255 - 1).to_bytes(32, "little")
    )


@pytest.mark.parametrize(
    "message, algorithm, message_type",
    [(b"TX payload", "ED25519_SHA_512", "RAW"), (b"d" * 64, "ED25519_PH_SHA_512", "DIGEST")],
)
def test_verify_follows_the_contract(
    key_id: str, message: bytes, algorithm: str, message_type: str
) -> None:
    kms = boto3.client("kms")
    signature = sign(key_id, message, algorithm, message_type)
    options = {"KeyId": key_id, "Message": message, "SigningAlgorithm": algorithm}
    valid = kms.verify(**options, MessageType=message_type, Signature=signature)
    assert valid["SignatureValid"] is True
    tampered = bytes([signature[0] ^ 1]) + signature[1:]
    with pytest.raises(ClientError) as raised:
        kms.verify(**options, MessageType=message_type, Signature=tampered)
    assert raised.value.response["Error"]["Code"] == "KMSInvalidSignatureException"
    wrong_type = {"RAW": "DIGEST", "DIGEST": "RAW"}[message_type]
    with pytest.raises(ClientError) as raised:
        kms.verify(**options, MessageType=wrong_type, Signature=signature)
    assert raised.value.response["Error"]["Code"] == "ValidationException"


def test_public_key_of_a_disabled_key_is_refused(key_id: str) -> None:
    kms = boto3.client("kms")
    kms.disable_key(KeyId=key_id)
    with pytest.raises(ClientError) as raised:
        kms.get_public_key(KeyId=key_id)
    assert raised.value.response["Error"]["Code"] == "DisabledException"
