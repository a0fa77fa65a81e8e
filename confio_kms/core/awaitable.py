"""Awaitable signing: the blocking signing calls, run so that an event loop never waits.

``KMSSigner.asign_transactions``, ``KMSMultisigSigner.asign_transactions`` and the
sponsor service's ``a*`` methods await ``run(call)``: the blocking call, unchanged,
runs in a thread of this module's pool while the coroutine yields to the loop. The
policy, the audit record, the cache, the deadlines and the coalescing are therefore
those of the blocking call, by construction: coroutines overlapping one envelope
key's decrypt are threads overlapping it, and join its burst exactly as threads do
(``confio_kms.core.coalescing``).

Threads, not aiobotocore: every AWS request already runs in a worker thread with a
whole-response deadline (``confio_kms.core.workers``), so the calling thread only
waits; an aiobotocore path would be a second implementation of the requests,
retries, deadlines, error translation and coalescing, to save one idle thread per
call in flight. Measured by ``benchmarks/event_loop_lag.py`` (docs/async.md).

The pool is bounded (``THREADS``, 16: as many calls as a coalesced burst serves and
as many native Sign requests as a process sends at once, by default): calls beyond it
wait in the pool's queue, not in the loop. More threads would let several bursts of
one key decrypt side by side, but every runnable thread competes for the GIL, which
the loop's thread needs each time it wakes: on a loaded machine 64 threads measured
about twice the worst lag of 16 (docs/async.md). It is per process (a forked
child, a Celery worker, builds its own).

Cancellation: a call still queued is dropped (nothing was sent, nothing signed, no
audit record). A call already running finishes in its thread: its requests end
(within ``CONFIO_KMS_CALL_DEADLINE``), its burst closes and the last call of the
burst drops the decrypted key as usual, the signature is made and audited
("signed"), and the signed transactions are dropped unseen: nothing is submitted.
The cancelled coroutine does not wait for that.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

# Threads that run awaited calls, per process (a call in flight holds one); read when
# the pool is first built.
THREADS = 16

_lock = threading.Lock()
_idle = threading.Condition(_lock)  # notified when the last running call ends
_pool: ThreadPoolExecutor | None = None  # built on first use; a forked child forgets it
_running = 0


def _executor() -> ThreadPoolExecutor:
    """This process's pool."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(THREADS, thread_name_prefix="confio-kms-aio")
        return _pool


def _forget_parent() -> None:
    """In a forked child: the parent's calls, pool and lock state are not this process's."""
    global _lock, _idle, _pool, _running
    _lock = threading.Lock()
    _idle = threading.Condition(_lock)
    _pool, _running = None, 0


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere nothing forks
    os.register_at_fork(after_in_child=_forget_parent)


def _counted(function: Callable[[], T]) -> T:
    global _running
    with _lock:
        _running += 1
    try:
        return function()
    finally:
        with _lock:
            _running -= 1
            if _running == 0:
                _idle.notify_all()


async def run(function: Callable[[], T]) -> T:
    """``function()`` in a pool thread, with the caller's context variables; the
    coroutine yields to the loop until it ends (see the module's note on cancelling)."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    return await loop.run_in_executor(_executor(), context.run, _counted, function)


def running() -> int:
    """Awaited calls running in a pool thread now (a cancelled one until it ends)."""
    return _running


def wait_idle(timeout: float) -> bool:
    """Wait until no awaited call runs in a pool thread (cancelled ones included), at
    most ``timeout`` seconds; whether none runs. For a clean shutdown, and tests."""
    give_up = time.monotonic() + timeout
    with _idle:
        while _running:
            left = give_up - time.monotonic()
            if left <= 0:
                return False
            _idle.wait(left)
        return True
