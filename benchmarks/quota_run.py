"""Throughput under AWS quotas: envelope signing behind an emulated Parameter Store quota.

One run measures, for 1, 4 and 8 threads in 1 and 4 processes, three approaches:
the old approach (benchmarks/baseline.py: a new SSM client and a GetParameter per
transaction), KMSSigner without coalescing (``CONFIO_KMS_COALESCE=false``) and
KMSSigner with it (``CONFIO_KMS_COALESCE=true``). All requests go through
benchmarks/quota_proxy.py, a proxy on loopback in front of moto's server that
enforces a token bucket on GetParameter (40/s, burst 40 by default) and adds a round
trip (20 ms by default). Each cell's worker processes (benchmarks/quota_worker.py)
sign single 0-ALGO self-payments under load for a settling second and then a
measured window, and verify every signature.

Per cell: signatures/s sustained (signatures verified that completed inside the
window / the window), GetParameter requests the proxy forwarded inside the window
per such signature (throttled attempts apart), p50/p99 latency of the calls started
inside the window (failed ones included), throttling errors surfaced to the caller
(every call of the cell), and the issue's targets judged from the run. Other
``CONFIO_KMS_*`` settings in the environment reach the workers and are reported.

Run: python benchmarks/quota_run.py [--seconds 5] [--quick] [--out FILE] [--json FILE]
Writes a markdown section to --out (default: a new temporary directory; a tracked
file is only written when --out names it; --append adds the section to its end).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import secrets
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
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
from confio_kms import AlgorandKMSManager  # noqa: E402
from confio_kms.sandbox import DUMMY_CREDENTIALS, SANDBOX_REGION  # noqa: E402

CREDENTIALS = {
    "aws_access_key_id": DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
    "aws_secret_access_key": DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
}
COALESCE_SETTING = "CONFIO_KMS_COALESCE"
APPROACHES = {
    "old": "old approach",
    "no-coalescing": "KMSSigner, no coalescing",
    "coalescing": "KMSSigner, coalescing",
}
# The setting each approach's workers get in their environment (None: not set).
COALESCE = {"old": None, "no-coalescing": "false", "coalescing": "true"}
TARGET_PROCESSES, TARGET_THREADS = 4, 8
TARGET_MULTIPLE = 6  # sustained signatures/s at least this many times the quota
TARGET_P99_MS = 250.0
TARGET_REQUESTS = 0.25
GET_OPERATIONS = ("GetParameter", "GetParameters")


@dataclass
class Cell:
    approach: str
    processes: int
    threads: int
    seconds: float
    settle: float
    wall: float = 0.0
    signatures: int = 0  # verified, in the window
    signatures_all: int = 0  # verified, warm-up, settling and tail included
    per_second: float = 0.0
    get_forwarded: int = 0  # GetParameter(s) in the window
    get_throttled: int = 0
    requests_per_signature: float | None = None
    throttled_per_signature: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    calls: int = 0
    throttling_errors: int = 0
    throttling: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    verify_failures: int = 0
    unfinished: int = 0
    warmup_errors: dict[str, int] = field(default_factory=dict)
    cpu_busy: float | None = None
    proxy_window: dict[str, Any] = field(default_factory=dict)
    proxy_all: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return APPROACHES[self.approach]


def percentile(samples: list[float], q: int) -> float | None:
    """The q-th percentile (inclusive method), None without samples."""
    if not samples:
        return None
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


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
        if not k.startswith("AWS_") and k != COALESCE_SETTING and k != "KMS_REGION"
    }
    env.update(DUMMY_CREDENTIALS)
    env.update(
        AWS_DEFAULT_REGION=SANDBOX_REGION,
        AWS_ENDPOINT_URL=proxy_url,
        PYTHONWARNINGS="ignore",
    )
    if COALESCE[approach] is not None:
        env[COALESCE_SETTING] = str(COALESCE[approach])
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
            }
            log = logs / f"{cell.approach}-{cell.processes}x{cell.threads}-{number}.log"
            workers.append(Worker(job, env, log))
        for worker in workers:
            line = worker.read_line(args.startup_timeout).strip()
            if line != "ready":
                raise RuntimeError(f"a worker said {line[:200]!r} instead of ready")
        proxy.refill()  # every cell starts as after a quiet second
        before = proxy.stats()
        cpu_before = time.process_time() + (moto_cpu() if moto_cpu else 0.0)
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
        cpu_after = time.process_time() + (moto_cpu() if moto_cpu else 0.0)
    finally:
        for worker in workers:
            worker.close()
    cell.proxy_window = quota_proxy.stats_delta(window_start, window_end)
    cell.proxy_all = quota_proxy.stats_delta(before, after)
    latencies = sorted(x * 1000 for r in results for x in r["latencies"])
    cell.wall = max([cell.settle + cell.seconds] + [r["last_end"] for r in results])
    cell.signatures = sum(r["ok_in_window"] for r in results)
    cell.signatures_all = sum(r["ok"] + r["warmup_ok"] for r in results)
    cell.per_second = cell.signatures / cell.seconds
    window = cell.proxy_window
    cell.get_forwarded = sum(window["forwarded"].get(op, 0) for op in GET_OPERATIONS)
    cell.get_throttled = sum(window["throttled"].get(op, 0) for op in GET_OPERATIONS)
    if cell.signatures:
        cell.requests_per_signature = cell.get_forwarded / cell.signatures
        cell.throttled_per_signature = cell.get_throttled / cell.signatures
    cell.calls = len(latencies)
    cell.p50_ms = percentile(latencies, 50)
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
    # The workers' CPU from "go" to their last call, the proxy's (this process), moto's.
    busy = cpu_after - cpu_before + sum(r["cpu"] for r in results)
    cell.cpu_busy = busy / (cell.wall * (os.cpu_count() or 1))


# --- the report ----------------------------------------------------------------------


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(errors.items())) or "0"


def find(cells: list[Cell], approach: str, processes: int, threads: int) -> Cell | None:
    for cell in cells:
        if (cell.approach, cell.processes, cell.threads) == (approach, processes, threads):
            return cell
    return None


def targets(cells: list[Cell], rate: float) -> list[tuple[str, str, str]]:
    """(target, measured, verdict), computed from this run."""
    top = find(cells, "coalescing", TARGET_PROCESSES, TARGET_THREADS)
    ceiling = rate * TARGET_THREADS
    where = f"KMSSigner with coalescing, {TARGET_THREADS} threads x {TARGET_PROCESSES} processes"
    out: list[tuple[str, str, str]] = []
    if top is None:
        missing = f"not measured ({where} was not in this run)"
        out += [
            (f"sustained signatures/s at least {TARGET_MULTIPLE}x the quota", missing, "—"),
            (f"p99 under {TARGET_P99_MS:g} ms", missing, "—"),
            (f"requests per signature under load at most {TARGET_REQUESTS:g}", missing, "—"),
        ]
    else:
        multiple = top.per_second / rate
        out.append(
            (
                f"sustained signatures/s at least {TARGET_MULTIPLE}x the quota "
                f"({TARGET_MULTIPLE * rate:g}/s), {where}",
                f"{_num(top.per_second)}/s = {multiple:.2f}x the quota; "
                f"{top.per_second / ceiling:.0%} of the {TARGET_THREADS}x ceiling "
                f"({ceiling:g}/s)",
                "met" if top.per_second >= TARGET_MULTIPLE * rate else "NOT met",
            )
        )
        out.append(
            (
                f"p99 under {TARGET_P99_MS:g} ms, {where}",
                f"p99 {_num(top.p99_ms)} ms (p50 {_num(top.p50_ms)} ms)",
                "met"
                if top.p99_ms is not None and top.p99_ms < TARGET_P99_MS and top.signatures
                else "NOT met",
            )
        )
        rps = top.requests_per_signature
        out.append(
            (
                f"GetParameter requests per signature under load at most "
                f"{TARGET_REQUESTS:g}, {where}",
                f"{_num(rps)} forwarded per signature"
                + (
                    f", plus {_num(top.throttled_per_signature)} throttled attempts"
                    if top.get_throttled
                    else ", no throttled attempts"
                ),
                "met" if rps is not None and rps <= TARGET_REQUESTS else "NOT met",
            )
        )
    coalescing = [c for c in cells if c.approach == "coalescing"]
    if coalescing:
        surfaced = sum(c.throttling_errors for c in coalescing)
        others = sum(sum(c.errors.values()) for c in coalescing)
        where_surfaced = ", ".join(
            f"{c.throttling_errors} at {c.threads} threads x {c.processes} "
            f"process{'es' if c.processes != 1 else ''}"
            for c in coalescing
            if c.throttling_errors
        )
        out.append(
            (
                "zero throttling errors surfaced (KMSSigner with coalescing, every cell)",
                f"{surfaced} throttling errors surfaced in {len(coalescing)} cells"
                + (f" ({where_surfaced})" if where_surfaced else "")
                + (f"; {others} other errors" if others else ""),
                "met" if surfaced == 0 else "NOT met",
            )
        )
    signed = sum(c.signatures_all for c in cells)
    failed = sum(c.verify_failures for c in cells)
    out.append(
        (
            "every signature produced is verified (every cell, warm-up included)",
            f"{signed:,} signatures verified, {failed} failed verification",
            "met" if failed == 0 and signed > 0 else "NOT met",
        )
    )
    return out


def reading(cells: list[Cell], rate: float) -> str:
    """The 'Reading' paragraph, its figures taken from the run."""
    parts = []
    top = find(cells, "coalescing", TARGET_PROCESSES, TARGET_THREADS)
    plain = find(cells, "no-coalescing", TARGET_PROCESSES, TARGET_THREADS)
    old = find(cells, "old", TARGET_PROCESSES, TARGET_THREADS)
    ceiling = rate * TARGET_THREADS
    at = f"{TARGET_THREADS} threads x {TARGET_PROCESSES} processes"
    if top is not None:
        rps = top.requests_per_signature
        parts.append(
            f"With coalescing, {at} sustained {_num(top.per_second)} signatures/s, "
            f"{top.per_second / rate:.2f}x the quota of {rate:g} GetParameter/s: "
            f"{top.per_second / ceiling:.0%} of the {TARGET_THREADS}x ceiling "
            f"({ceiling:g}/s), at {_num(rps)} GetParameter requests per signature "
            f"(1/{TARGET_THREADS} = {1 / TARGET_THREADS:g} would be every decrypt "
            f"serving all {TARGET_THREADS} calls of its process)."
            + (
                " Above the ceiling: tokens of the initial burst were left when the window began."
                if top.per_second > ceiling
                else ""
            )
        )
        if top.cpu_busy is not None and top.cpu_busy >= 0.8:
            parts.append(
                f"The machine's CPU was {top.cpu_busy:.0%} busy in that cell (workers, "
                "proxy and moto share its cores), so part of the shortfall is this "
                "machine, not the quota."
            )
        if top.p99_ms is not None and top.p99_ms >= TARGET_P99_MS and top.get_throttled:
            parts.append(
                f"Its p99 of {_num(top.p99_ms)} ms against a p50 of {_num(top.p50_ms)} ms "
                f"is the calls whose decrypt was throttled and retried after a backoff: "
                f"{top.get_throttled} throttled attempts in the window "
                f"({_num(top.throttled_per_signature)} per signature). Shorter backoffs "
                f"after a throttle, or pacing GetParameter to the quota, lower it."
            )
        plain_rps = plain.requests_per_signature if plain is not None else None
        if rps is not None and plain_rps and rps >= 0.9 * plain_rps:
            parts.append(
                f"Coalescing made no difference at the measured library version "
                f"({_num(rps)} against {_num(plain_rps)} requests per signature "
                f"without it): {COALESCE_SETTING} had no effect."
            )
    if plain is not None:
        parts.append(
            f"Without coalescing, each signature costs a GetParameter, so the quota "
            f"caps the whole fleet: {_num(plain.per_second)} signatures/s at {at}, "
            f"{plain.throttling_errors} throttling errors surfaced, p99 "
            f"{_num(plain.p99_ms)} ms."
        )
    if old is not None:
        parts.append(
            f"The old approach (a new client and a GetParameter per transaction): "
            f"{_num(old.per_second)} signatures/s at {at}, {old.throttling_errors} "
            f"throttling errors surfaced, p99 {_num(old.p99_ms)} ms."
        )
    parts.append(
        "Coalescing alone is capped by the calls in flight per process: one decrypt "
        "serves at most the calls waiting on it, so the ceiling is the quota times the "
        "calls in flight per process. What raises it further: more calls in flight per "
        "process (more threads, or batching transactions into one signing call, which "
        "is one decrypt for up to 16); Parameter Store's higher-throughput setting, "
        "which raises the GetParameter quota itself (billed per request); or native "
        "keys, whose KMS Sign requests count against KMS's separate request quota for "
        "asymmetric keys, not Parameter Store's."
    )
    return " ".join(parts)


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


SECTION = "## Throughput under AWS quotas"


def markdown(result: dict[str, Any], cells: list[Cell]) -> str:
    proxy = result["proxy"]
    lib, end = result["library"], result["library_at_end"]
    rate = proxy["rate"]
    lines = [
        SECTION,
        "",
        f"Generated by `{result['command']}` on {result['date']}, against "
        f"confio_kms at commit {lib['commit'][:12]}"
        + (" with uncommitted changes in confio_kms/" if lib["modified"] else "")
        + f" (source fingerprint {lib['source_sha256']}; the library "
        f"{'reads' if lib['reads_coalesce_setting'] else 'does not read'} "
        f"`{COALESCE_SETTING}`)"
        + (
            f"; confio_kms/ CHANGED during the run (fingerprint at the end "
            f"{end['source_sha256']}, commit {end['commit'][:12]}): cells may have "
            f"measured different code"
            if end["source_sha256"] != lib["source_sha256"]
            else ""
        )
        + (
            "; settings from the environment: "
            + ", ".join(f"`{k}={v}`" for k, v in sorted(result["settings"].items()))
            if result["settings"]
            else ""
        )
        + ".",
        "",
        f"Machine: {result['machine']}.",
        "",
        f"Endpoint: moto's server on loopback (a separate process), behind "
        f"benchmarks/quota_proxy.py (in the benchmark's process): a token bucket of "
        f"{rate:g} requests/s, burst {proxy['burst']}, shared by every client, for "
        f"{' and '.join(t.split('.')[-1] for t in proxy['throttled'])} (Parameter "
        f"Store's documented standard throughput is 40 transactions/s; AWS documents "
        f"no burst, the burst here is one second of the rate); over it, HTTP 400 "
        f'`ThrottlingException` "Rate exceeded", as AWS answers, without reaching '
        f"moto. {proxy['delay_ms']:g} ms is added to every request, throttled ones "
        f"included (half before the quota is checked, half after the answer). The "
        f"bucket is full when each cell starts.",
        "",
        f"Each cell: the processes (new Python processes) with their threads sign single "
        f"0-ALGO self-payments, one call after another, after one warm-up signature per "
        f"thread: {result['settle']:g} s of load that drains the burst, then the "
        f"measured window of {result['seconds']:g} s; calls still running at its end "
        f"are waited for. Each process verifies every signature it gets (the account's "
        f"public key, over the transaction's bytes to sign). The old approach gives "
        f"each thread its own signer; KMSSigner's threads share one per process. "
        f"signatures/s: verified signatures completed inside the window / the window. "
        f"GetParameter/signature: requests the proxy forwarded inside the window per "
        f"such signature; throttled attempts apart. Latency: the calls started inside "
        f"the window, failed ones included. Throttling errors surfaced: calls that "
        f"raised because of a ThrottlingException, and other errors by type, over every "
        f"call of the cell. CPU: the workers', the proxy's and moto's CPU time over the "
        f"cell's time and {os.cpu_count()} cores.",
        "",
        "| approach | processes | threads | signatures/s | GetParameter/signature "
        "| throttled attempts/signature | p50 ms | p99 ms | throttling errors surfaced "
        "| other errors | verification failures | CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for c in cells:
        lines.append(
            f"| {c.label} | {c.processes} | {c.threads} | {_num(c.per_second)} "
            f"| {_num(c.requests_per_signature)} | {_num(c.throttled_per_signature)} "
            f"| {_num(c.p50_ms)} | {_num(c.p99_ms)} | {c.throttling_errors} "
            f"| {_errors(c.errors)} | {c.verify_failures} "
            f"| {'—' if c.cpu_busy is None else f'{c.cpu_busy:.0%}'} |"
        )
    notes = []
    unfinished = sum(c.unfinished for c in cells)
    if unfinished:
        notes.append(
            f"{unfinished} calls were still running {result['grace']:g} s after their "
            f"cell ended and are not counted."
        )
    warm = sum(sum(c.warmup_errors.values()) for c in cells)
    if warm:
        notes.append(f"{warm} warm-up calls failed (before the clock, not counted).")
    if notes:
        lines += ["", " ".join(notes)]
    lines += ["", "| target | measured | result |", "| --- | --- | --- |"]
    lines += [f"| {t} | {m} | {v} |" for t, m, v in result["targets"]]
    lines += ["", "### Reading", "", result["reading"], ""]
    return "\n".join(lines)


def write(page: str, out: Path, append: bool) -> None:
    """The section to ``out``; with ``append``, at the end of what ``out`` holds,
    replacing a section this command wrote there before."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if append and out.exists():
        text = out.read_text()
        if SECTION in text:
            text = text[: text.index(SECTION)]
        page = text.rstrip("\n") + "\n\n" + page
    out.write_text(page)


def parse_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> None:
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
    parser.add_argument(
        "--delay-ms", type=float, default=quota_proxy.DEFAULT_DELAY * 1000, help="added round trip"
    )
    parser.add_argument("--processes", type=parse_list, default=[1, 4])
    parser.add_argument("--threads", type=parse_list, default=[1, 4, 8])
    parser.add_argument(
        "--approaches",
        type=lambda s: [a for a in s.split(",") if a],
        default=list(APPROACHES),
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
    workdir = Path(tempfile.mkdtemp(prefix="confio-quota-"))
    out = args.out or workdir / "benchmarks-quota.md"
    logs = workdir / "logs"
    logs.mkdir()
    cells = [
        Cell(approach, processes, threads, args.seconds, args.settle)
        for approach in args.approaches
        for processes in args.processes
        for threads in args.threads
    ]
    began = time.perf_counter()
    library_at_start = library_version()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with endpoint.local_aws(ed25519=False) as moto:
            session = boto3.Session(
                aws_access_key_id=CREDENTIALS["aws_access_key_id"],
                aws_secret_access_key=CREDENTIALS["aws_secret_access_key"],
            )
            manager = AlgorandKMSManager(SANDBOX_REGION, endpoint_url=moto.url, session=session)
            private_key, address = account.generate_account()
            alias = f"confio-bench-quota-{secrets.token_hex(4)}"
            manager.import_existing_key(
                alias, mnemonic.from_private_key(private_key), network="testnet"
            )
            key = {"alias": alias, "address": address}
            with quota_proxy.QuotaProxy(
                moto.url, rate=args.rate, burst=args.burst, delay=args.delay_ms / 1000
            ) as proxy:
                print(f"moto {moto.url}, proxy {proxy.url} ({proxy.settings})", flush=True)
                for cell in cells:
                    run_cell(cell, proxy, moto.cpu_reader(), key, args, logs)
                    print(
                        f"  {cell.label:<26} {cell.processes}x{cell.threads}: "
                        f"{cell.per_second:8.1f} sig/s, "
                        f"{_num(cell.requests_per_signature)} req/sig, "
                        f"p99 {_num(cell.p99_ms)} ms, "
                        f"{cell.throttling_errors} throttling errors, "
                        f"{cell.verify_failures} verification failures",
                        flush=True,
                    )
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
