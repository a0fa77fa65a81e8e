"""Limits and the fleet-wide pause, against real databases and real processes.

In this process (SQLite in memory): a call over a limit is refused before any AWS
request, with the limit, window, use and end named, and audited; a call that fails at
AWS gives its reservation back. Across processes: worker processes (``python -c`` on
the test settings, the database given by ``CONFIO_TEST_DATABASE``) share a SQLite file,
or a throwaway PostgreSQL cluster when ``initdb`` is installed: 4 processes of 8
threads race for a limit and exactly the limit is signed; a ``kms_pause`` run in its own
process refuses a worker's next call. Steps are ordered through pipes, never by sleeping.
"""

from __future__ import annotations

import glob
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from algosdk import encoding, transaction
from django.core.management import call_command
from django.test import override_settings

from confio_kms import KMSSigner, sponsor_health
from confio_kms import settings as config
from confio_kms.common import exceptions
from confio_kms.core.guard import Demand, Limits
from confio_kms.core.options import Options
from confio_kms.guardrails import DatabaseGuard
from confio_kms.management.commands.kms_doctor import diagnose
from confio_kms.models import KeyPause, LimitUsage
from confio_kms.ops.doctor import Status
from confio_kms.sandbox import LocalLedger

from .helpers import LineWorker, inject_error

ALIAS = "guarded"
ROOT = Path(__file__).resolve().parents[1]
WAIT = 120  # seconds; only reached if a worker hangs
FEE = 1000  # each test payment's fee (the minimum)
# A window that ends in 2033: no test run straddles two windows.
WINDOW = 10**9

# A worker: on "race N", 8 threads each make N signing calls at once; on "sign NOTE",
# one call. Answers one JSON line: signed transactions and errors (type, limit).
_WORKER = r"""
import json, sys, threading
import django
django.setup()
import boto3
from algosdk import encoding, transaction
from confio_kms import KMSSigner
from confio_kms.sandbox import LocalLedger
signer = KMSSigner(sys.argv[1], session=boto3.Session())
address = signer.address
lock = threading.Lock()

def one(note, answer):
    sp = LocalLedger.suggested_params()
    txn = transaction.PaymentTxn(address, sp, address, 0, note=note.encode())
    try:
        signed = encoding.msgpack_encode(signer.sign_transaction(txn))
        with lock:
            answer["signed"].append(signed)
    except Exception as error:
        with lock:
            answer["errors"].append([type(error).__name__, getattr(error, "limit", ""),
                                     getattr(error, "reason", "")])

print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    command, _, argument = line.strip().partition(" ")
    answer = {"signed": [], "errors": []}
    if command == "race":
        start = threading.Barrier(8)
        def run(t):
            start.wait()
            for i in range(int(argument)):
                one(f"{sys.argv[2]}-{t}-{i}", answer)
        threads = [threading.Thread(target=run, args=(t,)) for t in range(8)]
        for thread in threads: thread.start()
        for thread in threads: thread.join()
    else:
        one(argument, answer)
    print(json.dumps(answer), flush=True)
"""


def _env(database: dict[str, Any], limits: dict[str, Any]) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "CONFIO_TEST_DATABASE": json.dumps(database),
        "CONFIO_KMS_LIMITS": json.dumps(limits),
    }


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``manage.py ARGS`` in a process of its own."""
    command = [sys.executable, "-m", "django", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=WAIT)


class Worker(LineWorker):
    def __init__(self, env: dict[str, str], tag: str) -> None:
        super().__init__(_WORKER, [ALIAS, tag], env)


def _postgres(root: Path) -> Iterator[dict[str, Any]]:
    """A PostgreSQL cluster of its own in ``root``, on a free loopback port."""
    # Debian's package keeps the binaries off PATH, in /usr/lib/postgresql/VERSION/bin.
    found = [shutil.which("initdb"), *sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))]
    initdb = next((path for path in found if path), None)
    if initdb is None:
        pytest.skip("PostgreSQL (initdb, pg_ctl) is not installed: `apt-get install postgresql`")
    pytest.importorskip("psycopg", reason="psycopg is not installed (the tests extra)")
    bin_dir = Path(os.path.realpath(initdb)).parent
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data = root / "pg"
    root.chmod(0o777)
    from .conftest import _free_port

    port = _free_port()
    run = [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
    subprocess.run(run, check=True, capture_output=True, timeout=WAIT)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    log = str(root / "pg.log")  # the server's output, not our pipe (pg_ctl would wait on it)
    start = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", log,
             "-w", "start"]  # fmt: skip
    subprocess.run(start, check=True, capture_output=True, timeout=WAIT)
    try:
        yield {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "postgres",
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": str(port),
        }
    finally:
        stop = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
        subprocess.run(stop, capture_output=True, timeout=WAIT)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A database shared by processes, migrated."""
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        if request.param == "sqlite":
            yield from _migrated({"ENGINE": "django.db.backends.sqlite3", "NAME": str(root / "db")})
        else:
            for setting in _postgres(root):
                yield from _migrated(setting)


def _migrated(database: dict[str, Any]) -> Iterator[dict[str, Any]]:
    done = manage(_env(database, {}), "migrate", "confio_kms", "-v", "0", "--skip-checks")
    assert done.returncode == 0, done.stderr
    yield database


def test_racing_processes_sign_exactly_the_limit_and_a_pause_stops_them(
    database: dict[str, Any], envelope_key: Any, ledger: LocalLedger
) -> None:
    """4 processes x 8 threads race for a fee limit of 10 calls' fees: exactly 10
    are signed (all accepted by the ledger), the 22 others refused, each one typed. Then
    kms_pause, run in a process of its own, has returned: a worker's next call is refused
    with the reason; after kms_resume, the limit refuses it again (no longer the pause)."""
    _, address = envelope_key(ALIAS)
    ledger.fund(address, 10_000_000)
    tag = database["ENGINE"].rsplit(".", 1)[1]
    env = _env(database, {ALIAS: {"window": WINDOW, "fees": 10 * FEE, "calls": 1000}})
    workers = [Worker(env, f"{tag}{n}") for n in range(4)]
    try:
        for worker in workers:
            assert worker.read() == {"ready": True}
        for worker in workers:
            worker.ask("race 1")
        answers = [worker.read() for worker in workers]
        paused = manage(env, "kms_pause", ALIAS, "--reason", "incident 7", "--yes", "--json")
        assert paused.returncode == 0, paused.stderr
        assert json.loads(paused.stdout) == {"alias": f"alias/{ALIAS}", "paused": True,
                                             "changed": True}  # fmt: skip
        workers[1].ask("sign during")
        assert workers[1].read()["errors"] == [["KeyPausedError", "", "incident 7"]]
        resumed = manage(env, "kms_resume", ALIAS, "--yes")
        assert resumed.returncode == 0, resumed.stderr
        workers[2].ask("sign after")
        assert workers[2].read()["errors"] == [["LimitExceededError", "fees", ""]]
    finally:
        for worker in workers:
            worker.close()
    signed = [encoding.msgpack_decode(s) for a in answers for s in a["signed"]]
    errors = [tuple(e) for a in answers for e in a["errors"]]
    assert len(signed) == 10
    assert errors == [("LimitExceededError", "fees", "")] * (32 - 10)
    ledger.evaluate(signed)  # every signature the race produced is valid
    assert sum(s.transaction.fee for s in signed) == 10 * FEE


def test_pause_needs_confirmation_without_a_terminal() -> None:
    memory = {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
    refused = manage(_env(memory, {}), "kms_pause", ALIAS, "--no-input")
    assert refused.returncode != 0
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "Not confirmed" in refused.stderr or "--yes" in refused.stderr


# In this process: the test settings' in-memory database.


def _signer(session: Any, limits: dict[str, Any], **settings: Any) -> KMSSigner:
    with override_settings(CONFIO_KMS_GUARD=True, CONFIO_KMS_LIMITS=limits, **settings):
        return KMSSigner(ALIAS, session=session)


def _payment(address: str, note: str, amount: int = 0) -> transaction.PaymentTxn:
    return transaction.PaymentTxn(
        address, LocalLedger.suggested_params(), address, amount, note=note.encode()
    )


@pytest.mark.django_db
def test_a_call_over_a_limit_is_refused_before_any_aws_request(
    session: Any, counter: Any, envelope_key: Any, ledger: LocalLedger, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, "confio_kms.audit")
    _, address = envelope_key(ALIAS)
    ledger.fund(address, 10_000_000)
    signer_limits = {ALIAS: {"window": WINDOW, "algos": 5, "end_user_calls": 1}}
    signer = _signer(session, signer_limits)
    ledger.evaluate([signer.sign_transaction(_payment(address, "a", 3))])
    counter.reset()
    with pytest.raises(exceptions.LimitExceededError) as raised:
        signer.sign_transaction(_payment(address, "b", 3))
    assert counter.total == 0
    error = raised.value
    assert (error.limit, error.window, error.used, error.maximum) == ("algos", WINDOW, 3, 5)
    assert error.frees_at == 2 * WINDOW
    assert "used 3" in str(error) and "2033-05-18T03:33:20+00:00" in str(error)
    refused = [r.audit for r in caplog.records if getattr(r, "audit", {}).get("outcome")]
    assert refused[-1]["outcome"] == "refused" and "algos" in refused[-1]["detail"]
    # Per end user: the second call of "u1" is refused, "u2" still signs.
    signer.sign_transactions([_payment(address, "c")], end_user="u1")
    with pytest.raises(exceptions.LimitExceededError, match="end user 'u1'"):
        signer.sign_transactions([_payment(address, "d")], end_user="u1")
    signer.sign_transactions([_payment(address, "e")], end_user="u2")
    # kms_sponsor_status shows each limit set and its use (end users: the most of any).
    with override_settings(CONFIO_KMS_GUARD=True, CONFIO_KMS_LIMITS=signer_limits):
        shown = sponsor_health.limits_in_use(ALIAS, address)
    assert [(s["name"], s["used"], s["limit"]) for s in shown] == [
        ("algos", 3, 5),
        ("end_user_calls", 1, 1),
    ]


@pytest.mark.django_db
def test_a_call_failing_at_aws_gives_its_reservation_back(
    session: Any, envelope_key: Any, ledger: LocalLedger
) -> None:
    _, address = envelope_key(ALIAS)
    ledger.fund(address, 10_000_000)
    failing = boto3.Session()  # faults are injected before its clients are built
    inject_error(failing, "ssm", "GetParameter", "InternalServerError", status=500)
    inject_error(failing, "kms", "Decrypt", "KMSInternalException", status=500)
    signer = _signer(failing, {ALIAS: {"window": WINDOW, "calls": 1}}, CONFIO_KMS_MAX_ATTEMPTS=1)
    with pytest.raises(exceptions.ConfioKMSError) as failed:
        signer.sign_transaction(_payment(address, "fails"))
    assert not isinstance(failed.value, exceptions.LimitExceededError)
    assert LimitUsage.objects.get(alias=ALIAS, limit="calls").used == 0
    fresh = _signer(boto3.Session(), {ALIAS: {"window": WINDOW, "calls": 1}})
    ledger.evaluate([fresh.sign_transaction(_payment(address, "signs"))])
    assert LimitUsage.objects.get(alias=ALIAS, limit="calls").used == 1


@pytest.mark.django_db
def test_a_paused_key_delegates_nothing_and_kms_list_shows_it(
    session: Any, counter: Any, envelope_key: Any
) -> None:
    envelope_key(ALIAS)
    KeyPause.objects.create(alias=ALIAS, reason="drill")
    signer = _signer(session, {})
    counter.reset()
    with pytest.raises(exceptions.KeyPausedError, match="drill"):
        signer.sign_logicsig(transaction.LogicSigAccount(b"\x06\x81\x01"))
    assert counter.total == 0
    listed = io.StringIO()
    with override_settings(CONFIO_KMS_GUARD=True):
        call_command("kms_list", "--json", stdout=listed)
    assert [row["paused"] for row in json.loads(listed.getvalue())] == [True]


def test_limits_are_checked_and_need_a_guard() -> None:
    with pytest.raises(exceptions.ConfigurationError, match="no guard"):
        Options(limits={ALIAS: Limits(calls=1)})
    with pytest.raises(exceptions.ConfigurationError, match="fees=-1"):
        Limits(fees=-1)
    with pytest.raises(exceptions.ConfigurationError, match="unknown"):
        Limits.of({"fee": 1}, "CONFIO_KMS_LIMITS['x']")
    with override_settings(CONFIO_KMS_LIMITS='{"k": {"assets": {"31566704": 10}}}'):
        assert config.limits() == {"k": Limits(assets={31566704: 10})}


@pytest.mark.django_db
def test_kms_doctor_warns_about_a_paused_configured_key() -> None:
    KeyPause.objects.create(alias="confio-testnet-sponsor", reason="drill")
    with override_settings(CONFIO_KMS_GUARD=True, USE_KMS_SIGNING=True):
        report = diagnose()
    (paused,) = [f for f in report.findings if f.check == "key.paused"]
    assert (paused.status, paused.subject) == (Status.WARN, "alias/confio-testnet-sponsor")
    assert "drill" in paused.message and "kms_resume confio-testnet-sponsor" in paused.fix


@pytest.mark.django_db
def test_a_call_that_makes_a_counter_row_is_counted_once() -> None:
    """A call whose end user is new finds the key's row but not the user's: what it
    added to the key's row is rolled back before the rows are made and it is retried."""
    guard = DatabaseGuard()
    guard.reserve(ALIAS, WINDOW, [Demand("calls", 1, 10)]).commit()
    both = [Demand("calls", 1, 10), Demand("end_user_calls", 1, 10, "new")]
    guard.reserve(ALIAS, WINDOW, both).commit()
    used = dict(LimitUsage.objects.values_list("limit", "used"))
    assert used == {"calls": 2, "end_user_calls": 1}
