"""The cost of the guardrails per signing call: the pause read and the limit reservation.

    python benchmarks/guard.py [--calls 2000]

Measures ``confio_kms.core.guard.admit`` (what ``sign_group`` runs before any AWS
request) plus the reservation's commit, with ``confio_kms.guardrails.DatabaseGuard``
on a SQLite file and, when PostgreSQL's ``initdb`` is installed, on a throwaway local
cluster (TCP on loopback, default durability: every commit is flushed). SQLite twice:
its default journal (every commit fsynced) and WAL with ``synchronous=NORMAL``. Three
cases per database: no guard, the pause read only (no limits), and the pause plus
five limits (calls, fees, algos, end-user calls and fees: five conditional UPDATEs in
one transaction). PostgreSQL also with ``synchronous_commit=off`` (``pg-async``).
Prints the median and 90th percentile
per call in milliseconds. No AWS request is made: the guard's cost is what is added to
a signing call.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ADDRESS = "A" * 58  # not signed: only its fields are read
WAL = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"


def measure(database: dict[str, Any], calls: int) -> dict[str, dict[str, float]]:
    """In a process of its own (Django is configured once per process)."""
    import django
    from django.conf import settings

    settings.configure(
        DATABASES={"default": database},
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "confio_kms"],
        USE_TZ=True,
    )
    django.setup()
    from algosdk import transaction
    from django.core.management import call_command

    from confio_kms.core import guard
    from confio_kms.guardrails import DatabaseGuard

    call_command("migrate", "confio_kms", verbosity=0)
    sp = transaction.SuggestedParams(1000, 1, 1000, "x" * 44, "bench", flat_fee=True)
    txns = [transaction.PaymentTxn(ADDRESS, sp, ADDRESS, 1)]
    big = 10**15  # never reached: every call is admitted
    limits = guard.Limits(window=3600, fees=big, algos=big, calls=big,
                          end_user_calls=big, end_user_fees=big)  # fmt: skip
    cases = {
        "off": (None, None),
        "pause read": (DatabaseGuard(), None),
        "pause + 5 limits": (DatabaseGuard(), limits),
    }
    figures = {}
    for case, (chosen, case_limits) in cases.items():
        times = []
        for i in range(calls):
            start = time.perf_counter_ns()
            guard.admit(chosen, case_limits, "bench", txns, f"user{i % 50}").commit()
            times.append((time.perf_counter_ns() - start) / 1e6)
        times.sort()
        figures[case] = {
            "median_ms": round(statistics.median(times), 4),
            "p90_ms": round(times[int(len(times) * 0.9)], 4),
        }
    return figures


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def postgres(root: Path) -> Iterator[dict[str, Any] | None]:
    """A local PostgreSQL cluster, or None when it is not installed."""
    found = [shutil.which("initdb"), *sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))]
    initdb = next((path for path in found if path), None)
    if initdb is None:
        yield None
        return
    bin_dir = Path(os.path.realpath(initdb)).parent
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root.chmod(0o777)
    data, port = root / "pg", _free_port()
    subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust",
                    "-U", "postgres"], check=True, capture_output=True)  # fmt: skip
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                    str(root / "log"), "-w", "start"], check=True, capture_output=True)  # fmt: skip
    try:
        yield {"ENGINE": "django.db.backends.postgresql", "NAME": "postgres",
               "USER": "postgres", "HOST": "127.0.0.1", "PORT": str(port)}  # fmt: skip
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast",
                        "stop"], capture_output=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--database", help=argparse.SUPPRESS)  # the child process's
    args = parser.parse_args()
    if args.database:
        print(json.dumps(measure(json.loads(args.database), args.calls)))
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(root / "db")}
        # WAL with synchronous=NORMAL: a commit is not fsynced (the journal is, at checkpoints).
        wal = {**sqlite, "NAME": str(root / "wal"), "OPTIONS": {"init_command": WAL}}
        databases = {"sqlite": sqlite, "sqlite-wal": wal}
        with postgres(root) as pg:
            if pg is not None:
                databases["postgresql"] = pg
                # Commits that do not wait for the WAL flush (a crash may lose the last
                # fraction of a second of counts): what a dedicated connection could choose.
                async_commit = {"options": "-c synchronous_commit=off"}
                databases["pg-async"] = {**pg, "OPTIONS": async_commit}
            for name, database in databases.items():
                child = [sys.executable, __file__, "--calls", str(args.calls),
                         "--database", json.dumps(database)]  # fmt: skip
                done = subprocess.run(child, env=env, capture_output=True, text=True, check=True)
                results[name] = json.loads(done.stdout)
    print(f"{'database':<12}{'case':<20}{'median ms':>10}{'p90 ms':>10}")
    for name, figures in results.items():
        for case, figure in figures.items():
            print(f"{name:<12}{case:<20}{figure['median_ms']:>10}{figure['p90_ms']:>10}")
    if "postgresql" not in results:
        print("PostgreSQL is not installed (initdb): not measured.")


if __name__ == "__main__":
    main()
