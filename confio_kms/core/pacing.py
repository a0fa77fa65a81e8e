"""Pacing: the processes of a host send at most a binding AWS quota, in arrival order.

A quota (Parameter Store's 40/s, KMS's symmetric or ECC request rate) is shared by
every process of the account and region. Without pacing, a process over its share
learns it from ``ThrottlingException`` and retries with backoff: the calls that lose
the race retry again and again, and the p99 grows to seconds. With pacing (on by
default, ``Options.pacing`` / ``CONFIO_KMS_PACING``) each process keeps, per quota,
one ``Pacer``:

- Unthrottled, it does not pace: a request goes out at once (a lock and a timestamp).
- A throttle AWS answers switches it on at a rate below what the process was sending
  (multiplicative decrease, ``BETA``, of the rate of its latest ``RECENT`` requests,
  taken as at least ``FIRST_RATE``); every further throttle of a request sent after
  the last cut cuts it again. Each answer that is not a throttle raises it a little
  (additive increase: ``INCREASE`` of the rate at the last cut per second, at least
  ``MIN_INCREASE``), so the processes sharing a quota tend toward shares just under
  it (over several throttle cycles: a process below its share waits longer). ``RELEASE``
  seconds after the last throttle, a request that finds nobody waiting ends pacing.
- While pacing, requests (botocore's retries included) wait in a queue and leave it
  in arrival order, one every ``1 / rate`` seconds: no thread races another for a
  token, so the waits are the queue's length over the rate, alike for every call.
  A retry keeps its call's place (its first attempt's arrival), so a throttled
  request does not wait through the whole queue again.
- No wait passes the call's deadline: a request whose turn would come after it is
  refused at once without entering the queue (``Refused``; the caller raises
  ``DeadlineExceededError`` naming the quota), and one that leaves the queue moves
  everyone behind it up. A retry's wait also ends with the call's throttle wait
  (1 s for botocore's retries, plus ``CONFIO_KMS_THROTTLE_WAIT``, from the request's
  start: ``confio_kms.core.aws.PACED_RETRIES``); then the throttling error is raised.

Where the host's processes can share a directory (``default_directory()``, or
``CONFIO_KMS_PACING_DIR`` through ``watch``'s ``directory``), the pacer of a quota is
a ``pacing_shared.SharedPacer`` instead: the same rules on ONE line and ONE rate for
every process of the host (its docstring), so every call waits about as long as any
other. Where the directory cannot be used, each process keeps its own ``Pacer`` (one
warning per process names the cause). Processes on other hosts, or in containers
that do not share the directory, converge through the throttles as above.

The pacers are per quota, region and endpoint (a forked child starts with none and
reopens the shared files: ``os.register_at_fork``); they pace the AWS requests of
every signer and manager of the process. ``watch`` hooks a botocore client into them.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from confio_kms.core import pacing_shared
from confio_kms.core.aws_errors import THROTTLED, quota_of
from confio_kms.core.pacing_rules import (
    BETA,
    BURST,
    FIRST_RATE,
    INCREASE,
    MIN_INCREASE,
    MIN_RATE,
    RECENT,
    RELEASE,
    Refused,
)

# The rules are re-exported: pacing is the one namespace its users import.
__all__ = [
    "BETA",
    "BURST",
    "FIRST_RATE",
    "INCREASE",
    "MIN_INCREASE",
    "MIN_RATE",
    "RECENT",
    "RELEASE",
    "Call",
    "Pacer",
    "Refused",
    "default_directory",
    "pacer",
    "reset",
    "watch",
]


class _Waiter:
    __slots__ = ("arrived", "at")

    def __init__(self, arrived: float) -> None:
        self.arrived = arrived
        self.at = arrived  # when it may send


class Pacer:
    """The pace of one process's requests under one quota (``quota`` names it)."""

    def __init__(self, quota: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.quota = quota
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[_Waiter] = deque()
        self.rate: float | None = None  # requests/s; None: not pacing
        self._cut_rate = 0.0
        self._last_cut = -float("inf")
        self._last_throttle = -float("inf")
        self._last_sent = -float("inf")
        self._recent: deque[float] = deque(maxlen=RECENT)  # when the latest were sent
        self.waits = 0  # requests that waited in the queue (for tests and benchmarks)
        self.refused = 0

    def acquire(self, deadline: float | None, arrived: float | None = None) -> float:
        """Wait for this request's turn; the time it may send (its send time). Raises
        ``Refused`` when its turn would come after ``deadline`` (monotonic seconds).
        ``arrived``: when the call first asked (a retry keeps its place in the queue)."""
        with self._cond:
            now = self._clock()
            self._recent.append(now)
            if self.rate is not None and not self._queue and self._released(now):
                self.rate = None
            if self.rate is None:
                self._last_sent = now
                return now
            waiter = _Waiter(now if arrived is None else min(arrived, now))
            self._enqueue(waiter)
            if deadline is not None and waiter.at >= deadline:
                self._leave(waiter)
                raise Refused(self.quota, waiter.at - now)
            self.waits += waiter.at > now
            while True:
                now = self._clock()
                if self._queue[0] is waiter and waiter.at <= now:
                    break
                if deadline is not None and (now >= deadline or waiter.at >= deadline):
                    self._leave(waiter)
                    raise Refused(self.quota, waiter.at - now)
                limit = waiter.at if deadline is None else min(waiter.at, deadline)
                self._cond.wait(max(0.0, limit - now))
            self._queue.popleft()
            self._last_sent = now
            self._respace()
            return now

    def answered(self, sent: float, throttled: bool) -> None:
        """An answer to a request sent at ``sent``: AWS throttled it, or not."""
        with self._cond:
            now = self._clock()
            if throttled:
                self._last_throttle = now
                if self.rate is None:
                    # Below what this process was sending when the quota ran out; rather
                    # too high (each throttle cuts again) than too low (recovery is slow).
                    oldest = self._recent[0] if self._recent else now
                    sending = len(self._recent) / max(now - oldest, BURST)
                    self._cut(max(sending, FIRST_RATE), now)
                elif sent >= self._last_cut:  # older requests went out at the old rate
                    self._cut(self.rate, now)
            elif self.rate is not None and sent >= self._last_cut:
                step = max(MIN_INCREASE, INCREASE * self._cut_rate)
                self.rate += step / self.rate
                self._respace()

    def _cut(self, rate: float, now: float) -> None:
        self.rate = max(MIN_RATE, rate * BETA)
        self._cut_rate = self.rate
        self._last_cut = now
        self._respace()

    def _released(self, now: float) -> bool:
        """Long unthrottled, and the last request's interval is over."""
        spaced = self._last_sent + 1 / self.rate if self.rate else self._last_sent
        return now - self._last_throttle >= RELEASE and spaced <= now

    def _respace(self) -> None:
        """Each waiter's send time: one interval after the one before it (the last
        request sent, for the first), never before it arrived; then wake them."""
        if not self._queue:
            return
        interval = 1.0 / self.rate if self.rate else 0.0
        previous = self._last_sent
        for waiter in self._queue:
            waiter.at = previous = max(waiter.arrived, previous + interval)
        self._cond.notify_all()

    def _enqueue(self, waiter: _Waiter) -> None:
        """In arrival order: behind every waiter that arrived before it."""
        place = len(self._queue)
        while place and self._queue[place - 1].arrived > waiter.arrived:
            place -= 1
        self._queue.insert(place, waiter)
        self._respace()

    def _leave(self, waiter: _Waiter) -> None:
        """``waiter`` gives its place back: those behind it move up."""
        self._queue.remove(waiter)
        self.refused += 1
        self._respace()

    @property
    def queued(self) -> int:
        with self._cond:
            return len(self._queue)


_pacers: dict[tuple[str, str, str | None], Pacer | pacing_shared.SharedPacer] = {}
_lock = threading.Lock()
_sent = threading.local()  # the pacer and send time of this thread's request in flight
_warned = False  # the fallback to per-process pacers was logged (once per process)
logger = logging.getLogger("confio_kms.pacing")


def _after_fork() -> None:
    """A forked child sends at its own pace: no parent's queue (its waiting threads do
    not exist here), no lock possibly held at the fork, and its own descriptors of the
    shared files (flock locks belong to the open file description: the parent's would
    let the child in while the parent holds the lock)."""
    global _lock, _sent, _warned
    _lock = threading.Lock()
    _sent = threading.local()
    _warned = False
    _pacers.clear()
    pacing_shared.close_all()


os.register_at_fork(after_in_child=_after_fork)


def default_directory() -> str:
    """Where the host's shared pacers live by default: one directory per user."""
    return os.path.join(tempfile.gettempdir(), f"confio-kms-pacing-{os.getuid()}")


def pacer(
    scope: str, quota: str, directory: str | None = None
) -> Pacer | pacing_shared.SharedPacer:
    """The pacer of ``quota`` at ``scope`` (region and endpoint): shared by the host's
    processes through a file in ``directory`` (default ``default_directory()``), or
    this process's own when the directory cannot be used."""
    found = _pacers.get((scope, quota, directory))
    if found is not None:
        return found
    with _lock:
        found = _pacers.get((scope, quota, directory))
        if found is None:
            found = _pacers[(scope, quota, directory)] = _new_pacer(scope, quota, directory)
        return found


def _new_pacer(scope: str, quota: str, directory: str | None) -> Pacer | pacing_shared.SharedPacer:
    global _warned
    where = directory or default_directory()
    try:
        pacing_shared.check_directory(where)
        path = os.path.join(where, pacing_shared.file_name(scope, quota))
        return pacing_shared.SharedPacer(quota, path)
    except pacing_shared.UnusableDirectory as error:
        if not _warned:
            _warned = True
            logger.warning(
                "Pacing per process, not shared by the host's processes: %s. Set "
                "CONFIO_KMS_PACING_DIR to a directory of this user's that only it may "
                "write to.",
                error,
            )
        return Pacer(quota)


def reset() -> None:
    """Forget every pacer, closing the shared ones' files (tests)."""
    with _lock:
        _pacers.clear()
        pacing_shared.close_all()


class Call(Protocol):
    """What the pacer needs of the AWS request being sent (``AWSClients``' budget)."""

    deadline: float  # monotonic; no wait passes it
    retry_until: float  # monotonic; no retry's wait passes it (CONFIO_KMS_THROTTLE_WAIT)
    arrived: float | None  # when its first attempt asked for a turn; set here


def watch(
    client: Any, scope: str, current: Callable[[], Call | None], directory: str | None = None
) -> None:
    """Pace ``client``'s requests under the quotas they count against: each attempt
    waits its turn before it is sent (``current()``: the request's call, for its
    deadline and its place in the queue, or None), and its answer adjusts the rate."""
    service = client.meta.service_model.service_id.hyphenize()

    def before_send(event_name: str, **kwargs: Any) -> None:
        quota = quota_of(service, event_name.rsplit(".", 1)[-1])
        if quota is None:
            return
        chosen = pacer(scope, quota, directory)
        call = current()
        if call is None:
            _sent.request = (chosen, chosen.acquire(None))
            return
        if call.arrived is None:  # a first attempt; a retry passes its call's arrival
            call.arrived = chosen._clock()
            _sent.request = (chosen, chosen.acquire(call.deadline))
            return
        try:
            until = min(call.deadline, call.retry_until)
            _sent.request = (chosen, chosen.acquire(until, call.arrived))
        except Refused as refused:
            refused.retry = until < call.deadline
            raise

    def needs_retry(response: Any = None, **kwargs: Any) -> None:
        request = getattr(_sent, "request", None)
        if request is None:
            return
        _sent.request = None
        try:
            code = response[1]["Error"]["Code"]
        except (TypeError, KeyError, IndexError):
            code = None
        if response is not None:  # no answer (a connection error) says nothing of the quota
            request[0].answered(request[1], code in THROTTLED)

    client.meta.events.register(f"before-send.{service}", before_send, unique_id="confio-pace")
    client.meta.events.register(f"needs-retry.{service}", needs_retry, unique_id="confio-paced")
