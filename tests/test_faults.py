"""The fault matrix: what signing does on AWS's worst days, for both key kinds,
single and group signing. Faults are injected into botocore's send path (or made
real on the local endpoint where it enforces them); retries are botocore's own
standard mode with its real backoff. A summary table prints at the end of the run.

Every row checks: the outcome (a correct, locally verified result, or the typed
error), the exact number of HTTP attempts, and that nothing partial is returned.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from algosdk import encoding, transaction
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError, ReadTimeoutError
from django.test import override_settings
from nacl.signing import VerifyKey

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.common import exceptions
from confio_kms.core.signing import signing_bytes
from confio_kms.sandbox import LocalLedger

from .helpers import error_body, json_response

ALIAS = "faulty"
PATH = f"/confio/algorand/{ALIAS}/private-key"
ATTEMPTS = 4  # botocore standard mode, total_max_attempts=4
SUMMARY: list[tuple[str, str, int, str, int]] = []


@dataclass(frozen=True)
class Fault:
    name: str
    inject: str  # "error", "raise", "key state" or "real"
    code: str = ""
    status: int = 400
    exception: type[Exception] | None = None
    retryable: bool = False
    expected: type[exceptions.ConfioKMSError] | None = None
    modes: tuple[str, ...] = ("envelope", "native")


def key_state(reason: str) -> Fault:
    # SSM answers InvalidKeyId when the KMS key of a SecureString is unusable; moto's
    # SSM does not enforce key state, so envelope keys get it injected. Native keys
    # get the real state change on the local endpoint's Ed25519 stand-in.
    return Fault(reason, "key state", "InvalidKeyId", 400, expected=exceptions.KeyStateError)


FAULTS = [
    Fault("throttling", "error", "ThrottlingException", 400, retryable=True,
          expected=exceptions.AWSError),
    Fault("http 500", "error", "InternalFailure", 500, retryable=True,
          expected=exceptions.AWSError),
    Fault("http 503", "error", "ServiceUnavailable", 503, retryable=True,
          expected=exceptions.AWSError),
    Fault("connection reset", "raise", exception=ConnectionClosedError, retryable=True,
          expected=exceptions.AWSConnectionError),
    Fault("read timeout", "raise", exception=ReadTimeoutError, retryable=True,
          expected=exceptions.AWSConnectionError),
    Fault("access denied", "error", "AccessDeniedException", 400,
          expected=exceptions.AccessDeniedError),
    key_state("key disabled"),
    key_state("key pending deletion"),
    Fault("parameter not found", "real", expected=exceptions.ParameterNotFoundError,
          modes=("envelope",)),
    Fault("parameter deleted after address lookup", "real",
          expected=exceptions.ParameterNotFoundError, modes=("envelope",)),
]  # fmt: skip

CASES = [
    pytest.param(fault, mode, size, transient, id=f"{fault.name}-{mode}-{size}-{tag}")
    for fault in FAULTS
    for mode in fault.modes
    for size in (1, 4)
    for transient, tag in ((False, "persistent"), (True, "transient"))
    if fault.retryable or not transient
]


def injector(fault: Fault, failures: int | None) -> Callable[..., AWSResponse | None]:
    """A before-send handler: fails the first ``failures`` attempts (all when None)."""
    counter = itertools.count(1)

    def handler(request: Any, **kwargs: Any) -> AWSResponse | None:
        if failures is not None and next(counter) > failures:
            return None
        if fault.exception is not None:
            raise fault.exception(endpoint_url=request.url, error="injected")
        body = error_body(fault.code, f"injected {fault.name}")
        return json_response(request.url, fault.status, body, {"x-amzn-RequestId": "injected"})

    return handler


def write_summary(write: Callable[[str], None]) -> None:
    """Called from conftest's pytest_terminal_summary when this module ran."""
    if not SUMMARY:
        return
    write("")
    write(f"fault matrix: {len(SUMMARY)} cases, outcome and HTTP attempts of each")
    write(f"{'fault':40} {'mode':9} {'txns':>4} {'outcome':28} {'attempts':>8}")
    for name, mode, size, outcome, attempts in SUMMARY:
        write(f"{name:40} {mode:9} {size:>4} {outcome:28} {attempts:>8}")


@pytest.fixture(autouse=True)
def botocore_retries_only() -> Iterator[None]:
    # The matrix counts botocore's attempts exactly; the library's own waiting out of
    # throttling (CONFIO_KMS_THROTTLE_WAIT) is tested in test_throttling.py, pacing's
    # (which spaces and may refuse retries of a throttled quota) in test_pacing.py.
    with override_settings(CONFIO_KMS_THROTTLE_WAIT=0, CONFIO_KMS_PACING=False):
        yield


@pytest.mark.parametrize("fault, mode, size, transient", CASES)
def test_fault(
    fault: Fault, mode: str, size: int, transient: bool, manager: AlgorandKMSManager
) -> None:
    created = manager.create_algorand_key(ALIAS, native=mode == "native")
    operation = ("kms", "Sign") if mode == "native" else ("ssm", "GetParameter")
    requests_per_call = size if mode == "native" else 1
    session = boto3.Session()
    attempts: list[str] = []
    session.events.register(
        f"before-send.{operation[0]}.{operation[1]}", lambda **kw: attempts.append("x")
    )
    sp = LocalLedger.suggested_params()
    txns = [transaction.PaymentTxn(created.address, sp, created.address, i) for i in range(size)]

    injected = fault.inject in ("error", "raise") or (
        fault.inject == "key state" and mode == "envelope"
    )
    if injected:
        failures = requests_per_call if transient else None
        session.events.register(
            f"before-send.{operation[0]}.{operation[1]}", injector(fault, failures)
        )
    if fault.name == "parameter not found":
        boto3.client("ssm").delete_parameter(Name=PATH)
    signer = KMSSigner(ALIAS, session=session)
    assert signer.address == created.address  # the address lookup happens first
    if fault.name == "parameter deleted after address lookup":
        boto3.client("ssm").delete_parameter(Name=PATH)
    elif fault.inject == "key state" and mode == "native":
        kms = boto3.client("kms")
        if fault.name == "key disabled":
            kms.disable_key(KeyId=created.key_id)
        else:
            kms.schedule_key_deletion(KeyId=created.key_id, PendingWindowInDays=7)

    try:
        signed = signer.sign_transactions(txns)
    except exceptions.ConfioKMSError as error:
        outcome = type(error).__name__
        assert not transient, f"transient {fault.name} was not retried: {error}"
        assert isinstance(error, fault.expected)  # type: ignore[arg-type]
        assert "Fix:" in str(error) or isinstance(error, exceptions.AWSError)
        per_request = ATTEMPTS if fault.retryable else 1
        assert len(attempts) == per_request * requests_per_call
    else:
        outcome = "signed after retry" if transient else "signed"
        assert transient, f"{fault.name} did not fail"
        assert len(attempts) == 2 * requests_per_call
        assert [s.transaction.amt for s in signed] == list(range(size))
        public = VerifyKey(encoding.decode_address(created.address))
        for stxn in signed:
            public.verify(signing_bytes(stxn.transaction), base64.b64decode(stxn.signature))
    SUMMARY.append((fault.name, mode, size, outcome, len(attempts)))
