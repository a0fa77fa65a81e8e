"""One schedule per quota for every process of the host: a pacer in a small shared file.

``confio_kms.core.pacing``'s per-process ``Pacer`` gives each process its own queue and
rate, and the processes' rates converge on equal shares only over several throttle
cycles: a process below its share makes its calls wait longer, and the p99 grows. A
``SharedPacer`` keeps the pace of one quota (at one scope) in a file that every process
of the host's user maps, so all of their requests take turns in ONE arrival-ordered
schedule at ONE rate, and every call waits about as long as any other.

The file (``SIZE`` bytes, ``_STATE`` below) holds the rate (0: not pacing), the next
free turn, the rate at the last cut, the times of the last cut and the last throttle,
and a ring of the latest ``RECENT`` send times (the first cut's measured rate). A
request takes the in-process lock, then ``flock`` on the process's own descriptor
(flock locks belong to the open file description: a forked child reopens the file,
``close_all`` below, or it would share its parent's lock), reads the state through
``mmap``, and while pacing books the turn ``max(now, next free)`` and moves the next
free turn one interval on; it sleeps until its turn with no lock held. A turn past the
call's deadline is refused without booking anything. Unthrottled, nothing waits: the
request only writes its send time into the ring.

Times are ``time.monotonic()``: CLOCK_MONOTONIC on Linux and macOS, one clock for every
process of the host (containers of one host share it: one kernel); it restarts at boot,
so a state whose times lie far in the future (a file older than the boot) is reset.

Simplification: a retry of a throttled request takes the next free turn like any new
request (the schedule is a single "next free" time, so it cannot slip in ahead of turns
already handed out); with pacing, throttles are rare.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import stat
import struct
import threading
import time
import weakref
from collections.abc import Callable
from hashlib import blake2b

from confio_kms.core import pacing_rules as rules

_MAGIC = 0xC0F1_0001  # the layout's version: another value resets the state
# magic, rate, next free turn, rate at the last cut, last cut, last throttle, ring index
_HEAD = struct.Struct("<Qdddddq")
_TIME = struct.Struct("<d")
_RATE_AT = 8  # the rate's offset: read without the file lock on the unthrottled path
SIZE = _HEAD.size + rules.RECENT * _TIME.size
# A stored time more than this past now is from before the boot: the state is reset.
_STALE = 3600.0

_open: weakref.WeakSet[SharedPacer] = weakref.WeakSet()


class UnusableDirectory(Exception):
    """The pacing directory cannot hold the shared state (the message says why)."""


def check_directory(path: str) -> str:
    """Create ``path`` (0700) if absent; refuse a symlink, another user's directory or
    one others may write to. Returns the path."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as error:
        raise UnusableDirectory(f"cannot create {path}: {error.strerror}") from None
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UnusableDirectory(f"{path} is not a directory (a symlink or a file)")
    if info.st_uid != os.getuid():
        raise UnusableDirectory(f"{path} belongs to another user (uid {info.st_uid})")
    if info.st_mode & 0o022:
        raise UnusableDirectory(f"others may write to {path} (mode {info.st_mode & 0o777:o})")
    return path


def file_name(scope: str, quota: str) -> str:
    """The state file's name of ``quota`` at ``scope``: a hash, so no name escapes."""
    return blake2b(f"{scope}\0{quota}".encode(), digest_size=16).hexdigest() + ".pace"


class SharedPacer:
    """The pace of one quota for every process using ``path`` (one file per quota)."""

    def __init__(
        self,
        quota: str,
        path: str,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.quota = quota
        self.path = path
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            self._fd = os.open(path, flags, 0o600)
        except OSError as error:
            raise UnusableDirectory(f"cannot open {path}: {error.strerror}") from None
        try:
            if os.fstat(self._fd).st_uid != os.getuid():
                raise UnusableDirectory(f"{path} belongs to another user")
            if os.fstat(self._fd).st_size < SIZE:
                os.ftruncate(self._fd, SIZE)  # zeros: not pacing; growing twice is harmless
            self._map = mmap.mmap(self._fd, SIZE)
        except OSError as error:
            os.close(self._fd)
            raise UnusableDirectory(f"cannot map {path}: {error.strerror}") from None
        except BaseException:
            os.close(self._fd)
            raise
        with self._locked():
            pass  # a new file (zeros) or another layout: the initial state, stamped
        self.waits = 0  # this process's requests that waited (tests and benchmarks)
        self.refused = 0
        _open.add(self)

    def close(self) -> None:
        """Unmap and close the file (a forked child's copy of its parent's pacer)."""
        if self._fd >= 0:
            self._map.close()
            os.close(self._fd)
            self._fd = -1

    def _state(self) -> list[float]:
        state = list(_HEAD.unpack_from(self._map, 0))
        if state[0] != _MAGIC:
            state = [_MAGIC, 0.0, 0.0, 0.0, 0.0, 0.0, 0]
        return state

    def _locked(self) -> _Locked:
        return _Locked(self)

    def _record(self, now: float, index: int) -> None:
        """``now`` into the ring of send times, and the ring's index on."""
        _TIME.pack_into(self._map, _HEAD.size + (index % rules.RECENT) * _TIME.size, now)
        struct.pack_into("<q", self._map, _HEAD.size - 8, index + 1)

    @property
    def rate(self) -> float | None:
        """Requests/s of the host's schedule; None: not pacing."""
        with self._locked() as state:
            return state[1] or None

    @property
    def queued(self) -> int:
        """Turns booked ahead of now."""
        with self._locked() as state:
            rate, free = state[1], state[2]
            return max(0, round((free - self._clock()) * rate)) if rate else 0

    def acquire(self, deadline: float | None, arrived: float | None = None) -> float:
        """Book this request's turn and sleep until it; the time it may send. Raises
        ``pacing.Refused`` when its turn would come at or after ``deadline`` (nothing is
        booked). ``arrived`` is ignored: a retry takes the next free turn."""
        with self._lock:
            now = self._clock()
            if _TIME.unpack_from(self._map, _RATE_AT)[0] == 0.0:  # unthrottled: no flock
                self._record(now, struct.unpack_from("<q", self._map, _HEAD.size - 8)[0])
                return now
            with self._locked() as state:
                now = self._clock()
                rate, free, last_throttle = state[1], state[2], state[5]
                if rate and free <= now and now - last_throttle >= rules.RELEASE:
                    state[1] = rate = 0.0  # long unthrottled, nobody booked: stop pacing
                self._record(now, int(state[6]))
                state[6] += 1
                if not rate:
                    return now
                turn = max(now, free)
                if deadline is not None and turn >= deadline:
                    self.refused += 1
                    raise rules.Refused(self.quota, turn - now)
                state[2] = turn + 1.0 / rate
        if turn > now:
            self.waits += 1
            self._sleep(turn - now)
        return turn

    def answered(self, sent: float, throttled: bool) -> None:
        """An answer to a request sent at ``sent``: AWS throttled it, or not."""
        if not throttled and _TIME.unpack_from(self._map, _RATE_AT)[0] == 0.0:
            return  # not pacing: nothing to raise, no flock
        with self._lock, self._locked() as state:
            now = self._clock()
            rate, cut_rate, last_cut = state[1], state[3], state[4]
            if throttled:
                state[5] = now
                if not rate:
                    self._cut(state, max(self._sending(state, now), rules.FIRST_RATE), now)
                elif sent >= last_cut:  # older requests went out at the old rate
                    self._cut(state, rate, now)
            elif rate and sent >= last_cut:
                state[1] = rate + max(rules.MIN_INCREASE, rules.INCREASE * cut_rate) / rate

    def _sending(self, state: list[float], now: float) -> float:
        """The host's rate over its latest ``RECENT`` requests."""
        count = min(int(state[6]), rules.RECENT)
        if not count:
            return 0.0
        oldest_at = int(state[6]) % rules.RECENT if count == rules.RECENT else 0
        oldest: float = _TIME.unpack_from(self._map, _HEAD.size + oldest_at * _TIME.size)[0]
        return count / max(now - oldest, rules.BURST)

    @staticmethod
    def _cut(state: list[float], rate: float, now: float) -> None:
        state[1] = state[3] = max(rules.MIN_RATE, rate * rules.BETA)
        state[4] = now
        # Turns booked at the old rate stand; the next is one new interval after now.
        state[2] = max(state[2], now)


class _Locked:
    """The file lock held, the state read (reset when stale); written back on exit."""

    def __init__(self, pacer: SharedPacer) -> None:
        self._pacer = pacer
        self.state: list[float] = []

    def __enter__(self) -> list[float]:
        fcntl.flock(self._pacer._fd, fcntl.LOCK_EX)
        self.state = self._pacer._state()
        now = self._pacer._clock()
        if max(self.state[2], self.state[4], self.state[5]) > now + _STALE:
            self.state = [_MAGIC, 0.0, 0.0, 0.0, 0.0, 0.0, 0]  # written before this boot
        return self.state

    def __exit__(self, *exc: object) -> None:
        try:
            s = self.state
            _HEAD.pack_into(self._pacer._map, 0, _MAGIC, s[1], s[2], s[3], s[4], s[5], int(s[6]))
        finally:
            fcntl.flock(self._pacer._fd, fcntl.LOCK_UN)


def close_all() -> None:
    """Close every shared pacer's file (a forked child: its descriptors share the
    parent's open file descriptions, hence its flock locks)."""
    for shared in list(_open):
        shared.close()
    _open.clear()
