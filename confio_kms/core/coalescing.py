"""Coalescing: concurrent calls that need the same secret share one fetch of it.

An envelope key's signing call decrypts the key (one SSM GetParameter). When calls
for the same key overlap in one process, the first one (the leader) fetches; a call
that arrives while that fetch is in flight joins it, waits, and uses the same
material. Once the fetch has finished the burst is closed: a later call starts a new
fetch, so the material is never kept between bursts, and the last call of a burst
drops the burst's reference to it. Each call still does its own checks and its own
signing; only the fetch is shared.

Bounds: a burst serves at most ``max_calls`` calls (a full burst makes newcomers
start the next one; a call that gave up waiting still counts, so timed-out waiters
never make room), a burst accepts newcomers only during the first ``join_window``
seconds of its fetch, and its waiters wait for it only that long: a fetch still in
flight after that is throttled or stuck, so later calls start their own and the
waiters leave it for a newer one instead of waiting for it to fail (at most one more
fetch per ``join_window`` per key). A call waits at most ``max_wait`` seconds in all
(then ``CoalescingTimeoutError``). A failed
fetch fails exactly the calls of its burst, each with its own copy of the error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from confio_kms.common import exceptions as exc
from confio_kms.core import telemetry

T = TypeVar("T")
R = TypeVar("R")


class _Burst(Generic[T]):
    """One fetch and the calls sharing it."""

    __slots__ = ("calls", "done", "error", "joined", "open", "started", "value")

    def __init__(self, started: float) -> None:
        # Set when the fetch has ended; made by the first call that joins (about 6 us:
        # a burst of one, the usual case, needs none).
        self.done: threading.Event | None = None
        self.value: T | None = None
        self.error: BaseException | None = None
        self.calls = 1  # in the burst now, the leader included
        self.joined = 1  # ever joined, whether still waiting or not
        self.started = started  # monotonic time its fetch started
        self.open = True  # newcomers may still join

    def wait(self, seconds: float) -> bool:
        """Wait for the fetch to end (a call that joined it: ``done`` is made)."""
        return self.done is not None and self.done.wait(seconds)

    def __repr__(self) -> str:  # the value is a secret: never shown
        return f"<burst of {self.calls} call(s), {'open' if self.open else 'done'}>"


class Coalescer(Generic[T]):
    """Shares one in-flight ``fetch`` per key among the calls that overlap it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[Hashable, _Burst[T]] = {}
        self.fetches = 0  # how many fetches ran (for tests and benchmarks)

    def run(
        self,
        key: Hashable,
        fetch: Callable[[], T],
        use: Callable[[T], R],
        *,
        max_calls: int,
        max_wait: float,
        join_window: float = float("inf"),
    ) -> R:
        """``use(fetch())``, with ``fetch`` shared by the calls for ``key`` in flight."""
        give_up = time.monotonic() + max_wait
        while True:
            burst, leader = self._enter(key, max_calls, join_window)
            if not leader:
                telemetry.coalesced()
            try:
                patience = min(give_up, burst.started + join_window) - time.monotonic()
                if leader:
                    self._lead(key, burst, fetch)
                elif not burst.wait(max(0.0, patience)):
                    if time.monotonic() < give_up:
                        continue  # the fetch is stuck: leave it, start (or join) a newer one
                    raise exc.CoalescingTimeoutError(
                        f"Waited {max_wait:g} s for another call's decrypt of the same key; "
                        "nothing was signed.",
                        fix="AWS is slow or throttling: retry, or raise "
                        "CONFIO_KMS_COALESCE_MAX_WAIT.",
                    )
                if burst.error is not None:
                    raise burst.error if leader else _copy(burst.error)
                return use(burst.value)  # type: ignore[arg-type]
            finally:
                self._leave(burst)

    def _enter(self, key: Hashable, max_calls: int, join_window: float) -> tuple[_Burst[T], bool]:
        """The burst this call is in, and whether it leads it (starts its fetch)."""
        now = time.monotonic()
        with self._lock:
            burst = self._open.get(key)
            if (
                burst is None
                or not burst.open
                or burst.joined >= max_calls
                or now - burst.started >= join_window
            ):
                burst = _Burst(now)
                self._open[key] = burst
                self.fetches += 1
                return burst, True
            burst.calls += 1
            burst.joined += 1
            if burst.done is None:
                burst.done = threading.Event()
            return burst, False

    def _lead(self, key: Hashable, burst: _Burst[T], fetch: Callable[[], T]) -> None:
        try:
            burst.value = fetch()
        except BaseException as error:
            burst.error = error
        finally:
            with self._lock:
                burst.open = False
                # A newer burst may have taken the key (this one was full or too old).
                if self._open.get(key) is burst:
                    del self._open[key]
                done = burst.done  # no call joins a closed burst: this is the last word
            if done is not None:
                done.set()

    def _leave(self, burst: _Burst[T]) -> None:
        with self._lock:
            burst.calls -= 1
            if burst.calls == 0 and not burst.open:
                burst.value = None  # the last call of the burst drops the secret


def _copy(error: BaseException) -> BaseException:
    """A fresh exception per waiting call (one object must not be raised in several
    threads at once), without the leader's traceback."""
    if isinstance(error, exc.ConfioKMSError):
        return type(error)(error.message, fix=error.fix, cause=error.cause)
    return exc.AWSError(
        f"The shared decrypt failed ({type(error).__name__}); nothing was signed.",
        fix="Retry; if it persists, check the key and the AWS endpoint.",
    )
