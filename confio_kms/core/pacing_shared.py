"""One schedule per quota for every process of the host: a pacer in a small shared file.

``confio_kms.core.pacing``'s per-process ``Pacer`` gives each process its own queue and
rate, and the processes' rates converge on equal shares only over several throttle
cycles: a process below its share makes its calls wait longer, and the p99 grows. A
``SharedPacer`` keeps the pace of one quota (at one scope) in a file that every process
of the host's user maps, so all of their requests take turns in ONE arrival-ordered
schedule at ONE rate, and every call waits about as long as any other.

The file (``SIZE`` bytes, ``_HEAD`` below) holds the rate (0: not pacing), the line
(the next ticket, and an anchor: ticket k's turn is ``at + (k - ticket) / rate``), the
rate and time of the last cut, the last throttle, and a ring of the latest ``RECENT``
send times (the first cut's measured rate). A request takes the in-process lock, then
``flock`` on the process's own descriptor (flock locks belong to the open file
description: a forked child reopens the file, ``close_all`` below, or it would share
its parent's lock), reads the state through ``mmap``, and while pacing takes the next
ticket; it sleeps with no lock held and looks at its turn again at least every
``RECHECK`` seconds, since a rate change re-anchors the line at the first ticket whose
turn has not come: a cut spaces the waiting requests at once (turns kept at the old
rate would be throttled and cut again, down to ``MIN_RATE``). A retry of a throttled
request takes the first turn not yet come and moves the waiting tickets one turn on
(at the back of the line it would double its call's wait). A turn at or after the
call's deadline is refused without taking a ticket. Unthrottled, nothing waits: the
request only writes its send time into the ring (no flock).

Times are ``time.monotonic()``: CLOCK_MONOTONIC on Linux (macOS: mach absolute time),
one clock for every process of the host (containers of one host share it: one
kernel); it restarts at boot, so a state whose times lie far ahead (a file older than
the boot) is reset.
"""

from __future__ import annotations

import fcntl
import math
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

_MAGIC = 0xC0F1_0002  # the layout's version: another value resets the state
# magic; rate (0: not pacing); the anchor: a turn's time and its ticket (turn of ticket
# k = time + (k - ticket) / rate); the next ticket; the rate at the last cut; the last
# cut; the last throttle; the ring's index
_HEAD = struct.Struct("<Qddddddd q".replace(" ", ""))
RATE, AT, TICKET, NEXT, CUT_RATE, LAST_CUT, THROTTLE, RING = range(1, 9)
_EMPTY = (_MAGIC, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
_TIME = struct.Struct("<d")
_RATE_AT = 8  # the rate's offset: read without the file lock on the unthrottled path
_RING_AT = _HEAD.size - 8
SIZE = _HEAD.size + rules.RECENT * _TIME.size
# A stored time more than this past now is from before the boot: the state is reset.
_STALE = 3600.0
# A waiting request looks at its turn again at least this often (a cut moves it later,
# a raise or a refused request earlier).
RECHECK = 0.05

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
            with self._locked():
                pass  # a new file (zeros) or another layout: the initial state, stamped
        except OSError as error:  # no mmap or no flock here (some network filesystems)
            os.close(self._fd)
            raise UnusableDirectory(f"cannot map or lock {path}: {error.strerror}") from None
        except BaseException:
            os.close(self._fd)
            raise
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
        return state if state[0] == _MAGIC else list(_EMPTY)

    def _locked(self) -> _Locked:
        return _Locked(self)

    def _record(self, now: float, index: int) -> None:
        """``now`` into the ring of send times, and the ring's index on."""
        _TIME.pack_into(self._map, _HEAD.size + (index % rules.RECENT) * _TIME.size, now)
        struct.pack_into("<q", self._map, _RING_AT, index + 1)

    @property
    def rate(self) -> float | None:
        """Requests/s of the host's schedule; None: not pacing."""
        with self._locked() as state:
            return state[RATE] or None

    @property
    def queued(self) -> int:
        """Tickets whose turn has not come."""
        with self._locked() as state:
            return int(state[NEXT] - _first_waiting(state, self._clock())) if state[RATE] else 0

    def acquire(self, deadline: float | None, arrived: float | None = None) -> float:
        """Take a ticket (the next in arrival order; a retry, ``arrived`` given, the
        first turn not yet come, moving the others one turn on) and wait for its turn;
        the time it sends. Raises ``pacing.Refused`` when the turn would come at or after
        ``deadline``: a request refused at once takes no turn."""
        with self._lock:
            now = self._clock()
            if _TIME.unpack_from(self._map, _RATE_AT)[0] == 0.0:  # unthrottled: no flock
                self._record(now, struct.unpack_from("<q", self._map, _RING_AT)[0])
                return now
            with self._locked() as state:
                now = self._clock()
                if _released(state, now):
                    state[RATE] = 0.0
                self._record(now, int(state[RING]))
                state[RING] += 1
                if not state[RATE]:
                    return now
                ticket, turn = _book(state, now, retry=arrived is not None)
                if deadline is not None and turn >= deadline:
                    self.refused += 1
                    raise rules.Refused(self.quota, turn - now)
                _take(state, ticket, turn)
        self.waits += turn > now
        return now if turn <= now else self._wait(ticket, turn, deadline)

    def _wait(self, ticket: float | None, turn: float, deadline: float | None) -> float:
        """Sleep until ``ticket``'s turn (``turn`` for a retry's fixed turn), looking at it
        again every ``RECHECK`` seconds; the time it sends."""
        while True:
            now = self._clock()
            if ticket is None and now >= turn:
                return now
            # Time passes between looking at the turn and here: never a negative sleep.
            self._sleep(max(0.0, min(turn - now, RECHECK)))
            if ticket is None:
                continue
            with self._lock, self._locked() as state:
                now = self._clock()
                turn = _turn(state, ticket) if state[RATE] else now
                if turn <= now:
                    return now
                if deadline is not None and turn >= deadline:
                    self.refused += 1
                    raise rules.Refused(self.quota, turn - now)

    def answered(self, sent: float, throttled: bool) -> None:
        """An answer to a request sent at ``sent``: AWS throttled it, or not."""
        if not throttled and _TIME.unpack_from(self._map, _RATE_AT)[0] == 0.0:
            return  # not pacing: nothing to raise, no flock
        with self._lock, self._locked() as state:
            now = self._clock()
            rate = state[RATE]
            if throttled:
                state[THROTTLE] = now
                if not rate:
                    sending = max(self._sending(state, now), rules.FIRST_RATE)
                    _set_rate(state, max(rules.MIN_RATE, sending * rules.BETA), now, cut=True)
                elif sent >= state[LAST_CUT]:  # older requests went out at the old rate
                    _set_rate(state, max(rules.MIN_RATE, rate * rules.BETA), now, cut=True)
            elif rate and sent >= state[LAST_CUT]:
                step = max(rules.MIN_INCREASE, rules.INCREASE * state[CUT_RATE])
                _set_rate(state, rate + step / rate, now, cut=False)

    def _sending(self, state: list[float], now: float) -> float:
        """The host's rate over its latest ``RECENT`` requests."""
        count = min(int(state[RING]), rules.RECENT)
        if not count:
            return 0.0
        oldest_at = int(state[RING]) % rules.RECENT if count == rules.RECENT else 0
        oldest: float = _TIME.unpack_from(self._map, _HEAD.size + oldest_at * _TIME.size)[0]
        return count / max(now - oldest, rules.BURST)


def _turn(state: list[float], ticket: float) -> float:
    return state[AT] + (ticket - state[TICKET]) / state[RATE]


def _first_waiting(state: list[float], now: float) -> float:
    """The first ticket whose turn has not come (the next ticket, when none waits)."""
    come = math.ceil((now - state[AT]) * state[RATE] - 1e-9)
    return min(state[NEXT], state[TICKET] + max(0, come))


def _released(state: list[float], now: float) -> bool:
    """Pacing, long unthrottled, and nobody waiting."""
    return bool(
        state[RATE] and now - state[THROTTLE] >= rules.RELEASE and _turn(state, state[NEXT]) <= now
    )


def _book(state: list[float], now: float, retry: bool) -> tuple[float | None, float]:
    """A new request's ticket and turn; a retry's turn (no ticket): the first not come."""
    if retry:
        return None, max(now, _turn(state, _first_waiting(state, now)))
    if _turn(state, state[NEXT]) < now:  # nobody waiting: the line starts now
        state[AT], state[TICKET] = now, state[NEXT]
    return state[NEXT], _turn(state, state[NEXT])


def _take(state: list[float], ticket: float | None, turn: float) -> None:
    """Book the turn: the next ticket on, or, for a retry, every waiting one a turn on."""
    if ticket is not None:
        state[NEXT] += 1
        return
    first = _first_waiting(state, turn)
    state[AT], state[TICKET] = turn + 1 / state[RATE], first


def _set_rate(state: list[float], rate: float, now: float, cut: bool) -> None:
    """The new rate for the tickets whose turn has not come: the first keeps its turn
    (or now, when none waits), the others follow at the new spacing."""
    if state[RATE]:
        first = _first_waiting(state, now)
        state[AT], state[TICKET] = max(now, _turn(state, first)), first
    else:
        state[AT], state[TICKET] = now, state[NEXT]
    state[RATE] = rate
    if cut:
        state[CUT_RATE], state[LAST_CUT] = rate, now


class _Locked:
    """The file lock held, the state read (reset when stale); written back on exit."""

    def __init__(self, pacer: SharedPacer) -> None:
        self._pacer = pacer
        self.state: list[float] = []

    def __enter__(self) -> list[float]:
        fcntl.flock(self._pacer._fd, fcntl.LOCK_EX)
        self.state = self._pacer._state()
        now = self._pacer._clock()
        if max(self.state[AT], self.state[LAST_CUT], self.state[THROTTLE]) > now + _STALE:
            self.state = list(_EMPTY)  # written before this boot
        return self.state

    def __exit__(self, *exc: object) -> None:
        try:
            s = self.state
            _HEAD.pack_into(self._pacer._map, 0, *s[:RING], int(s[RING]))
        finally:
            fcntl.flock(self._pacer._fd, fcntl.LOCK_UN)


def close_all() -> None:
    """Close every shared pacer's file (a forked child: its descriptors share the
    parent's open file descriptions, hence its flock locks)."""
    for shared in list(_open):
        shared.close()
    _open.clear()
