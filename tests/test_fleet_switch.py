"""Every process switches keys at a rotation, a failing cached key recovers by one
lookup, and repeated identical failures cost one AWS request per second, not per call.

The fleet tests run real worker processes (``python -c`` on the test settings) that
share a file-based Django cache (and a Redis one when ``redis-server`` is installed)
with this process, which rotates the key for real on Algorand's ledger evaluator.
Steps are ordered through the workers' pipes, never by sleeping; each worker counts
its own AWS requests per call (botocore's before-send event).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from algosdk import encoding, mnemonic, transaction
from algosdk.atomic_transaction_composer import (
    AccountTransactionSigner,
    sign_transaction_with_signer,
)
from django.core.cache import caches
from django.test import override_settings

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.common import exceptions
from confio_kms.core import cache
from confio_kms.sandbox import LedgerChain, LocalLedger

from .helpers import LineWorker, RequestCounter, inject_error, kms_tags, new_account

ALIAS = "fleet"
WORKERS = 3
ROOT = Path(__file__).resolve().parents[1]
OLD_PARAMETER = f"/confio/algorand/{ALIAS}/private-key"  # where the first key is stored

# A worker: signs a 0-algo self-payment of ALIAS on each "sign" line, answering one
# JSON line (the signed transaction or the error, and the call's AWS requests).
_WORKER = r"""
import base64, json, os, sys
import django
django.setup()
from django.test import override_settings
if os.environ.get("FLEET_CACHES"):
    override_settings(CACHES=json.loads(os.environ["FLEET_CACHES"])).enable()
import boto3
from algosdk import encoding, transaction
from confio_kms import KMSSigner
from confio_kms.sandbox import LocalLedger
calls = []
session = boto3.Session()
session.events.register("before-send", lambda event_name, **kw: calls.append(event_name))
signer = KMSSigner(sys.argv[1], session=session)
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    command, _, argument = line.strip().partition(" ")
    calls.clear()
    sp = LocalLedger.suggested_params()
    txn = transaction.PaymentTxn(signer.address, sp, signer.address, 0, note=argument.encode())
    answer = {}
    try:
        answer["signed"] = encoding.msgpack_encode(signer.sign_transaction(txn))
    except Exception as error:
        answer["error"] = type(error).__name__
    answer["requests"] = [name.split(".", 1)[1] for name in calls]
    print(json.dumps(answer), flush=True)
"""


class Worker(LineWorker):
    """A signing process of its own, driven line by line."""

    def __init__(self, caches_setting: dict[str, Any] | None) -> None:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
        if caches_setting is not None:
            env["FLEET_CACHES"] = json.dumps(caches_setting)
        super().__init__(_WORKER, [ALIAS], env)
        assert self.read() == {"ready": True}

    def send(self, line: str) -> dict[str, Any]:
        self.ask(line)
        return self.read()

    def sign(self, note: str) -> tuple[transaction.SignedTransaction | None, dict[str, Any]]:
        answer = self.send(f"sign {note}")
        signed = answer.get("signed")
        return (encoding.msgpack_decode(signed) if signed else None), answer


@pytest.fixture(params=["file", "redis"])
def shared_caches(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The CACHES setting this process and the workers share, in effect here."""
    if request.param == "file":
        backend = {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        }
    else:
        backend = {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": request.getfixturevalue("redis_url"),
        }
    setting = {"default": backend}
    with override_settings(CACHES=setting):
        caches["default"].clear()
        yield setting
        caches["default"].clear()


def workers(count: int, caches_setting: dict[str, Any] | None) -> list[Worker]:
    return [Worker(caches_setting) for _ in range(count)]


def test_every_process_signs_with_the_new_key_on_its_next_call_after_a_rotation(
    manager: AlgorandKMSManager, ledger: LocalLedger, shared_caches: dict[str, Any]
) -> None:
    _, address, backup = manager.create_algorand_key(ALIAS)
    assert address is not None and backup is not None
    old_private_key = mnemonic.to_private_key(backup)
    ledger.fund(address, 10_000_000)
    fleet = workers(WORKERS, shared_caches)
    try:
        for i, worker in enumerate(fleet):  # each has its entry cached in its process
            signed, _ = worker.sign(f"before {i}")
            assert signed is not None
            ledger.evaluate([signed])

        result = manager.rotate_key(ALIAS, LedgerChain(ledger))  # reported done here
        assert result.state == "completed"

        for i, worker in enumerate(fleet):
            signed, answer = worker.sign(f"after {i}")
            assert signed is not None, answer
            assert signed.authorizing_address == result.auth_address
            ledger.evaluate([signed])  # the rekeyed account accepts the new key
            # The first worker looks the alias up in AWS and reads the new parameter's
            # ciphertext, and shares both; the others read the shared entries: one
            # request each, the signing one.
            first = ["kms.DescribeKey", "kms.ListResourceTags", "ssm.GetParameter"]
            assert answer["requests"] == [*(first if i == 0 else []), "kms.Decrypt"]
    finally:
        for worker in fleet:
            worker.close()
    stale = transaction.PaymentTxn(address, ledger.suggested_params(), address, 0, note=b"old")
    with pytest.raises(Exception, match="should have been authorized by"):
        ledger.evaluate(
            [sign_transaction_with_signer(stale, AccountTransactionSigner(old_private_key))]
        )


@pytest.mark.parametrize("kind", ["envelope", "native"])
def test_a_process_that_missed_the_rotation_switches_when_the_old_key_fails(
    kind: str, manager: AlgorandKMSManager, ledger: LocalLedger
) -> None:
    """Without a shared cache (each worker has its own LocMemCache) a worker is not
    told of the rotation; once the old key is disabled, its next call fails once,
    looks the alias up (two requests) and signs with the new key."""
    created = manager.create_algorand_key(ALIAS, native=kind == "native")
    old = manager.get_key(ALIAS)
    ledger.fund(created.address, 10_000_000)
    (worker,) = workers(1, None)
    try:
        signed, _ = worker.sign("before")
        assert signed is not None
        ledger.evaluate([signed])

        result = manager.rotate_key(ALIAS, LedgerChain(ledger), native=kind == "native")
        # The sandbox's stand-ins (Ed25519, Parameter Store) enforce key state.
        boto3.client("kms").disable_key(KeyId=old.key_id)
        if kind == "native":
            signing = "kms.Sign"
            # A native key's public key is checked once per process before its first Sign.
            first_use = ["kms.GetPublicKey"]
        else:  # the new key's parameter: its ciphertext is read once
            assert kms_tags(result.key_id)["SSMParameter"] != OLD_PARAMETER
            signing = "kms.Decrypt"
            first_use = ["ssm.GetParameter"]

        signed, answer = worker.sign("after")
        assert signed is not None, answer
        assert signed.authorizing_address == result.auth_address
        ledger.evaluate([signed])
        lookup = ["kms.DescribeKey", "kms.ListResourceTags"]
        assert answer["requests"] == [signing, *lookup, *first_use, signing]
    finally:
        worker.close()


def _payment(address: str, note: str) -> transaction.PaymentTxn:
    sp = LocalLedger.suggested_params()
    return transaction.PaymentTxn(address, sp, address, 0, note=note.encode())


class Clock:
    """cache's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(cache, "_clock", fake)
    return fake


def failed_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    records = [r.audit for r in caplog.records if hasattr(r, "audit")]
    assert all(r["outcome"] == "failed" for r in records)
    return records


def test_repeated_failures_cost_one_request_per_window(
    manager: AlgorandKMSManager,
    session: boto3.Session,
    counter: RequestCounter,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    created = manager.create_algorand_key(ALIAS)
    signer = KMSSigner(ALIAS, session=session)
    assert signer.address == created.address  # cached
    inject_error(session, "ssm", "GetParameter", "InvalidKeyId", "injected: key disabled")
    signer = KMSSigner(ALIAS, session=session)  # its clients see the fault
    caplog.set_level(logging.INFO, logger="confio_kms.audit")
    counter.reset()

    errors: list[exceptions.KeyStateError] = []

    def calls(count: int) -> None:
        for i in range(count):
            with pytest.raises(exceptions.KeyStateError) as raised:
                signer.sign_transaction(_payment(created.address, f"{clock.now} {i}"))
            errors.append(raised.value)

    calls(5)
    # One attempt and one lookup (the alias still names that key), then nothing.
    assert counter.by_operation() == {
        "ssm.GetParameter": 1,
        "kms.DescribeKey": 1,
        "kms.ListResourceTags": 1,
    }
    assert len(failed_records(caplog)) == 5
    # Each a fresh copy: same text (cause and fix), no chain, not the first object.
    assert len({id(e) for e in errors}) == 5 and len({str(e) for e in errors}) == 1
    assert "Fix:" in str(errors[-1]) and errors[-1].__cause__ is None

    counter.reset()
    clock.now += cache.FAILURE_SECONDS  # the window is over: one new attempt
    calls(3)
    assert counter.by_operation()["ssm.GetParameter"] == 1

    counter.reset()
    cache.forget(signer.clients.scope, ALIAS, signer.clients.options)  # ends the window
    calls(3)
    assert counter.by_operation() == {
        "ssm.GetParameter": 1,
        "kms.DescribeKey": 1,  # the entry was forgotten: looked up (not from a cache,
        "kms.ListResourceTags": 1,  # so no second lookup)
    }

    counter.reset()
    # Another process's forget (a new shared generation) ends it too.
    shared = signer.clients.options.cache
    assert shared is not None
    shared.set(cache._generation_key(cache._key(signer.clients.scope, ALIAS)), "elsewhere")
    calls(2)
    assert counter.by_operation()["ssm.GetParameter"] == 1
    assert len(failed_records(caplog)) == 13


def test_a_missing_alias_is_asked_once_per_window(
    session: boto3.Session, counter: RequestCounter, clock: Clock
) -> None:
    signer = KMSSigner("no-such-alias", session=session)
    _, address = new_account()
    for i in range(4):
        with pytest.raises(exceptions.AliasNotFoundError):
            signer.sign_transaction(_payment(address, str(i)))
    assert counter.by_operation() == {"kms.DescribeKey": 1}
