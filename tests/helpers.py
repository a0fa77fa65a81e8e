"""Shared test tools: request counting and fault injection through botocore events."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
from algosdk import account, encoding, transaction
from algosdk.atomic_transaction_composer import (
    AccountTransactionSigner,
    sign_transaction_with_signer,
)
from botocore.awsrequest import AWSResponse


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
    raw = json.dumps(body).encode()
    calls = itertools.count(1)  # next() on a count is atomic: requests may be concurrent

    def respond(**kwargs: Any) -> AWSResponse | None:
        if only_call is not None and next(calls) != only_call:
            return None
        return AWSResponse(
            "https://injected.fault/",
            status,
            {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "injected-1"},
            _Body(raw),
        )

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
    body = {"__type": code, "message": message}
    inject_response(session, service, operation, body, status, only_call)


def sdk_signed(txn: transaction.Transaction, private_key: str) -> Any:
    """py-algorand-sdk's own signature of ``txn``, the reference for byte comparison."""
    return sign_transaction_with_signer(txn, AccountTransactionSigner(private_key))


def same_bytes(a: Any, b: Any) -> bool:
    return bool(encoding.msgpack_encode(a) == encoding.msgpack_encode(b))


def new_account() -> tuple[str, str]:
    private_key, address = account.generate_account()
    return private_key, address
