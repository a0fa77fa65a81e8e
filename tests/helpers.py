"""Shared test tools: request counting and fault injection through botocore events."""

from __future__ import annotations

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


def inject_error(
    session: boto3.Session,
    service: str,
    operation: str,
    code: str,
    message: str = "injected fault",
    status: int = 400,
) -> None:
    """Make ``service.operation`` requests fail with an AWS error.

    Applies to clients built from ``session`` after this call.
    """
    body = json.dumps({"__type": code, "message": message}).encode()

    def respond(**kwargs: Any) -> AWSResponse:
        return AWSResponse(
            "https://injected.fault/",
            status,
            {"Content-Type": "application/x-amz-json-1.1"},
            _Body(body),
        )

    session.events.register(f"before-send.{service}.{operation}", respond)


def sdk_signed(txn: transaction.Transaction, private_key: str) -> Any:
    """py-algorand-sdk's own signature of ``txn``, the reference for byte comparison."""
    return sign_transaction_with_signer(txn, AccountTransactionSigner(private_key))


def same_bytes(a: Any, b: Any) -> bool:
    return bool(encoding.msgpack_encode(a) == encoding.msgpack_encode(b))


def new_account() -> tuple[str, str]:
    private_key, address = account.generate_account()
    return private_key, address
