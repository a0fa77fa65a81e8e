"""Coalescing: concurrent signing calls for one envelope key share one decrypt.

The first kms:Decrypt is held at the endpoint's door until the other calls have
joined it, so the sharing is deterministic, not a matter of timing.
"""

from __future__ import annotations

import base64
import gc
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from algosdk import encoding, transaction
from django.test import override_settings
from nacl.signing import VerifyKey

from confio_kms import KMSSigner
from confio_kms.common import exceptions
from confio_kms.core import cache, coalescing, envelope
from confio_kms.core.signing import signing_bytes
from confio_kms.sandbox import LocalLedger

from .helpers import RequestCounter, inject_error
from .test_secret_hygiene import SENTINEL_ADDRESS, SENTINEL_MNEMONIC, scanned  # noqa: F401

ALIAS = "sentinel"
CALLS = 8


@pytest.fixture(autouse=True)
def sentinel_key(manager: Any) -> None:
    manager.import_existing_key(ALIAS, SENTINEL_MNEMONIC, network="localnet")


def new_signer(session: boto3.Session, **settings: Any) -> KMSSigner:
    """A signer whose clients carry the handlers registered on ``session`` so far (botocore
    copies them when a client is built)."""
    with override_settings(**settings):
        signer = KMSSigner(ALIAS, session=session)
    assert signer.address == SENTINEL_ADDRESS  # looked up before the burst
    return signer


def hold_first_decrypt(session: boto3.Session, joined: int) -> threading.Event:
    """Hold the first kms:Decrypt until ``joined`` calls share its burst (or 5 s).
    Register before building the signer."""
    released = threading.Event()
    first = [True]

    def hold(**kwargs: Any) -> None:
        if not first[0]:
            return
        first[0] = False
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and waiting() < joined:
            time.sleep(0.005)
        released.set()

    session.events.register("before-send.kms.Decrypt", hold)
    return released


def waiting() -> int:
    with envelope._decrypts._lock:
        return max((b.calls for b in envelope._decrypts._open.values()), default=0)


def payments(count: int, **fields: Any) -> list[transaction.Transaction]:
    sp = LocalLedger.suggested_params()
    return [
        transaction.PaymentTxn(SENTINEL_ADDRESS, sp, SENTINEL_ADDRESS, i, **fields)
        for i in range(count)
    ]


def concurrently(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads at once; return each result or raised exception."""
    results: list[Any] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = calls[i]()
        except BaseException as error:
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def verified(signed: transaction.SignedTransaction) -> bool:
    VerifyKey(encoding.decode_address(SENTINEL_ADDRESS)).verify(
        signing_bytes(signed.transaction), base64.b64decode(signed.signature)
    )
    return True


def test_concurrent_calls_share_one_decrypt(
    session: boto3.Session, counter: RequestCounter, ledger: LocalLedger
) -> None:
    hold_first_decrypt(session, CALLS)
    signer = new_signer(session)
    counter.reset()
    txns = payments(CALLS)
    results = concurrently([lambda t=t: signer.sign_transaction(t) for t in txns])
    # 8 calls, one decrypt (and the ciphertext's one read).
    assert counter.by_operation() == {"ssm.GetParameter": 1, "kms.Decrypt": 1}
    assert all(verified(r) for r in results)
    ledger.fund(SENTINEL_ADDRESS, 10_000_000)
    ledger.evaluate(results)  # and go-algorand's evaluator accepts every one


def test_without_coalescing_each_call_decrypts(
    session: boto3.Session, counter: RequestCounter
) -> None:
    signer = new_signer(session, CONFIO_KMS_COALESCE=False)
    assert verified(signer.sign_transaction(payments(1)[0]))  # reads the ciphertext
    counter.reset()
    results = concurrently([lambda t=t: signer.sign_transaction(t) for t in payments(4)])
    assert all(verified(r) for r in results)
    assert counter.by_operation() == {"kms.Decrypt": 4}


def test_one_calls_refusal_does_not_fail_the_others(
    session: boto3.Session, counter: RequestCounter
) -> None:
    hold_first_decrypt(session, CALLS - 1)
    signer = new_signer(session)
    counter.reset()
    txns = payments(CALLS)
    txns[3] = payments(1, rekey_to=SENTINEL_ADDRESS)[0]  # the policy refuses this one
    results = concurrently([lambda t=t: signer.sign_transaction(t) for t in txns])
    assert isinstance(results[3], exceptions.PolicyViolationError)
    assert all(verified(r) for i, r in enumerate(results) if i != 3)
    assert counter.by_operation() == {"ssm.GetParameter": 1, "kms.Decrypt": 1}


def test_a_failed_decrypt_fails_exactly_the_calls_that_shared_it(
    session: boto3.Session, counter: RequestCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    hold_first_decrypt(session, 4)  # registered first: it runs before the fault
    inject_error(session, "kms", "Decrypt", "AccessDeniedException", only_call=1)
    signer = new_signer(session)
    counter.reset()
    results = concurrently([lambda t=t: signer.sign_transaction(t) for t in payments(4)])
    assert all(isinstance(r, exceptions.AccessDeniedError) for r in results), results
    assert len({id(r) for r in results}) == 4  # each call its own error object
    # The failure is remembered for cache.FAILURE_SECONDS; the next call after that
    # starts a new decrypt, which succeeds.
    later = time.monotonic() + cache.FAILURE_SECONDS
    monkeypatch.setattr(cache, "_clock", lambda: later)
    assert verified(signer.sign_transaction(payments(1)[0]))
    # Each failed call of the burst looked its cached alias up once (the key had not moved).
    assert counter.by_operation() == {
        "ssm.GetParameter": 1,  # the ciphertext, kept after the failed decrypt
        "kms.Decrypt": 2,
        "kms.DescribeKey": 4,
        "kms.ListResourceTags": 4,
    }


def test_a_decrypt_serves_at_most_max_calls(
    session: boto3.Session, counter: RequestCounter
) -> None:
    hold_first_decrypt(session, 2)
    signer = new_signer(session, CONFIO_KMS_COALESCE_MAX_CALLS=2)
    counter.reset()
    results = concurrently([lambda t=t: signer.sign_transaction(t) for t in payments(6)])
    assert all(verified(r) for r in results)
    assert counter.by_operation()["kms.Decrypt"] >= 3  # 6 calls, 2 per decrypt at most


def test_a_call_waits_at_most_max_wait(session: boto3.Session) -> None:
    slow = threading.Event()

    def stall_first(**kwargs: Any) -> None:
        if not slow.is_set():
            slow.set()
            time.sleep(1.5)

    session.events.register("before-send.ssm.GetParameter", stall_first)
    signer = new_signer(session, CONFIO_KMS_COALESCE_MAX_WAIT=0.2)
    results = concurrently([lambda t=t: signer.sign_transaction(t) for t in payments(3)])
    timeouts = [r for r in results if isinstance(r, exceptions.CoalescingTimeoutError)]
    assert len(timeouts) == 2, [type(r).__name__ for r in results]
    assert "CONFIO_KMS_COALESCE_MAX_WAIT" in str(timeouts[0])
    assert sum(isinstance(r, transaction.SignedTransaction) for r in results) == 1


def test_no_key_material_outlives_the_burst(
    scanned: list[str],  # noqa: F811 (the hygiene fixture: DEBUG logs scanned at the end)
    session: boto3.Session,
    counter: RequestCounter,
) -> None:
    hold_first_decrypt(session, CALLS)
    signer = new_signer(session)
    counter.reset()
    results = concurrently([lambda t=t: signer.sign_transaction(t) for t in payments(CALLS)])
    scanned.extend(repr(r) for r in results)
    assert all(verified(r) for r in results)
    assert counter.by_operation() == {"ssm.GetParameter": 1, "kms.Decrypt": 1}
    assert envelope._decrypts._open == {}
    gc.collect()
    alive = [o for o in gc.get_objects() if type(o) is envelope._PrivateKey]
    assert alive == []  # no decrypted key is referenced once the calls have returned


def test_a_call_alone_makes_no_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst of one (the usual case) needs nothing to wait on: no ``threading.Event``
    is built (about 6 us a call); a call that joins makes the one its burst needs."""
    real = threading.Event
    made: list[threading.Event] = []
    event_made, fetching, release = real(), real(), real()

    def make() -> threading.Event:
        made.append(real())
        event_made.set()
        return made[-1]

    def slow() -> int:
        fetching.set()
        release.wait(5)
        return 1

    shared: coalescing.Coalescer[int] = coalescing.Coalescer()
    results: list[int] = []
    call = lambda: results.append(shared.run("k", slow, lambda v: v, max_calls=8, max_wait=5.0))  # noqa: E731
    # Built before the patch: a Thread makes an Event of its own.
    leader, joiner = threading.Thread(target=call), threading.Thread(target=call)
    monkeypatch.setattr(coalescing.threading, "Event", make)
    assert shared.run("k", lambda: 7, lambda v: v + 1, max_calls=8, max_wait=5.0) == 8
    assert made == []
    leader.start()
    assert fetching.wait(5)
    joiner.start()
    assert event_made.wait(5)  # made by the joiner, under the lock, before it waits
    release.set()
    leader.join(5)
    joiner.join(5)
    assert results == [1, 1] and len(made) == 1 and shared.fetches == 2
