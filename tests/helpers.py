"""Shared test tools: request counting, fault injection through botocore events, KMS
tag reading, suggested parameters and reference signatures."""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import boto3
from algosdk import account, encoding, transaction
from algosdk.atomic_transaction_composer import (
    AccountTransactionSigner,
    sign_transaction_with_signer,
)
from botocore.awsrequest import AWSResponse

from confio_kms import CreatedKey
from confio_kms.sandbox import LocalLedger

# What the conftest fixtures envelope_key and native_key return: key makers.
EnvelopeKey = Callable[..., tuple[str, str]]  # -> (private_key, address)
NativeKey = Callable[..., CreatedKey]


class RequestCounter:
    """Counts HTTP requests (retries included) per ``service.Operation``."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def attach(self, session: boto3.Session) -> None:
        session.events.register("before-send", self._on_send)

    def _on_send(self, event_name: str, **kwargs: Any) -> None:
        _, service, operation = event_name.split(".")
        self.calls.append(f"{service}.{operation}")

    @property
    def total(self) -> int:
        return len(self.calls)

    def by_operation(self) -> Counter[str]:
        return Counter(self.calls)

    def reset(self) -> None:
        self.calls.clear()


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._body


def error_body(code: str, message: str) -> dict[str, str]:
    """An AWS JSON-protocol error body, as KMS and SSM send it."""
    return {"__type": code, "message": message}


def json_response(
    url: str, status: int, body: dict[str, Any], headers: dict[str, str]
) -> AWSResponse:
    """A response for a before-send handler to return in place of the endpoint's."""
    return AWSResponse(url, status, headers, _Body(json.dumps(body).encode()))


def inject_response(
    session: boto3.Session,
    service: str,
    operation: str,
    body: dict[str, Any],
    status: int = 200,
    only_call: int | None = None,
) -> None:
    """Answer ``service.operation`` requests with ``body`` instead of the endpoint.

    ``only_call`` (1-based) limits it to that one request; the others go through.
    Applies to clients built from ``session`` after this call.
    """
    calls = itertools.count(1)  # next() on a count is atomic: requests may be concurrent
    headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "injected-1"}

    def respond(**kwargs: Any) -> AWSResponse | None:
        if only_call is not None and next(calls) != only_call:
            return None
        return json_response("https://injected.fault/", status, body, headers)

    session.events.register(f"before-send.{service}.{operation}", respond)


def inject_error(
    session: boto3.Session,
    service: str,
    operation: str,
    code: str,
    message: str = "injected fault",
    status: int = 400,
    only_call: int | None = None,
) -> None:
    """Make ``service.operation`` requests fail with an AWS error (see inject_response)."""
    inject_response(session, service, operation, error_body(code, message), status, only_call)


def sdk_signed(txn: transaction.Transaction, private_key: str) -> Any:
    """py-algorand-sdk's own signature of ``txn``, the reference for byte comparison."""
    return sign_transaction_with_signer(txn, AccountTransactionSigner(private_key))


def same_bytes(a: Any, b: Any) -> bool:
    return bool(encoding.msgpack_encode(a) == encoding.msgpack_encode(b))


def new_account() -> tuple[str, str]:
    private_key, address = account.generate_account()
    return private_key, address


def kms_tags(key_id: str) -> dict[str, str]:
    """The tags of a KMS key, read from the endpoint (not through the library)."""
    listed = boto3.client("kms").list_resource_tags(KeyId=key_id)["Tags"]
    return {t["TagKey"]: t["TagValue"] for t in listed}


def key_count() -> int:
    """How many KMS keys the endpoint holds, in any state."""
    return len(boto3.client("kms").list_keys()["Keys"])


def zero_fee_params(ledger: LocalLedger) -> transaction.SuggestedParams:
    """The ledger's parameters with a flat fee of 0: a sponsored user's transaction."""
    sp = ledger.suggested_params()
    sp.fee, sp.flat_fee = 0, True
    return sp


def flip_a_signature_bit(signed: transaction.SignedTransaction, byte: int = 7) -> None:
    """Tamper with ``signed``'s signature in place (one bit of byte ``byte``)."""
    raw = bytearray(base64.b64decode(signed.signature))
    raw[byte] ^= 0x01
    signed.signature = base64.b64encode(bytes(raw)).decode()


class LineWorker:
    """A Python process of its own running ``script``, driven by lines on its stdin and
    answering one JSON line per command on its stdout."""

    WAIT = 120  # seconds; only reached if a worker hangs

    def __init__(self, script: str, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"worker exited with {self.process.wait(self.WAIT)}"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(self.WAIT)
