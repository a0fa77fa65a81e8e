"""Pacing shared by the host's processes (confio_kms.core.pacing_shared): one schedule
per quota in a small file, so every request of the host takes its turn in one
arrival-ordered line at one rate.

Two ``SharedPacer`` objects on one file have separate descriptors, so their flock locks
exclude each other as two processes' do; the exact tests run them on a fake clock whose
sleeps only advance it. One real multi-process test, ordered by pipes, and one fork.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from confio_kms.common.exceptions import ConfigurationError
from confio_kms.core import pacing, pacing_shared
from confio_kms.core.options import Options

SCOPE, QUOTA = "eu-central-2|https://kms", "the quota"


class Clock:
    """A fake monotonic clock; a sleep moves it on and is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture(autouse=True)
def pacing_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default shared directory of this test: its own, none left from another."""
    directory = tmp_path / "pacing"
    monkeypatch.setattr(pacing, "default_directory", lambda: str(directory), raising=False)
    pacing.reset()
    yield directory
    pacing.reset()


def two_processes(directory: Path, clock: Clock) -> tuple[Any, Any]:
    path = str(directory / "state.pace")
    directory.mkdir(exist_ok=True)
    return tuple(  # type: ignore[return-value]
        pacing_shared.SharedPacer(QUOTA, path, clock=clock, sleep=clock.sleep) for _ in "ab"
    )


def throttle(pacer: Any, clock: Clock, sent: int = 10) -> float:
    """``sent`` unthrottled requests over a second, then a throttle: the host's rate."""
    for _ in range(sent):
        assert pacer.acquire(None) == clock.now  # not pacing: at once
        clock.now += 1.0 / sent
    pacer.answered(clock.now - 0.01, throttled=True)
    return float(pacer.rate)


def test_two_processes_take_turns_in_one_schedule(pacing_directory: Path) -> None:
    clock = Clock()
    a, b = two_processes(pacing_directory, clock)
    rate = throttle(a, clock)  # process a's throttle ...
    assert rate == pytest.approx(10 * pacing.BETA)
    assert b.rate == rate  # ... paces process b too, at the one rate
    start = clock.now
    # Arrival order across the processes: a, b, b, a; each turn one interval after the last.
    turns = [p.acquire(deadline=start + 60) for p in (a, b, b, a)]
    assert turns == pytest.approx([start + i / rate for i in range(4)])
    assert (a.waits, b.waits) == (1, 2)
    # Answers in either process raise the one rate.
    a.answered(turns[0], throttled=False)
    b.answered(turns[1], throttled=False)
    step = max(pacing.MIN_INCREASE, pacing.INCREASE * rate)
    raised = rate + step / rate
    assert a.rate == b.rate == pytest.approx(raised + step / raised)


def test_a_turn_past_the_deadline_is_refused_and_books_nothing(pacing_directory: Path) -> None:
    clock = Clock()
    a, b = two_processes(pacing_directory, clock)
    rate = throttle(a, clock)
    start = clock.now
    booked = [a.acquire(deadline=None) for _ in range(3)]  # a's calls sleep through turns 0-2
    clock.now = start  # b asks at the same instant: its turn would be the 4th
    with pytest.raises(pacing.Refused) as refused:
        b.acquire(deadline=start + 3 / rate - 0.001)
    assert refused.value.wait == pytest.approx(3 / rate) and refused.value.quota == QUOTA
    assert (b.refused, b.waits, sum(clock.slept)) == (1, 0, pytest.approx(2 / rate))
    # The refused request took no turn: the next one gets the turn it would have had.
    assert b.acquire(deadline=None) == pytest.approx(start + 3 / rate)
    assert booked == pytest.approx([start + i / rate for i in range(3)])


def test_a_retry_takes_the_first_turn_not_come_and_the_others_move_on(
    pacing_directory: Path,
) -> None:
    clock = Clock()
    a, b = two_processes(pacing_directory, clock)
    rate = throttle(a, clock)
    start = clock.now
    with a._locked() as state:  # tickets 0-2: three requests of process a wait
        state[pacing_shared.NEXT] += 3
    clock.now = start + 0.5 / rate  # ticket 0's turn has come, 1 and 2 wait
    # Process b's retry (its call arrived a second ago) goes before tickets 1 and 2 ...
    assert b.acquire(deadline=None, arrived=start - 1) == pytest.approx(start + 1 / rate)
    with a._locked() as state:  # ... which move one turn on, as does the next request
        turns = [pacing_shared._turn(state, ticket) for ticket in (1, 2, 3)]
    assert turns == pytest.approx([start + i / rate for i in (2, 3, 4)])
    assert a.acquire(deadline=None) == pytest.approx(start + 4 / rate)


def test_a_cut_respaces_the_waiting_requests(pacing_directory: Path) -> None:
    clock = Clock()
    a, b = two_processes(pacing_directory, clock)
    rate = throttle(a, clock)
    start = clock.now
    with a._locked() as state:  # tickets 0-3 wait
        state[pacing_shared.NEXT] += 4
    clock.now = start + 1.5 / rate  # tickets 0 and 1 have gone: 2 and 3 wait
    b.answered(start + 1 / rate, throttled=True)  # sent after the cut: cut again
    slower = rate * pacing.BETA
    assert b.rate == pytest.approx(slower)
    with a._locked() as state:  # ticket 2 keeps its turn, 3 and the next follow slower
        turns = [pacing_shared._turn(state, ticket) for ticket in (2, 3, 4)]
    assert turns == pytest.approx([start + 2 / rate, start + 2 / rate + 1 / slower,
                                   start + 2 / rate + 2 / slower])  # fmt: skip


def test_a_state_from_before_the_boot_is_reset(pacing_directory: Path) -> None:
    clock = Clock()
    a, b = two_processes(pacing_directory, clock)
    throttle(a, clock)
    with a._locked() as state:  # the monotonic clock restarted: every stored time ahead
        state[pacing_shared.AT] = state[pacing_shared.THROTTLE] = clock.now + 1e6
    assert b.rate is None
    assert b.acquire(deadline=clock.now + 0.001) == clock.now  # not paced, not refused


def test_a_throttle_in_one_process_paces_another(pacing_directory: Path) -> None:
    """Real processes: the child's throttle turns pacing on in the parent, whose next
    request is booked after the child's."""
    parent = pacing.pacer(SCOPE, QUOTA)
    assert parent.acquire(None) and parent.rate is None
    from_parent, to_child = os.pipe()
    from_child, to_parent = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        code = 1
        try:
            mine = pacing.pacer(SCOPE, QUOTA)
            mine.answered(mine.acquire(None), throttled=True)
            os.write(to_parent, b"%.9f\n" % mine.acquire(None))
            os.read(from_parent, 1)  # the parent has booked its turn
            code = 0 if mine.rate is not None and mine is not parent else 1
        finally:
            os._exit(code)
    os.close(to_parent)
    os.close(from_parent)
    child_turn = float(os.read(from_child, 64))
    try:
        assert parent.rate is not None  # paced by the child's throttle
        rate = parent.rate
        assert parent.acquire(None) >= child_turn + 1 / rate - 1e-6  # after the child's turn
    finally:
        os.write(to_child, b"x")
        _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_forked_child_opens_its_own_file(pacing_directory: Path) -> None:
    """flock locks belong to the open file description: on its parent's descriptor a
    child's lock would be its parent's too. Reopened, the child's lock excludes it."""
    parent = pacing.pacer(SCOPE, QUOTA)
    assert isinstance(parent, pacing_shared.SharedPacer)
    from_parent, to_child = os.pipe()
    from_child, to_parent = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child holds the lock until told
        try:
            mine = pacing.pacer(SCOPE, QUOTA)
            with mine._locked():
                os.write(to_parent, b"1" if mine is not parent and parent._fd == -1 else b"0")
                os.read(from_parent, 1)
        finally:
            os._exit(0)
    os.close(to_parent)
    os.close(from_parent)
    try:
        reopened = os.read(from_child, 1)  # the child holds its lock
        with pytest.raises(BlockingIOError):  # the child's lock is not the parent's
            fcntl.flock(parent._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert reopened == b"1"  # a new pacer; the parent's file closed in the child
    finally:
        os.write(to_child, b"x")
        _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_an_unusable_directory_falls_back_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    writable = tmp_path / "shared"
    writable.mkdir()
    writable.chmod(0o777)
    with caplog.at_level(logging.WARNING, logger="confio_kms.pacing"):
        chosen = [
            pacing.pacer(SCOPE, QUOTA, str(link)),
            pacing.pacer(SCOPE, "another quota", str(link)),
            pacing.pacer(SCOPE, QUOTA, str(writable)),
        ]
    assert [type(p) for p in chosen] == [pacing.Pacer] * 3  # this process's own pacers
    assert list(real.iterdir()) == list(writable.iterdir()) == []
    [warning] = caplog.records  # one per process
    assert "is not a directory (a symlink" in warning.getMessage()
    assert "CONFIO_KMS_PACING_DIR" in warning.getMessage()
    assert isinstance(pacing.pacer(SCOPE, QUOTA, str(real)), pacing_shared.SharedPacer)


def test_the_pacing_directory_option_is_an_absolute_path() -> None:
    assert Options(pacing_dir="/run/confio").pacing_dir == "/run/confio"
    with pytest.raises(ConfigurationError, match="pacing_dir='relative'"):
        Options(pacing_dir="relative")


def test_a_wait_never_sleeps_a_negative_time(pacing_directory: Path) -> None:
    """Time passes between looking at the turn and sleeping (every reading of this clock
    moves it on): the sleep is never negative, which ``time.sleep`` refuses."""
    clock = Clock()
    a, b = two_processes(pacing_directory, clock)
    rate = throttle(a, clock)
    start = clock.now
    a.acquire(deadline=None)  # ticket 0: now; b's turns come one interval apart

    def stepping() -> float:
        clock.now += 0.011
        return clock.now

    def sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        clock.now += seconds

    b._clock, b._sleep = stepping, sleep
    for ticket in (1, 2, 3):
        assert b.acquire(deadline=None) >= start + ticket / rate
    assert b.acquire(deadline=None, arrived=start) > start  # a retry's fixed turn too


def test_the_pacing_directory_option_reaches_the_pacers(
    tmp_path: Path, native_key: Any, session: Any
) -> None:
    from confio_kms.core.aws import AWSClients

    created = native_key("n", "localnet")
    chosen = tmp_path / "chosen"
    aws = AWSClients(session=session, options=Options(pacing_dir=str(chosen)))
    aws.call("kms", "Sign", "n", KeyId=created.key_id, Message=b"m", MessageType="RAW",
             SigningAlgorithm="ED25519_SHA_512")  # fmt: skip
    assert [p.suffix for p in chosen.iterdir()] == [".pace"]  # the ECC quota's line


def test_the_pacing_directory_setting_builds_the_option(tmp_path: Path) -> None:
    from django.test import override_settings

    from confio_kms import settings as confio_settings

    assert confio_settings.options().pacing_dir is None  # the default directory
    with override_settings(CONFIO_KMS_PACING_DIR=str(tmp_path)):
        assert confio_settings.options().pacing_dir == str(tmp_path)
    with (
        override_settings(CONFIO_KMS_PACING_DIR="relative/dir"),
        pytest.raises(ConfigurationError, match="pacing_dir"),
    ):
        confio_settings.options()
