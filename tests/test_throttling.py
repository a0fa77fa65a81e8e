"""Throttling is absorbed up to CONFIO_KMS_THROTTLE_WAIT, then named with its quota."""

from __future__ import annotations

import boto3
import pytest
from algosdk import transaction
from django.test import override_settings

from confio_kms import KMSSigner
from confio_kms.common import exceptions
from confio_kms.sandbox import LocalLedger

from .helpers import RequestCounter, inject_error

THROTTLES = 4


def signer_after_throttles(session: boto3.Session, **settings: object) -> KMSSigner:
    for call in range(1, THROTTLES + 1):
        inject_error(session, "ssm", "GetParameter", "ThrottlingException", "Rate exceeded",
                     only_call=call)  # fmt: skip
    # One attempt per botocore call: what is retried here is the library's own doing.
    with override_settings(CONFIO_KMS_MAX_ATTEMPTS=1, **settings):
        return KMSSigner("k", session=session)


def payment(address: str) -> transaction.Transaction:
    return transaction.PaymentTxn(address, LocalLedger.suggested_params(), address, 0)


def test_a_burst_over_the_quota_waits_instead_of_failing(
    envelope_key: object, session: boto3.Session, counter: RequestCounter
) -> None:
    _, address = envelope_key("k", "localnet")  # type: ignore[operator]
    signer = signer_after_throttles(session)
    counter.reset()
    signer.sign_transaction(payment(address))
    assert counter.by_operation()["ssm.GetParameter"] == THROTTLES + 1


def test_past_the_wait_the_error_names_the_quota(
    envelope_key: object, session: boto3.Session, counter: RequestCounter
) -> None:
    _, address = envelope_key("k", "localnet")  # type: ignore[operator]
    signer = signer_after_throttles(session, CONFIO_KMS_THROTTLE_WAIT=0)
    counter.reset()
    with pytest.raises(exceptions.AWSError) as raised:
        signer.sign_transaction(payment(address))
    assert "Parameter Store's throughput" in str(raised.value)
    assert "CONFIO_KMS_THROTTLE_WAIT" in str(raised.value)
    assert counter.by_operation()["ssm.GetParameter"] == 1


def test_botocore_retries_of_a_throttle_wait_the_short_backoff(
    envelope_key: object, session: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # botocore's standard backoff waits up to 1 s before its first retry, 2 s before
    # the second: a throttled decrypt would hold every coalesced call that long.
    import botocore.endpoint

    _, address = envelope_key("k", "localnet")  # type: ignore[operator]
    for call in (1, 2, 3):
        inject_error(session, "ssm", "GetParameter", "ThrottlingException", only_call=call)
    slept: list[float] = []
    monkeypatch.setattr(botocore.endpoint.time, "sleep", slept.append)
    KMSSigner("k", session=session).sign_transaction(payment(address))
    assert len(slept) == 3  # botocore's three retries, each after a short wait
    assert all(wait <= bound for wait, bound in zip(slept, (0.05, 0.1, 0.2), strict=True))


@pytest.mark.parametrize(
    ("kind", "operation", "named", "not_named"),
    [
        ("envelope", "Decrypt", "Cryptographic operations (symmetric)", "Parameter Store"),
        ("native", "Sign", "Cryptographic operations (ECC)", "Parameter Store"),
    ],
)
def test_the_error_names_the_quota_its_operation_hit(
    kind: str,
    operation: str,
    named: str,
    not_named: str,
    envelope_key: object,
    native_key: object,
    session: boto3.Session,
    counter: RequestCounter,
) -> None:
    # The direct path decrypts with kms:Decrypt: KMS's quota binds, not Parameter Store's.
    make = envelope_key if kind == "envelope" else native_key
    created = make("k", "localnet")  # type: ignore[operator]
    address = created[1]
    inject_error(session, "kms", operation, "ThrottlingException", "Rate exceeded")
    with override_settings(CONFIO_KMS_MAX_ATTEMPTS=1, CONFIO_KMS_THROTTLE_WAIT=0):
        signer = KMSSigner("k", session=session)
    counter.reset()
    with pytest.raises(exceptions.AWSError) as raised:
        signer.sign_transaction(payment(address))
    text = str(raised.value)
    assert f"AWS throttled kms:{operation}" in text and named in text
    assert not_named not in text and "Service Quotas console" in text
    assert counter.by_operation()[f"kms.{operation}"] == 1
