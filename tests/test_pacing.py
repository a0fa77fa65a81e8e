"""Pacing (confio_kms.core.pacing): under a binding quota a process sends in arrival
order at a rate cut by throttles and raised while unthrottled, never waiting past a
call's deadline; unthrottled, it does not wait at all.

The pacer's own tests run on a fake clock: every rate and send time is exact. Real
threads wait only for the fake clock, stepped by the test; no assertion is on time.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
import pytest
from algosdk import transaction

from benchmarks.quota_proxy import QuotaProxy
from confio_kms import KMSSigner
from confio_kms.common import exceptions
from confio_kms.core import pacing
from confio_kms.core import pacing_shared as shared
from confio_kms.core.aws import AWSClients
from confio_kms.core.options import Options
from confio_kms.sandbox import LocalLedger

from .helpers import RequestCounter, inject_error

ECC = "KMS's 'Cryptographic operations (ECC)"


@pytest.fixture(autouse=True)
def pacing_directory(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Each test's shared pacers in its own directory, none left over from another."""
    monkeypatch.setattr(pacing, "default_directory", lambda: str(tmp_path / "pacing"))
    pacing.reset()
    yield
    pacing.reset()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttled_pacer(clock: Clock, sent_per_second: int = 10) -> pacing.Pacer:
    """A pacer that saw ``sent_per_second`` requests in the last second, then a throttle."""
    pacer = pacing.Pacer("the quota", clock=clock)
    for _ in range(sent_per_second):
        assert pacer.acquire(None) == clock.now  # unthrottled: sent at once
        clock.now += 1.0 / sent_per_second
    pacer.answered(clock.now - 0.01, throttled=True)
    return pacer


def test_unthrottled_requests_never_wait() -> None:
    clock = Clock()
    pacer = pacing.Pacer("the quota", clock=clock)
    for _ in range(1000):  # a burst, all at one instant
        assert pacer.acquire(deadline=clock.now + 0.001) == clock.now
        pacer.answered(clock.now, throttled=False)
    assert (pacer.rate, pacer.waits, pacer.queued) == (None, 0, 0)


def test_a_throttle_cuts_the_rate_below_what_the_process_sent() -> None:
    clock = Clock()
    pacer = throttled_pacer(clock, sent_per_second=10)
    assert pacer.rate == pytest.approx(10 * pacing.BETA)
    # A throttle of a request sent before the cut reflects the old rate: no second cut.
    pacer.answered(clock.now - 0.5, throttled=True)
    assert pacer.rate == pytest.approx(8.0)
    # One sent after it does.
    clock.now += 0.1
    pacer.answered(clock.now - 0.05, throttled=True)
    assert pacer.rate == pytest.approx(8.0 * pacing.BETA)


def test_answers_raise_the_rate_slowly_and_pacing_ends_when_idle() -> None:
    clock = Clock()
    pacer = throttled_pacer(clock, sent_per_second=10)  # cut to 8/s
    cut = clock.now
    clock.now += 1.0  # the queue is empty and the last interval over: no wait
    sent = pacer.acquire(deadline=clock.now + 0.001)
    assert sent == clock.now
    for _ in range(8):  # one second of answers at 8/s
        pacer.answered(sent, throttled=False)
    step = max(pacing.MIN_INCREASE, pacing.INCREASE * 8.0)
    assert pacer.rate == pytest.approx(8.0 + step, rel=0.02)
    # Answers to requests sent before the cut say nothing of the new rate.
    before = pacer.rate
    pacer.answered(cut - 1.0, throttled=False)
    assert pacer.rate == before
    clock.now = cut + pacing.RELEASE - 0.01
    assert pacer.acquire(clock.now + 0.001) == clock.now and pacer.rate is not None  # pacing
    clock.now = cut + pacing.RELEASE + 1.0
    assert pacer.acquire(clock.now + 0.001) == clock.now
    assert pacer.rate is None  # unthrottled long enough, nobody waiting: no pacing


def test_a_turn_past_the_deadline_is_refused_at_once_and_given_back() -> None:
    clock = Clock()
    pacer = throttled_pacer(clock, sent_per_second=10)  # 8/s: one every 0.125 s
    interval = 1 / 8.0
    clock.now += 1.0
    sent = pacer.acquire(deadline=clock.now + 0.001)  # the queue is empty: at once
    waiting = [pacing._Waiter(clock.now) for _ in range(3)]
    with pacer._cond:  # three calls waiting, as threads would be
        pacer._queue.extend(waiting)
        pacer._respace()
    assert [w.at for w in waiting] == pytest.approx([sent + interval * i for i in (1, 2, 3)])
    with pytest.raises(pacing.Refused) as refused:
        pacer.acquire(deadline=sent + interval * 4 - 0.001)  # its turn: after 4 intervals
    assert refused.value.quota == "the quota"
    assert refused.value.wait == pytest.approx(interval * 4)
    assert pacer.queued == 3  # it took no turn
    with pacer._cond:  # a call that gives up moves those behind it up
        pacer._leave(waiting[0])
    assert [w.at for w in waiting[1:]] == pytest.approx([sent + interval, sent + 2 * interval])


def test_waiting_calls_send_in_arrival_order() -> None:
    clock = Clock()
    pacer = throttled_pacer(clock, sent_per_second=60)  # 48/s
    clock.now += 1.0
    first = pacer.acquire(deadline=clock.now + 0.001)
    order: list[int] = []
    done = threading.Semaphore(0)

    def call(number: int) -> None:
        pacer.acquire(deadline=clock.now + 60)
        order.append(number)
        done.release()

    threads = []
    for number in range(6):
        threads.append(threading.Thread(target=call, args=(number,), daemon=True))
        threads[-1].start()
        while pacer.queued < number + 1:  # each enters the queue before the next starts
            threading.Event().wait(0.001)
    turns = [w.at for w in pacer._queue]
    assert turns == pytest.approx([first + (i + 1) / 48 for i in range(6)])
    for number, turn in enumerate(turns):
        clock.now = turn  # exactly one more call's turn has come
        assert done.acquire(timeout=30)
        assert order == list(range(number + 1))
        assert pacer.queued == 5 - number
    assert pacer.waits == 6


def test_a_retry_keeps_its_calls_place_in_the_queue() -> None:
    clock = Clock()
    pacer = throttled_pacer(clock, sent_per_second=10)
    clock.now += 1.0
    later = [pacing._Waiter(clock.now), pacing._Waiter(clock.now + 0.01)]
    retry = pacing._Waiter(clock.now - 0.5)  # its call asked before both
    with pacer._cond:
        for waiter in [*later, retry]:
            pacer._enqueue(waiter)
        assert list(pacer._queue) == [retry, *later]
        assert retry.at < later[0].at < later[1].at


def test_a_forked_child_starts_unpaced() -> None:
    pacing.pacer("scope", "the quota").answered(0.0, throttled=True)
    assert pacing._pacers
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's exit code is the assertion
        os._exit(0 if not pacing._pacers and pacing._lock.acquire(timeout=5) else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def payment(address: str, number: int = 0) -> transaction.Transaction:
    params = LocalLedger.suggested_params()
    return transaction.PaymentTxn(address, params, address, 0, note=str(number).encode())


def ecc_pacer() -> Any:
    [chosen] = [p for (_, quota, _), p in pacing._pacers.items() if quota.startswith(ECC)]
    return chosen


def test_an_unthrottled_signer_sends_each_request_at_once(
    native_key: Any, session: boto3.Session, counter: RequestCounter, ledger: LocalLedger
) -> None:
    created = native_key("n", "localnet")
    signer = KMSSigner("n", session=session)
    counter.reset()
    signed = signer.sign_transactions([payment(created.address, n) for n in range(16)])
    for number in range(16, 24):
        signed += signer.sign_transactions([payment(created.address, number)])
    # One request per signature, and the alias's lookup.
    assert counter.by_operation() == {"kms.Sign": 24, "kms.DescribeKey": 1,
                                      "kms.ListResourceTags": 1}  # fmt: skip
    assert (ecc_pacer().rate, ecc_pacer().waits) == (None, 0)
    ledger.fund(created.address, 1_000_000)
    ledger.evaluate(signed)  # every signature is valid on the ledger


def test_a_call_whose_turn_is_past_its_deadline_fails_naming_the_quota(
    native_key: Any, session: boto3.Session, counter: RequestCounter
) -> None:
    created = native_key("n", "localnet")
    inject_error(session, "kms", "Sign", "ThrottlingException", "Rate exceeded", only_call=1)
    aws = AWSClients(session=session, options=Options(max_attempts=1, throttle_wait=0))
    message = {"KeyId": created.key_id, "Message": b"m", "MessageType": "RAW",
               "SigningAlgorithm": "ED25519_SHA_512"}  # fmt: skip
    with pytest.raises(exceptions.AWSError):  # throttled: pacing is on from now
        aws.call("kms", "Sign", "n", **message)
    with ecc_pacer()._locked() as state:  # the host's next turn is far away
        state[shared.AT] = ecc_pacer()._clock() + 1000
        booked = state[shared.NEXT]
    counter.reset()
    with pytest.raises(exceptions.DeadlineExceededError) as raised:
        aws.bounded(5).call("kms", "Sign", "n", **message)
    assert "Cryptographic operations (ECC)" in str(raised.value)
    assert "CONFIO_KMS_PACING" in str(raised.value)
    assert counter.total == 0  # nothing was sent
    with ecc_pacer()._locked() as state:
        assert state[shared.NEXT] == booked  # and no turn was taken


def throttled_signs(url: str, key_id: str, *, paced: bool) -> int:
    """Sign requests AWS throttled while 8 threads sign 48 messages through a proxy whose
    ECC quota is 20/s (burst 20), in one process with pacing on or off."""
    pacing.reset()
    options = Options(pacing=paced, throttle_wait=30, call_deadline=60)
    with QuotaProxy(url, ecc_rate=20, delay=0) as proxy:
        aws = AWSClients(endpoint_url=proxy.url, options=options)
        failures: list[BaseException] = []

        def sign(thread: int) -> None:
            for number in range(6):
                try:
                    aws.call("kms", "Sign", "n", KeyId=key_id, Message=b"%d-%d" % (thread, number),
                             MessageType="RAW", SigningAlgorithm="ED25519_SHA_512")  # fmt: skip
                except exceptions.ConfioKMSError as error:
                    failures.append(error)

        threads = [threading.Thread(target=sign, args=(t,), daemon=True) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        stats = proxy.stats()
    assert not failures and not any(thread.is_alive() for thread in threads)
    assert stats["forwarded"].get("Sign") == 48
    return int(stats["throttled"].get("Sign", 0))


def test_pacing_makes_throttling_rare_through_a_quota(local_aws: Any, native_key: Any) -> None:
    created = native_key("n", "localnet")
    unpaced = throttled_signs(local_aws.url, created.key_id, paced=False)
    paced = throttled_signs(local_aws.url, created.key_id, paced=True)
    assert paced * 2 < unpaced, (paced, unpaced)
