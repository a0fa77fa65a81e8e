"""The sandbox's Parameter Store stand-in (confio_kms/sandbox/parameter_store.py): a
standard SecureString holds a real KMS ciphertext under its key with the PARAMETER_ARN
encryption context, as AWS documents it, and key state is enforced as on AWS."""

from __future__ import annotations

import base64
import time
from typing import Any

import boto3
import pytest
from algosdk import transaction
from botocore.exceptions import ClientError

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.common import exceptions
from confio_kms.core import cache
from confio_kms.sandbox import LocalLedger

from .helpers import EnvelopeKey, RequestCounter

ACCOUNT = "123456789012"  # moto's
REGION = "eu-central-2"  # the sandbox's
NAME = "/confio/algorand/stand-in/private-key"
ARN = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/confio/algorand/stand-in/private-key"
VALUE = "not a real key, a sentinel"


def _put(key_id: str | None = None, name: str = NAME, value: str = VALUE, **extra: Any) -> None:
    params = {"KeyId": key_id} if key_id else {}
    boto3.client("ssm").put_parameter(
        Name=name, Value=value, Type="SecureString", **params, **extra
    )


def _ciphertext(name: str = NAME) -> bytes:
    parameter = boto3.client("ssm").get_parameter(Name=name, WithDecryption=False)["Parameter"]
    return base64.b64decode(parameter["Value"])


def _decrypt(blob: bytes, context: dict[str, str] | None) -> bytes:
    extra = {"EncryptionContext": context} if context is not None else {}
    return bytes(boto3.client("kms").decrypt(CiphertextBlob=blob, **extra)["Plaintext"])


def _code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


def test_the_ciphertext_decrypts_with_kms_under_the_parameter_arn_context_only() -> None:
    kms = boto3.client("kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    _put(key_id)

    blob = _ciphertext()

    assert VALUE.encode() not in blob and f"kms:{key_id}".encode() not in blob
    assert _decrypt(blob, {"PARAMETER_ARN": ARN}) == VALUE.encode()
    decrypted = kms.decrypt(CiphertextBlob=blob, EncryptionContext={"PARAMETER_ARN": ARN})
    assert decrypted["KeyId"].endswith(f":key/{key_id}")
    for wrong in (None, {}, {"PARAMETER_ARN": ARN + "x"}, {"PARAMETER_ARN": ARN, "a": "b"},
                  {"parameter_arn": ARN}):  # fmt: skip
        with pytest.raises(ClientError) as refused:
            _decrypt(blob, wrong)
        assert _code(refused) == "InvalidCiphertextException"
    got = boto3.client("ssm").get_parameter(Name=NAME, WithDecryption=True)["Parameter"]
    assert got["Value"] == VALUE


def test_without_a_key_id_the_default_ssm_key_encrypts() -> None:
    _put()

    decrypted = boto3.client("kms").decrypt(
        CiphertextBlob=_ciphertext(), EncryptionContext={"PARAMETER_ARN": ARN}
    )

    default = boto3.client("kms").describe_key(KeyId="alias/aws/ssm")["KeyMetadata"]
    assert decrypted["Plaintext"] == VALUE.encode() and decrypted["KeyId"] == default["Arn"]


@pytest.mark.parametrize(
    ("change", "kms_code"),
    [("disable", "DisabledException"), ("schedule deletion", "KMSInvalidStateException")],
)
def test_a_key_that_is_not_enabled_refuses_as_on_aws(change: str, kms_code: str) -> None:
    kms, ssm = boto3.client("kms"), boto3.client("ssm")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    _put(key_id)
    blob = _ciphertext()
    if change == "disable":
        kms.disable_key(KeyId=key_id)
    else:
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)

    reads = (
        lambda: ssm.get_parameter(Name=NAME, WithDecryption=True),
        lambda: ssm.get_parameters(Names=[NAME], WithDecryption=True),
        lambda: ssm.get_parameters_by_path(
            Path="/confio/algorand", Recursive=True, WithDecryption=True
        ),
        lambda: ssm.get_parameter_history(Name=NAME, WithDecryption=True),
        lambda: _put(key_id, name="/confio/algorand/other/private-key"),
    )
    for read in reads:
        with pytest.raises(ClientError) as refused:
            read()
        # SSM's answer, with KMS's own error in its message (as AWS words it).
        assert _code(refused) == "InvalidKeyId"
        assert f"Error Code: {kms_code}" in refused.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as refused:
        _decrypt(blob, {"PARAMETER_ARN": ARN})
    assert _code(refused) == kms_code
    # Without decryption the ciphertext is still served: no KMS request is made.
    assert _ciphertext() == blob


def test_a_missing_or_asymmetric_key_is_refused_and_nothing_is_stored() -> None:
    signing = boto3.client("kms").create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    for key_id in ("alias/no-such-key", signing["KeyMetadata"]["KeyId"]):
        with pytest.raises(ClientError) as refused:
            _put(key_id)
        assert _code(refused) == "InvalidKeyId"
    with pytest.raises(ClientError) as missing:
        boto3.client("ssm").get_parameter(Name=NAME)
    assert _code(missing) == "ParameterNotFound"


def test_versions_labels_and_history_keep_each_versions_ciphertext() -> None:
    kms, ssm = boto3.client("kms"), boto3.client("ssm")
    first, second = (kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(2))
    _put(first, value="version one")
    ssm.label_parameter_version(Name=NAME, ParameterVersion=1, Labels=["old"])
    _put(second, value="version two", Overwrite=True)

    history = ssm.get_parameter_history(Name=NAME)["Parameters"]
    blobs = [base64.b64decode(p["Value"]) for p in history]
    assert [_decrypt(b, {"PARAMETER_ARN": ARN}) for b in blobs] == [b"version one", b"version two"]
    assert history[0]["Labels"] == ["old"]
    labelled = ssm.get_parameter(Name=f"{NAME}:old", WithDecryption=True)["Parameter"]
    assert labelled["Value"] == "version one" and labelled["Version"] == 1
    # Each version is under the key it was written with.
    kms.disable_key(KeyId=first)
    assert ssm.get_parameter(Name=NAME, WithDecryption=True)["Parameter"]["Value"] == "version two"
    with pytest.raises(ClientError) as refused:
        ssm.get_parameter(Name=f"{NAME}:1", WithDecryption=True)
    assert _code(refused) == "InvalidKeyId"


def test_an_advanced_tier_parameter_keeps_motos_behaviour() -> None:
    """Not emulated (the Encryption SDK's format): documented in the stand-in."""
    key_id = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
    _put(key_id, Tier="Advanced")
    parameter = boto3.client("ssm").get_parameter(Name=NAME)["Parameter"]
    assert parameter["Value"] == f"kms:{key_id}:{VALUE}"


def test_an_envelope_key_pending_deletion_stops_signing_until_cancelled(
    manager: AlgorandKMSManager,
    envelope_key: EnvelopeKey,
    ledger: LocalLedger,
    counter: RequestCounter,
    session: boto3.Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 25: in the sandbox an envelope key pending deletion still signed."""
    _, address = envelope_key("doomed")
    ledger.fund(address, 1_000_000)

    def payment() -> transaction.PaymentTxn:
        return transaction.PaymentTxn(address, ledger.suggested_params(), address, 0)

    manager.delete_key("doomed", pending_window_days=7)
    signer = KMSSigner("doomed", session=session)
    assert signer.address == address
    counter.reset()
    with pytest.raises(exceptions.KeyStateError) as refused:
        signer.sign_transaction(payment())
    assert "cancel" in str(refused.value.fix)
    assert "is pending deletion" in str(refused.value.cause)
    # The ciphertext read, and one Decrypt, refused by the key's state: not retried
    # (the cached alias is looked up once: it had not moved).
    assert counter.by_operation() == {
        "ssm.GetParameter": 1,
        "kms.Decrypt": 1,
        "kms.DescribeKey": 1,
        "kms.ListResourceTags": 1,
    }

    manager.cancel_key_deletion("doomed")
    # The failure is remembered for cache.FAILURE_SECONDS (1 s): past it, signing works.
    later = time.monotonic() + cache.FAILURE_SECONDS
    monkeypatch.setattr(cache, "_clock", lambda: later)
    ledger.evaluate([KMSSigner("doomed", session=session).sign_transaction(payment())])
