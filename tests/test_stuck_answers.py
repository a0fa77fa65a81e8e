"""One stuck answer stalls only its own call: it ends at its deadline, and the other
calls of the process, started after it, keep signing (issue 22).

The fault is injected by the quota proxy (benchmarks/quota_proxy.py) in front of moto's
server: the first matching request's answer is trickled a few bytes a second (each
read returns well within the read timeout, so only a whole-response deadline ends it)
or held without an answer. The read timeout is set far above the deadline, so the
deadline alone must end the stuck call. No time is asserted: the waits below are
generous bounds that only stop a hung test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from algosdk import transaction
from pytest_django.fixtures import Settings as SettingsWrapper

from benchmarks.quota_proxy import QuotaProxy
from confio_kms import KMSSigner
from confio_kms.common import exceptions
from confio_kms.core import aws
from confio_kms.sandbox import LocalAWS, LocalLedger

ALIAS = "stuck"
DEADLINE = 1.5
JOIN_WINDOW = 0.2
THREADS = 8
EACH = 3  # signatures per thread
# Only stops a hung test: the old code took the whole trickle (minutes) or the read
# timeout (30 s below) to return.
BOUND = 15.0
GET_PARAMETER = "AmazonSSM.GetParameter"
SIGN = "TrentService.Sign"


@pytest.fixture
def proxy(local_aws: LocalAWS) -> Iterator[QuotaProxy]:
    # No quota to speak of: only the injected fault may slow anything down.
    with QuotaProxy(local_aws.url, rate=10_000, burst=10_000, delay=0) as running:
        yield running
    # Leaving the proxy ends the stuck answer: its abandoned request frees its thread.
    wait_for(lambda: aws.abandoned_requests() == 0)


def limits(settings: SettingsWrapper) -> None:
    """Set after the key is made (moto's first SSM request takes seconds: it loads AWS's
    public parameters), before the signer is built (it reads them then)."""
    settings.CONFIO_KMS_CALL_DEADLINE = DEADLINE
    settings.CONFIO_KMS_READ_TIMEOUT = 30  # far above the deadline: it must not help
    settings.CONFIO_KMS_COALESCE_JOIN_WINDOW = JOIN_WINDOW


def wait_for(condition: Callable[[], bool], limit: float = BOUND) -> None:
    """Poll until ``condition()``; the limit only stops a hung test."""
    give_up = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < give_up, "gave up waiting"
        time.sleep(0.01)


def payment(address: str, amount: int) -> transaction.Transaction:
    return transaction.PaymentTxn(address, LocalLedger.suggested_params(), address, amount)


def in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as error:  # the outcome is the assertion
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def stuck_and_others(
    proxy: QuotaProxy, signer: KMSSigner, address: str, kind: str, target: str
) -> tuple[Any, list[Any]]:
    """The first ``target`` request gets ``kind``; one call meets it, then THREADS
    threads sign EACH transactions each while it is stuck. (stuck outcome, others)."""
    signer.address  # noqa: B018  (looked up now: the calls below only sign)
    proxy.fault(kind, operations=[target], count=1, bytes_per_second=5)
    stuck, stuck_outcome = in_thread(lambda: signer.sign_transaction(payment(address, 0)))
    wait_for(lambda: proxy.stats()["faulted"].get(kind) == 1)
    # The others start at once: with coalescing their first calls join the stuck
    # decrypt, and must leave it once it is older than the join window.
    others = [
        in_thread(
            lambda i=i: [
                signer.sign_transaction(payment(address, 1 + i * EACH + n)) for n in range(EACH)
            ]
        )
        for i in range(THREADS)
    ]
    for thread, _ in others:
        thread.join(BOUND)
    stuck.join(BOUND)
    assert not stuck.is_alive(), "the stuck call outlived its deadline by far"
    assert all(not thread.is_alive() for thread, _ in others)
    [stuck_result] = stuck_outcome
    return stuck_result, [outcome[0] for _, outcome in others]


def check(stuck: Any, others: list[Any], ledger: LocalLedger, address: str) -> None:
    assert isinstance(stuck, exceptions.DeadlineExceededError), stuck
    assert f"CONFIO_KMS_CALL_DEADLINE = {DEADLINE:g} s" in str(stuck)
    # Abandoned at the deadline ("had not answered completely"), or, for a hang, its
    # read timed out first (each read waits at most the time left): either way, typed.
    assert "Fix:" in str(stuck)
    failed = [o for o in others if isinstance(o, BaseException)]
    assert failed == []  # none joined the stuck decrypt or waited for it
    signed = [s for batch in others for s in batch]
    assert len(signed) == THREADS * EACH
    ledger.fund(address, 10_000_000)
    ledger.evaluate(signed)  # go-algorand's evaluator accepts every one


@pytest.mark.parametrize("coalesce", [True, False], ids=["coalescing", "no-coalescing"])
@pytest.mark.parametrize("kind", ["trickle", "hang"])
def test_a_stuck_decrypt_fails_only_its_own_call_by_its_deadline(
    proxy: QuotaProxy,
    settings: SettingsWrapper,
    envelope_key: Any,
    ledger: LocalLedger,
    kind: str,
    coalesce: bool,
) -> None:
    _, address = envelope_key(ALIAS, "localnet")
    limits(settings)
    settings.CONFIO_KMS_COALESCE = coalesce
    signer = KMSSigner(ALIAS, endpoint_url=proxy.url, session=boto3.Session())

    stuck, others = stuck_and_others(proxy, signer, address, kind, GET_PARAMETER)

    check(stuck, others, ledger, address)
    # One GetParameter per burst at least: the stuck one was not shared by the others.
    assert proxy.stats()["forwarded"]["GetParameter"] >= 1


def test_a_stuck_native_sign_fails_only_its_own_call_by_its_deadline(
    proxy: QuotaProxy, settings: SettingsWrapper, native_key: Any, ledger: LocalLedger
) -> None:
    address = native_key(ALIAS, "localnet").address
    limits(settings)
    signer = KMSSigner(ALIAS, endpoint_url=proxy.url, session=boto3.Session())

    stuck, others = stuck_and_others(proxy, signer, address, "trickle", SIGN)

    check(stuck, others, ledger, address)
    assert proxy.stats()["forwarded"]["Sign"] == 1 + THREADS * EACH  # the stuck one too
