"""Throughput under AWS quotas: envelope and native signing behind emulated quotas.

All requests go through benchmarks/quota_proxy.py, a proxy on loopback in front of
moto's server that emulates each AWS quota with its own token bucket (Parameter
Store 40/s, KMS symmetric 10,000/s, KMS ECC 1,000/s by default) and adds a round trip
(20 ms by default). One run measures, in sync-worker cells (8 and 16 processes x 1
thread) and the threaded cell (4 processes x 8 threads), the old approach
(benchmarks/baseline.py: a new SSM client and a GetParameter WithDecryption per
transaction), KMSSigner through Parameter Store (the fallback path, forced in the
workers as for a parameter KMS will not decrypt directly) and KMSSigner's direct
path (one kms:Decrypt of the kept ciphertext per call), and with ``--approaches
direct-guard`` that direct path through the guardrails (DatabaseGuard on a shared
SQLite file in WAL mode, limits set but never reached; the other approaches run with
the guard off); then native keys (KMS Sign,
the ECC quota) at 4 x 8, with and without botocore's adaptive retry mode, at the
ECC quota and at one scaled down so it binds on this machine (``--ecc-scaled``).
Pacing (``confio_kms.core.pacing``) is on in every approach except the ``-unpaced``
ones and the ``-adaptive`` ones, whose workers get ``CONFIO_KMS_PACING=false``.
Approaches and their labels: benchmarks/quota_report.py's ``APPROACHES``.

Each cell's worker processes (benchmarks/quota_worker.py) sign single 0-ALGO
self-payments under load for a settling second and then a measured window, and
verify every signature. The figures and the report: benchmarks/quota_report.py.

Run: python benchmarks/quota_run.py [--seconds 5] [--quick] [--out FILE] [--json FILE]
Writes a markdown section to --out (default: a new temporary directory; a tracked
file is only written when --out names it; --append adds the section to its end).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import re
import secrets
import selectors
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import django  # noqa: E402
from django.conf import settings  # noqa: E402

settings.configure(
    # Processes sharing a cache share SECRET_KEY, as a deployment does: entries are
    # authenticated under a key derived from it.
    SECRET_KEY="confio-kms-benchmarks-shared-secret-key",
    INSTALLED_APPS=["confio_kms"],
    CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    USE_TZ=True,
)
django.setup()

from algosdk import account, mnemonic  # noqa: E402

from benchmarks import endpoint, quota_proxy  # noqa: E402
from benchmarks.quota_report import (  # noqa: E402
    APPROACHES,
    COALESCE,
    COALESCE_SETTING,
    GUARDED,
    NATIVE,
    PACING_SETTING,
    UNPACED,
    Cell,
    markdown,
    percentile,
    reading,
    targets,
    write,
)
from confio_kms import AlgorandKMSManager  # noqa: E402
from confio_kms.sandbox import DUMMY_CREDENTIALS, SANDBOX_REGION  # noqa: E402

CREDENTIALS = {
    "aws_access_key_id": DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
    "aws_secret_access_key": DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
}
GET_OPERATIONS = ("GetParameter", "GetParameters")
# The guarded cells' limits: set (so every call takes two conditional UPDATEs, calls and
# fees; a 0-ALGO payment asks nothing of ``algos``) but never reached.
NEVER = 10**15
WAL = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"


class Worker:
    """One worker process and its line protocol."""

    def __init__(self, job: dict[str, Any], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._stderr = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / "quota_worker.py"), json.dumps(job)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
        )

    def read_line(self, timeout: float) -> str:
        """The worker's next line; raises if it exits or stays silent past ``timeout``."""
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise RuntimeError(f"a worker said nothing for {timeout:g} s ({self.log})")
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=10)
            tail = self.log.read_text().strip().splitlines()[-5:]
            raise RuntimeError("a worker exited: " + " | ".join(tail))
        return line

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(timeout=10)
        self._stderr.close()


def worker_env(approach: str, proxy_url: str) -> dict[str, str]:
    """The parent's environment without AWS_* and the coalescing setting, pointed at
    the proxy with dummy credentials; the approach's setting added."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") and k not in (COALESCE_SETTING, PACING_SETTING, "KMS_REGION")
    }
    env.update(DUMMY_CREDENTIALS)
    env.update(
        AWS_DEFAULT_REGION=SANDBOX_REGION,
        AWS_ENDPOINT_URL=proxy_url,
        PYTHONWARNINGS="ignore",
    )
    setting = COALESCE[approach]
    if setting is not None:
        env[COALESCE_SETTING] = setting
    if approach in UNPACED:
        env[PACING_SETTING] = "false"
    return env


def run_cell(
    cell: Cell,
    proxy: quota_proxy.QuotaProxy,
    moto_cpu: Any,
    key: dict[str, str],
    args: argparse.Namespace,
    logs: Path,
) -> None:
    env = worker_env(cell.approach, proxy.url)
    guarded = guard_job(cell, key, logs) if cell.approach in GUARDED else {}
    workers: list[Worker] = []
    try:
        for number in range(cell.processes):
            job = {
                "approach": cell.approach,
                "alias": key["alias"],
                "address": key["address"],
                "region": SANDBOX_REGION,
                "endpoint": proxy.url,
                "credentials": CREDENTIALS,
                "threads": cell.threads,
                "seconds": cell.seconds,
                "settle": cell.settle,
                "grace": args.grace,
                "worker": number,
                **guarded,
            }
            log = (
                logs
                / f"{cell.approach}-{cell.processes}x{cell.threads}-{cell.ecc_rate}-{number}.log"
            )
            workers.append(Worker(job, env, log))
        for worker in workers:
            line = worker.read_line(args.startup_timeout).strip()
            if line != "ready":
                raise RuntimeError(f"a worker said {line[:200]!r} instead of ready")
        set_ecc_rate(proxy, cell.ecc_rate or args.ecc_rate)
        proxy.refill()  # every cell starts as after a quiet second
        before = proxy.stats()
        moto_before = moto_cpu() if moto_cpu else 0.0
        cpu_before = time.process_time() + moto_before
        for worker in workers:
            worker.send("go")
        # The workers' window is [go + settle, go + settle + seconds] on their clocks;
        # the proxy's counts are read at the same moments on this one.
        began = time.perf_counter()
        time.sleep(cell.settle)
        window_start = proxy.stats()
        time.sleep(max(0.0, began + cell.settle + cell.seconds - time.perf_counter()))
        window_end = proxy.stats()
        wait = cell.settle + cell.seconds + args.grace + 60
        results = [json.loads(worker.read_line(wait)) for worker in workers]
        after = proxy.stats()
        moto_after = moto_cpu() if moto_cpu else 0.0
        cpu_after = time.process_time() + moto_after
    finally:
        for worker in workers:
            worker.close()
    cell.proxy_window = quota_proxy.stats_delta(window_start, window_end)
    cell.proxy_all = quota_proxy.stats_delta(before, after)
    # The workers' CPU from "go" to their last call, the proxy's (this process), moto's.
    busy = cpu_after - cpu_before + sum(r["cpu"] for r in results)
    tally(cell, results, busy)
    if guarded:
        cell.guard_calls = counted_calls(guarded["database"]["NAME"])
    cell.moto_busy = (moto_after - moto_before) / cell.wall if moto_cpu else None


def guard_job(cell: Cell, key: dict[str, str], logs: Path) -> dict[str, Any]:
    """What a guarded cell's workers add to their job: a new SQLite file in WAL mode
    that every worker shares (its tables made once, here, before they start) and
    limits on the key that no call reaches."""
    path = logs / f"guard-{cell.processes}x{cell.threads}-{secrets.token_hex(4)}.sqlite3"
    # A busy writer makes the others wait (timeout, s) rather than fail.
    database = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path),
                "OPTIONS": {"init_command": WAL, "timeout": 60}}  # fmt: skip
    limits = {key["alias"]: {"window": 3600, "calls": NEVER, "fees": NEVER, "algos": NEVER}}
    job = {"database": database, "limits": limits}
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "quota_worker.py"),
         json.dumps({**job, "migrate": True})],
        cwd=ROOT, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return job


def counted_calls(path: str) -> int:
    """The calls the guard counted in a guarded cell's database (every window's)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        [(total,)] = db.execute(
            "SELECT COALESCE(SUM(used), 0) FROM confio_kms_limitusage WHERE \"limit\" = 'calls'"
        ).fetchall()
    return int(total)


def set_ecc_rate(proxy: quota_proxy.QuotaProxy, rate: float) -> None:
    """The KMS ECC quota for the next cell (burst: one second of it)."""
    for quota in proxy.quotas:
        if quota.name == "KMS ECC":
            quota.bucket.rate, quota.bucket.burst = float(rate), max(1, int(rate))


def tally(cell: Cell, results: list[dict[str, Any]], busy: float) -> None:
    """The cell's figures from its workers' results and the proxy's counts."""
    latencies = sorted(x * 1000 for r in results for x in r["latencies"])
    cell.wall = max([cell.settle + cell.seconds] + [r["last_end"] for r in results])
    cell.signatures = sum(r["ok_in_window"] for r in results)
    cell.signatures_all = sum(r["ok"] + r["warmup_ok"] for r in results)
    cell.after_go = sum(r["ok"] for r in results)
    cell.per_second = cell.signatures / cell.seconds
    window = cell.proxy_window
    cell.get_forwarded = sum(window["forwarded"].get(op, 0) for op in GET_OPERATIONS)
    cell.get_throttled = sum(window["throttled"].get(op, 0) for op in GET_OPERATIONS)
    cell.throttled_window = dict(window["throttled"])
    if cell.signatures:
        cell.requests_per_signature = cell.get_forwarded / cell.signatures
        cell.throttled_per_signature = sum(cell.throttled_window.values()) / cell.signatures
    cell.calls = len(latencies)
    cell.p50_ms = percentile(latencies, 50)
    cell.mean_ms = sum(latencies) / len(latencies) if latencies else None
    cell.per_process = [r["ok_in_window"] for r in results]
    cell.p90_ms = percentile(latencies, 90)
    cell.p99_ms = percentile(latencies, 99)
    cell.max_ms = latencies[-1] if latencies else None
    for r in results:
        for mine, theirs in (
            (cell.errors, r["errors"]),
            (cell.throttling, r["throttling"]),
            (cell.warmup_errors, r["warmup_errors"]),
        ):
            for name, count in theirs.items():
                mine[name] = mine.get(name, 0) + count
    cell.throttling_errors = sum(cell.throttling.values())
    cell.verify_failures = sum(r["verify_failures"] for r in results)
    cell.unfinished = sum(r["unfinished"] for r in results)
    cores = os.cpu_count() or 1
    cell.cpu_busy = busy / (cell.wall * cores)
    if busy > 0 and cell.after_go:
        cell.cpu_ceiling = cores * cell.after_go / busy  # every core busy, same CPU/signature
        cell.worker_cpu_ms = 1000 * sum(r["cpu"] for r in results) / cell.after_go


# --- the run's facts ----------------------------------------------------------------


def library_version() -> dict[str, Any]:
    """The commit checked out, whether confio_kms/ differs from it, a fingerprint of
    its source (to tell whether it changed during the run), and whether the library
    reads the coalescing setting at all (the setting's name as a string literal)."""

    def git(*argv: str) -> str:
        try:
            out = subprocess.run(
                ["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""

    digest = hashlib.sha256()
    source = ""
    for path in sorted((ROOT / "confio_kms").rglob("*.py")):
        text = path.read_text(errors="replace")
        digest.update(f"{path.relative_to(ROOT)}\0{text}\0".encode())
        source += text
    return {
        "commit": git("rev-parse", "HEAD") or "unknown",
        "modified": bool(git("status", "--porcelain", "--", "confio_kms")),
        "source_sha256": digest.hexdigest()[:16],
        "reads_coalesce_setting": bool(re.search(rf"[\"']{COALESCE_SETTING}[\"']", source)),
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, boto3 {boto3.__version__}"
    )


def parse_cells(text: str) -> list[tuple[int, int]]:
    """ "8x1,4x8" -> [(8, 1), (4, 8)]: processes x threads."""
    cells = []
    for item in text.split(","):
        if item.strip():
            processes, threads = item.lower().split("x")
            cells.append((int(processes), int(threads)))
    return cells


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per cell")
    parser.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="seconds of load before each cell's measured window (the burst drains)",
    )
    parser.add_argument("--quick", action="store_true", help="0.5 s settling, 1 s measured")
    parser.add_argument("--rate", type=float, default=quota_proxy.DEFAULT_RATE)
    parser.add_argument("--burst", type=int, default=quota_proxy.DEFAULT_BURST)
    parser.add_argument("--kms-rate", type=float, default=quota_proxy.KMS_SYMMETRIC_RATE)
    parser.add_argument("--ecc-rate", type=float, default=quota_proxy.KMS_ECC_RATE)
    parser.add_argument(
        "--ecc-scaled",
        type=float,
        default=40.0,
        help="native cells again at this ECC quota, low enough to bind here (0: not)",
    )
    parser.add_argument(
        "--delay-ms", type=float, default=quota_proxy.DEFAULT_DELAY * 1000, help="added round trip"
    )
    parser.add_argument(
        "--cells", type=parse_cells, default=parse_cells("8x1,16x1,4x8"), help="envelope cells"
    )
    parser.add_argument("--native-cells", type=parse_cells, default=parse_cells("4x8"))
    parser.add_argument(
        "--approaches",
        type=lambda s: [a for a in s.split(",") if a],
        default=["old", "fallback", "direct", "native", "native-adaptive"],
        help="comma-separated, of: " + ", ".join(APPROACHES),
    )
    parser.add_argument(
        "--grace", type=float, default=20.0, help="seconds a call may run past its cell"
    )
    parser.add_argument("--startup-timeout", type=float, default=120.0)
    parser.add_argument("--out", type=Path, help="markdown file (default: a new temp dir)")
    parser.add_argument("--append", action="store_true", help="append the section to --out")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    if args.quick:
        args.settle, args.seconds = 0.5, 1.0
    unknown = [a for a in args.approaches if a not in APPROACHES]
    if unknown:
        parser.error(f"unknown approaches: {', '.join(unknown)}")
    return args


def plan(args: argparse.Namespace) -> list[Cell]:
    """Envelope approaches in ``--cells``; native ones in ``--native-cells``, at the ECC
    quota and, with ``--ecc-scaled``, again at that lower one."""
    cells = []
    for approach in args.approaches:
        native = approach in NATIVE
        for processes, threads in args.native_cells if native else args.cells:
            cells.append(Cell(approach, processes, threads, args.seconds, args.settle))
    if args.ecc_scaled:
        cells += [
            Cell(c.approach, c.processes, c.threads, c.seconds, c.settle, args.ecc_scaled)
            for c in cells
            if c.approach in NATIVE
        ]
    return cells


def make_keys(url: str, approaches: list[str]) -> dict[str, dict[str, str]]:
    """An envelope key (imported) and, for native approaches, a native key, made
    straight against moto (not through the proxy)."""
    session = boto3.Session(
        aws_access_key_id=CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=CREDENTIALS["aws_secret_access_key"],
    )
    manager = AlgorandKMSManager(SANDBOX_REGION, endpoint_url=url, session=session)
    private_key, address = account.generate_account()
    alias = f"confio-bench-quota-{secrets.token_hex(4)}"
    manager.import_existing_key(alias, mnemonic.from_private_key(private_key), network="testnet")
    keys = {"envelope": {"alias": alias, "address": address}}
    if NATIVE & set(approaches):
        alias = f"confio-bench-native-{secrets.token_hex(4)}"
        created = manager.create_algorand_key(alias, native=True, network="testnet")
        keys["native"] = {"alias": alias, "address": created[1]}
    return keys


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"Load average when the run began: {one:.1f} (1 min), {five:.1f} (5 min)"


def main() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="confio-quota-"))
    out = args.out or workdir / "benchmarks-quota.md"
    logs = workdir / "logs"
    logs.mkdir()
    cells = plan(args)
    began = time.perf_counter()
    library_at_start = library_version()
    load_at_start = load()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with endpoint.local_aws(ed25519=bool(NATIVE & set(args.approaches))) as moto:
            keys = make_keys(moto.url, args.approaches)
            with quota_proxy.QuotaProxy(
                moto.url,
                rate=args.rate,
                burst=args.burst,
                delay=args.delay_ms / 1000,
                kms_rate=args.kms_rate,
                ecc_rate=args.ecc_rate,
            ) as proxy:
                print(f"moto {moto.url}, proxy {proxy.url} ({proxy.settings})", flush=True)
                for cell in cells:
                    key = keys["native" if cell.approach in NATIVE else "envelope"]
                    run_cell(cell, proxy, moto.cpu_reader(), key, args, logs)
                    print(
                        f"  {cell.label:<50} {cell.shape}: {cell.per_second:8.1f} sig/s, "
                        f"{cell.requests_per_signature} GetParameter/sig, "
                        f"p50 {cell.p50_ms} p99 {cell.p99_ms} mean {cell.mean_ms} ms, "
                        f"per process {cell.per_process}, "
                        f"{cell.throttling_errors} throttling errors, "
                        f"throttled {cell.throttled_window}, CPU {cell.cpu_busy}, "
                        f"{cell.verify_failures} verification failures",
                        flush=True,
                    )
                set_ecc_rate(proxy, args.ecc_rate)
                settings_used = proxy.settings
    result: dict[str, Any] = {
        "command": " ".join(["python benchmarks/quota_run.py", *sys.argv[1:]]),
        "settings": {
            k: v
            for k, v in os.environ.items()
            if k.startswith("CONFIO_KMS_") and k != COALESCE_SETTING
        },
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "load": f"{load_at_start}; at its end: {load().split(': ', 1)[1]}.",
        "cores": os.cpu_count(),
        "library": library_at_start,
        "library_at_end": library_version(),
        "proxy": settings_used,
        "seconds": args.seconds,
        "settle": args.settle,
        "grace": args.grace,
        "elapsed": time.perf_counter() - began,
        "targets": targets(cells, args.rate),
        "reading": reading(cells, args.rate),
    }
    write(markdown(result, cells), out, args.append)
    print(f"report: {out} ({result['elapsed']:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result["cells"] = [asdict(c) for c in cells]
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
