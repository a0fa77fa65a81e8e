"""Whole-response deadlines: an AWS request runs in a worker thread, and its caller
waits for it only until the deadline.

botocore's read timeout bounds each socket read, not the answer: an answer trickled
a byte at a time, or a hang that keeps resetting the timer, holds the calling thread
for as long as the sender likes. ``run`` hands the request to a worker thread (an
idle one if there is one, else a new one, so a stuck request never delays another)
with a copy of the caller's context variables (the deadline the retry handler reads,
the progress reporter), and waits for it until the deadline; past it, the caller
gets ``Expired`` and goes on. A forked child starts with an empty pool of its own.

The abandoned request keeps its worker thread until its answer ends or its socket
times out (each read is bounded by the read timeout, no longer than the deadline
left when the request was sent). ``abandoned()`` counts those in flight now, and each
abandonment is logged as a WARNING. An idle worker exits after ``IDLE_SECONDS``.
"""

from __future__ import annotations

import _thread
import contextvars
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

logger = logging.getLogger("confio_kms.aws")
T = TypeVar("T")

# An idle worker waits this long for another request before its thread exits.
IDLE_SECONDS = 60.0


class Expired(Exception):
    """The deadline passed before the request's answer ended; it goes on, abandoned."""


class _Task:
    """One request handed to a worker. ``done`` is a plain lock, held until the task
    ends: a request pays two thread hand-offs, and plain locks make each about 10 us
    cheaper than ``threading.Event`` and ``Semaphore`` (built on ``Condition``)."""

    __slots__ = ("abandoned", "context", "done", "error", "finished", "function", "result")

    def __init__(self, function: Callable[[], Any], context: contextvars.Context) -> None:
        self.function = function
        self.context = context
        self.done = _thread.allocate_lock()
        self.done.acquire()  # released once, when the task has ended
        self.finished = False  # under the pool's lock
        self.result: Any = None
        self.error: BaseException | None = None
        self.abandoned = False


class _Worker:
    """One thread that runs tasks handed to it, one at a time."""

    __slots__ = ("_has_task", "_pool", "task")

    def __init__(self, pool: _Pool) -> None:
        self._pool = pool
        # Held while there is no task; released by ``give`` (a worker is given one
        # task per claim, so it is never released twice).
        self._has_task = _thread.allocate_lock()
        self._has_task.acquire()
        self.task: _Task | None = None
        threading.Thread(target=self._loop, name="confio-kms-aws", daemon=True).start()

    def give(self, task: _Task) -> None:
        self.task = task
        self._has_task.release()

    def _loop(self) -> None:
        while True:
            if not self._has_task.acquire(timeout=IDLE_SECONDS):
                if self._pool.retire(self):
                    return
                self._has_task.acquire()  # claimed meanwhile: its task is on its way
            task, self.task = self.task, None
            assert task is not None
            try:
                task.result = task.context.run(task.function)
            except BaseException as error:  # handed to the caller, who raises it
                task.error = error
            self._pool.finished(self, task)


class _Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self.abandoned = 0
        self.workers = 0

    def claim(self) -> _Worker:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self.workers += 1
        return _Worker(self)

    def finished(self, worker: _Worker, task: _Task) -> None:
        with self._lock:
            task.finished = True
            if task.abandoned:
                self.abandoned -= 1
            else:
                task.done.release()
            self._idle.append(worker)

    def retire(self, worker: _Worker) -> bool:
        """Whether an idle ``worker`` may exit (no caller has claimed it meanwhile)."""
        with self._lock:
            if worker not in self._idle:
                return False
            self._idle.remove(worker)
            self.workers -= 1
            return True

    def abandon(self, task: _Task) -> bool:
        """Mark ``task`` abandoned, unless it has just finished (then False)."""
        with self._lock:
            if task.finished:
                return False
            task.abandoned = True
            self.abandoned += 1
            return True


_pool = _Pool()


def _after_fork() -> None:
    """In a forked child (a prefork server's or Celery's worker): the parent's worker
    threads do not exist here, and its lock may have been held at the fork; without a
    fresh pool the child's first request would wait for a dead thread until its deadline."""
    global _pool
    _pool = _Pool()


os.register_at_fork(after_in_child=_after_fork)


def run(function: Callable[[], T], seconds: float, what: str) -> T:
    """``function()`` in a worker thread, waited for at most ``seconds``; ``Expired``
    after that (``what`` names the request in the WARNING)."""
    task = _Task(function, contextvars.copy_context())
    _pool.claim().give(task)
    if not task.done.acquire(timeout=max(0.0, seconds)) and _pool.abandon(task):
        logger.warning(
            "Abandoned %s at its deadline: its answer had not ended; its worker thread "
            "is released when it does (%d abandoned requests in flight).",
            what,
            _pool.abandoned,
        )
        raise Expired(what)
    if task.error is not None:
        error, task.error = task.error, None
        raise error
    result: T = task.result
    task.result = None
    return result


def abandoned() -> int:
    """Requests given up at their deadline whose answer has not ended yet."""
    return _pool.abandoned


def threads() -> int:
    """Worker threads alive now (busy, idle or abandoned)."""
    return _pool.workers
