"""Celery: the example project's pattern (a signer per worker process, built after the
fork) with a real prefork worker, its broker a redis-server, against the sandbox."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from algosdk import encoding, transaction
from django.test import override_settings

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.sandbox import LocalAWS, LocalLedger

from .conftest import SPONSOR_ALIAS
from .helpers import NativeKey, RequestCounter

celery = pytest.importorskip("celery", reason="celery is in the test extra")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def worker(redis_url: str, aws_env: LocalAWS) -> Iterator[celery.Celery]:
    """A prefork worker (2 processes) of the example project, as a subprocess."""
    env = {
        **os.environ,
        **aws_env.environ(),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example_project")]),
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "USE_KMS_SIGNING": "true",
        "CONFIO_SANDBOX": "true",  # the sandbox ledger's genesis is trusted
        "CELERY_BROKER_URL": redis_url,
        # The guard's pause and counters need a migrated database (tests/test_guardrails.py
        # runs them across processes); this worker shares the example's database file.
        "CONFIO_KMS_GUARD": "false",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tests.celery_worker", "worker",
         "--pool", "prefork", "--concurrency", "2", "--loglevel", "warning",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    client = celery.Celery("client", broker=redis_url, backend=redis_url)
    try:
        yield client
    finally:
        process.send_signal(signal.SIGQUIT)  # a cold shutdown: no task is running
        _, errors = process.communicate(timeout=30)
        assert "Traceback" not in errors, errors[-3000:]
        client.close()


def test_a_prefork_worker_signs_with_a_signer_of_its_own(
    manager: AlgorandKMSManager,
    worker: celery.Celery,
    session: boto3.Session,
    counter: RequestCounter,
    ledger: LocalLedger,
) -> None:
    address = manager.create_algorand_key(SPONSOR_ALIAS, network="testnet").address
    txn = transaction.PaymentTxn(address, ledger.suggested_params(), address, 1)

    # A generous bound: the worker's start-up, not a timing.
    done = worker.send_task("tests.celery_worker.counted_sign", [encoding.msgpack_encode(txn)])
    result = done.get(timeout=60)

    signed = encoding.msgpack_decode(result["signed"])
    assert signed.transaction.get_txid() == txn.get_txid()
    ledger.fund(address, 10_000_000)
    ledger.evaluate([signed])  # go-algorand's evaluator accepts the worker's signature
    assert result["pid"] != os.getpid()
    assert result["requests"] == {
        "kms.DescribeKey": 1,
        "kms.ListResourceTags": 1,
        "ssm.GetParameter": 1,
        "kms.Decrypt": 1,
    }
    # ... which is what a fresh process's first call costs.
    counter.reset()
    KMSSigner(SPONSOR_ALIAS, session=session).sign_transaction(txn)
    assert result["requests"] == dict(counter.by_operation())


def test_a_forked_child_signs_after_its_parent_did(
    manager: AlgorandKMSManager, native_key: NativeKey, ledger: LocalLedger
) -> None:
    """The parent's request threads (an envelope call's, a native group's) do not exist
    in a forked child (gunicorn --preload, Celery's prefork pool): without threads of
    its own, the child's requests waited for dead ones until the deadline, or forever."""
    envelope = manager.create_algorand_key("forked", network="localnet").address
    native = native_key("forked-native", network="localnet").address
    sp = ledger.suggested_params()
    txn = transaction.PaymentTxn(envelope, sp, envelope, 2)
    group = [transaction.PaymentTxn(native, sp, native, i) for i in range(2)]
    KMSSigner("forked").sign_transaction(txn)  # the parent now has idle request threads
    KMSSigner("forked-native").sign_transactions(group)  # and a pool of native ones
    fork = multiprocessing.get_context("fork")
    parent_end, child_end = fork.Pipe()

    def child() -> None:
        try:
            with override_settings(CONFIO_KMS_CALL_DEADLINE=3):
                signed = [KMSSigner("forked").sign_transaction(txn)]
                signed += KMSSigner("forked-native").sign_transactions(group)
            child_end.send([encoding.msgpack_encode(s) for s in signed])
        except Exception as error:
            child_end.send(f"{type(error).__name__}: {error}")

    process = fork.Process(target=child)
    process.start()
    answer = parent_end.recv() if parent_end.poll(60) else "no answer"  # a bound, not a timing
    process.kill()  # a child stuck on a dead thread never exits by itself
    process.join(30)
    assert isinstance(answer, list), answer
    ledger.fund(envelope, 10_000_000)
    ledger.fund(native, 10_000_000)
    ledger.evaluate([encoding.msgpack_decode(a) for a in answer])
