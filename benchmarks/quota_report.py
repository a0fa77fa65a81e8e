"""The figures of benchmarks/quota_run.py and its markdown report (targets, reading).

Import-light on purpose (no Django, no boto3): quota_run.py measures, this module
only turns its cells into text.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COALESCE_SETTING = "CONFIO_KMS_COALESCE"
APPROACHES = {
    "old": "old approach (GetParameter WithDecryption per call)",
    "fallback": "KMSSigner via Parameter Store (fallback path)",
    "direct": "KMSSigner, direct KMS Decrypt",
    "direct-guard": "KMSSigner, direct, guard + limits (SQLite WAL)",
    "no-coalescing": "KMSSigner, direct, no coalescing",
    "native": "KMSSigner, native key (KMS Sign)",
    "native-adaptive": "KMSSigner, native key, adaptive retries, no pacing",
    "fallback-adaptive": "KMSSigner via Parameter Store, adaptive retries, no pacing",
    "native-unpaced": "KMSSigner, native key, no pacing",
    "fallback-unpaced": "KMSSigner via Parameter Store, no pacing",
}
# The coalescing setting each approach's workers get (None: not set).
COALESCE: dict[str, str | None] = {
    "old": None,
    "fallback": "true",
    "direct": "true",
    "direct-guard": "true",
    "no-coalescing": "false",
    "native": None,
    "native-adaptive": None,
    "fallback-adaptive": "true",
    "native-unpaced": None,
    "fallback-unpaced": "true",
}
PACING_SETTING = "CONFIO_KMS_PACING"
# The approaches whose workers run with pacing off (confio_kms.core.pacing; on by default).
UNPACED = frozenset({"native-adaptive", "fallback-adaptive", "native-unpaced", "fallback-unpaced"})
NATIVE = frozenset({"native", "native-adaptive", "native-unpaced"})
# Approaches whose workers sign through the guardrails (DatabaseGuard on a shared SQLite
# file in WAL mode, limits too high to refuse); every other approach runs without them.
GUARDED = frozenset({"direct-guard"})
SYNC = ((8, 1), (16, 1))  # (processes, threads): gunicorn sync / Celery prefork workers
THREADED = (4, 8)
TARGET_SYNC_MULTIPLE = 5  # sync workers 8 x 1: at least this many times the 40/s quota
TARGET_P99_MS = 250.0
BUSY = 0.9  # the machine's CPU at least this busy: the cell is CPU-bound
SECTION = "## Throughput under AWS quotas"


@dataclass
class Cell:
    approach: str
    processes: int
    threads: int
    seconds: float
    settle: float
    ecc_rate: float | None = None  # the KMS ECC quota in this cell, when not the run's
    wall: float = 0.0
    signatures: int = 0  # verified, in the window
    signatures_all: int = 0  # verified, warm-up, settling and tail included
    after_go: int = 0  # verified, from "go" to the end (CPU per signature)
    per_second: float = 0.0
    get_forwarded: int = 0  # GetParameter(s) in the window
    get_throttled: int = 0
    throttled_window: dict[str, int] = field(default_factory=dict)  # by operation
    requests_per_signature: float | None = None
    throttled_per_signature: float | None = None
    p50_ms: float | None = None
    mean_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    calls: int = 0
    per_process: list[int] = field(default_factory=list)  # each worker's signatures in the window
    throttling_errors: int = 0
    throttling: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    verify_failures: int = 0
    unfinished: int = 0
    warmup_errors: dict[str, int] = field(default_factory=dict)
    cpu_busy: float | None = None
    cpu_ceiling: float | None = None  # signatures/s were every core busy
    moto_busy: float | None = None  # moto's CPU over the cell's time, of one core
    worker_cpu_ms: float | None = None  # the workers' own CPU per signature (the library's side)
    guard_calls: int | None = None  # guarded cells: the calls the guard's counter took
    proxy_window: dict[str, Any] = field(default_factory=dict)
    proxy_all: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        scaled = f" (ECC quota {self.ecc_rate:g}/s)" if self.ecc_rate is not None else ""
        return APPROACHES[self.approach] + scaled

    @property
    def shape(self) -> str:
        return f"{self.processes} x {self.threads}"


def percentile(samples: list[float], q: int) -> float | None:
    """The q-th percentile (inclusive method), None without samples."""
    if not samples:
        return None
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _ratio(top: float | None, mean: float | None) -> str:
    return "—" if top is None or not mean else f"{top / mean:.2f}"


def _share(per_process: list[int]) -> str:
    """The slowest and fastest process's signatures (fairness between processes)."""
    return f"{min(per_process)}-{max(per_process)}" if per_process else "—"


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(errors.items())) or "0"


def find(cells: list[Cell], approach: str, shape: tuple[int, int]) -> Cell | None:
    for cell in cells:
        if (cell.approach, (cell.processes, cell.threads), cell.ecc_rate) == (
            approach,
            shape,
            None,
        ):
            return cell
    return None


def _cpu(cell: Cell) -> str:
    if cell.cpu_busy is None or cell.cpu_ceiling is None:
        return "—"
    bound = "CPU-bound, " if cell.cpu_busy >= BUSY else ""
    text = f"{bound}{cell.cpu_busy:.0%} busy; ceiling {_num(cell.cpu_ceiling)}/s"
    if cell.worker_cpu_ms is not None:
        text += f"; workers {_num(cell.worker_cpu_ms)} ms CPU/signature"
    if cell.moto_busy is not None and cell.moto_busy >= BUSY:
        # moto is one Python process: past one core (its GIL) it is the limit.
        text += f"; moto-bound ({cell.moto_busy:.0%} of a core)"
    elif cell.moto_busy is not None:
        text += f"; moto {cell.moto_busy:.0%} of a core"
    return text


def _verdict(ok: bool, cell: Cell | None = None, needed: float | None = None) -> str:
    if ok:
        return "met"
    ceiling = cell.cpu_ceiling if cell is not None else None
    if needed is not None and ceiling is not None and ceiling < needed:
        return "NOT met (beyond this machine: its CPU-bound ceiling is below the target)"
    if cell is not None and cell.cpu_busy is not None and cell.cpu_busy >= BUSY:
        return "NOT met (CPU-bound on this machine)"
    if cell is not None and cell.moto_busy is not None and cell.moto_busy >= BUSY:
        return "NOT met (moto-bound on this machine)"
    return "NOT met"


def targets(cells: list[Cell], rate: float) -> list[tuple[str, str, str]]:
    """(target, measured, verdict), computed from this run."""
    out: list[tuple[str, str, str]] = []
    sync = find(cells, "direct", SYNC[0])
    if sync is not None:
        out.append(
            (
                f"direct path, sync workers {sync.shape}: at least "
                f"{TARGET_SYNC_MULTIPLE}x the {rate:g}/s Parameter Store quota",
                f"{_num(sync.per_second)}/s = {sync.per_second / rate:.2f}x; {_cpu(sync)}",
                _verdict(
                    sync.per_second >= TARGET_SYNC_MULTIPLE * rate,
                    sync,
                    TARGET_SYNC_MULTIPLE * rate,
                ),
            )
        )
    direct = [c for c in cells if c.approach == "direct"]
    if direct:
        gets = sum(c.get_forwarded for c in direct)
        surfaced = sum(c.throttling_errors for c in direct)
        others = sum(sum(c.errors.values()) for c in direct)
        out.append(
            (
                "direct path: 0 GetParameter per signature after warm-up (every cell)",
                f"{gets} GetParameter in {len(direct)} measured windows",
                _verdict(gets == 0),
            )
        )
        out.append(
            (
                "direct path: 0 throttling errors surfaced (every cell)",
                f"{surfaced} surfaced" + (f"; {others} other errors" if others else ""),
                _verdict(surfaced == 0),
            )
        )
    top = find(cells, "direct", THREADED)
    if top is not None:
        out.append(
            (
                f"direct path, {top.shape}: p99 under {TARGET_P99_MS:g} ms",
                f"p99 {_num(top.p99_ms)} ms (p50 {_num(top.p50_ms)} ms)",
                _verdict(top.p99_ms is not None and top.p99_ms < TARGET_P99_MS, top),
            )
        )
    for approach in sorted(NATIVE):
        native = find(cells, approach, THREADED)
        if native is not None:
            out.append(
                (
                    f"{APPROACHES[approach]}, {native.shape}: 0 throttling errors surfaced",
                    f"{native.throttling_errors} surfaced, "
                    f"{sum(native.throttled_window.values())} throttled attempts in the window",
                    _verdict(native.throttling_errors == 0),
                )
            )
    signed = sum(c.signatures_all for c in cells)
    failed = sum(c.verify_failures for c in cells)
    out.append(
        (
            "every signature produced is verified (every cell, warm-up included)",
            f"{signed:,} signatures verified, {failed} failed verification",
            _verdict(failed == 0 and signed > 0),
        )
    )
    return out


def reading(cells: list[Cell], rate: float) -> str:
    """The 'Reading' paragraph, its figures taken from the run."""
    parts = []
    for shape in (*SYNC, THREADED):
        row = {a: find(cells, a, shape) for a in ("old", "fallback", "direct")}
        if any(row.values()):
            parts.append(
                f"At {shape[0]} x {shape[1]}: "
                + "; ".join(
                    f"{APPROACHES[a].split(' (')[0]} {_num(c.per_second)}/s, p99 "
                    f"{_num(c.p99_ms)} ms, {c.throttling_errors} throttling errors"
                    for a, c in row.items()
                    if c is not None
                )
                + "."
            )
    parts.append(
        f"Through Parameter Store (old approach, fallback path) every decrypt is a "
        f"GetParameter, so the fleet shares its {rate:g}/s quota; coalescing lifts the "
        "fallback path only as far as calls overlap in a process (none in sync workers). "
        "The direct path's decrypt is a kms:Decrypt, under KMS's symmetric quota "
        "(10,000/s emulated), which no cell comes near: on this machine the 2 cores "
        "(workers, proxy and moto together, and whatever else runs) are the limit; the "
        "CPU column gives each cell's share of them and its CPU-bound ceiling."
    )
    comparisons = (
        ("native", "native-adaptive", "pacing / botocore's adaptive retry mode"),
        ("fallback", "fallback-adaptive", "pacing / botocore's adaptive retry mode"),
        ("native", "native-unpaced", "pacing on / off"),
        ("fallback", "fallback-unpaced", "pacing on / off"),
    )
    for plain, paced, which in comparisons:
        for cell in cells:
            if cell.approach != plain:
                continue
            twin = next(
                (
                    c
                    for c in cells
                    if c.approach == paced
                    and (c.processes, c.threads, c.ecc_rate)
                    == (cell.processes, cell.threads, cell.ecc_rate)
                ),
                None,
            )
            if twin is None:
                continue
            parts.append(
                f"{cell.label} at {cell.shape}, {which}: "
                f"{_num(cell.per_second)} / {_num(twin.per_second)} signatures/s, p50 "
                f"{_num(cell.p50_ms)} / {_num(twin.p50_ms)} ms, p99 {_num(cell.p99_ms)} / "
                f"{_num(twin.p99_ms)} ms, throttled attempts in the window "
                f"{sum(cell.throttled_window.values())} / "
                f"{sum(twin.throttled_window.values())}, throttling errors surfaced "
                f"{cell.throttling_errors} / {twin.throttling_errors}."
            )
    return " ".join(parts)


def header(result: dict[str, Any]) -> list[str]:
    lib, end = result["library"], result["library_at_end"]
    proxy = result["proxy"]
    quotas = "; ".join(
        f"{q['name']} {q['rate']:g}/s, burst {q['burst']} ({', '.join(q['operations'])})"
        for q in proxy["quotas"]
    )
    changed = end["source_sha256"] != lib["source_sha256"]
    return [
        SECTION,
        "",
        f"Generated by `{result['command']}` on {result['date']}, against confio_kms at "
        f"commit {lib['commit'][:12]}"
        + (" with uncommitted changes in confio_kms/" if lib["modified"] else "")
        + f" (source fingerprint {lib['source_sha256']})"
        + ("; confio_kms/ CHANGED during the run" if changed else "")
        + (
            "; settings from the environment: "
            + ", ".join(f"`{k}={v}`" for k, v in sorted(result["settings"].items()))
            if result["settings"]
            else ""
        )
        + ".",
        "",
        f"Machine: {result['machine']}. {result.get('load', '')}".rstrip(),
        "",
        f"Endpoint: moto's server on loopback (a separate process, with the sandbox's "
        f"Ed25519 and Parameter Store stand-ins), behind benchmarks/quota_proxy.py (in "
        f"the benchmark's process), one token bucket per quota, shared by every client: "
        f"{quotas}. Over a quota, HTTP 400 `ThrottlingException` as the service answers, "
        f"without reaching moto. {proxy['delay_ms']:g} ms is added to every request, "
        f"throttled ones included. Every bucket is full when each cell starts.",
        "",
        f"Each cell: the processes (new Python processes) x threads sign single 0-ALGO "
        f"self-payments, one call after another, after one warm-up signature per thread "
        f"(outside the clock): {result['settle']:g} s of load, then the measured window "
        f"of {result['seconds']:g} s. Each process verifies every signature it gets. The "
        f"old approach gives each thread its own signer; KMSSigner's threads share one "
        f"per process. signatures/s: verified signatures completed inside the window / "
        f"the window. GetParameter/signature: requests the proxy forwarded inside the "
        f"window per such signature. Throttled attempts: requests the proxy throttled in "
        f"the window (any quota), retried by the library or not. Latency: calls started "
        f"inside the window. Throttling errors surfaced: calls that raised because of a "
        f"throttle, over every call of the cell. CPU: the workers', the proxy's and "
        f"moto's CPU time over the cell's time and {result['cores']} cores; ceiling: "
        f"signatures/s were every core busy at the measured CPU per signature; "
        f"CPU-bound: at least {BUSY:.0%} busy; workers: the worker processes' own "
        f"CPU (signer, verification, the benchmark loop; no proxy, no moto) per "
        f"signature; moto-bound: moto's one process (one core, its GIL) at least "
        f"{BUSY:.0%} busy.",
        "",
    ]


def markdown(result: dict[str, Any], cells: list[Cell]) -> str:
    lines = [
        *header(result),
        "| approach | processes x threads | signatures/s | GetParameter/signature "
        "| throttled attempts/signature | p50 ms | p99 ms | throttling errors surfaced "
        "| other errors | verification failures | CPU | mean ms | p99 / mean "
        "| signatures per process (slowest-fastest) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- "
        "| ---: | ---: | ---: |",
    ]
    for c in cells:
        lines.append(
            f"| {c.label} | {c.shape} | {_num(c.per_second)} "
            f"| {_num(c.requests_per_signature)} | {_num(c.throttled_per_signature)} "
            f"| {_num(c.p50_ms)} | {_num(c.p99_ms)} | {c.throttling_errors} "
            f"| {_errors(c.errors)} | {c.verify_failures} | {_cpu(c)} "
            f"| {_num(c.mean_ms)} | {_ratio(c.p99_ms, c.mean_ms)} | {_share(c.per_process)} |"
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


def main() -> None:
    """Render a report again from ``quota_run.py --json`` output (targets and reading
    recomputed): python benchmarks/quota_report.py RESULT.json OUT.md"""
    import json
    import sys

    result = json.loads(Path(sys.argv[1]).read_text())
    cells = [Cell(**c) for c in result.pop("cells")]
    rate = result["proxy"]["rate"]
    result["targets"], result["reading"] = targets(cells, rate), reading(cells, rate)
    write(markdown(result, cells), Path(sys.argv[2]), append=False)


if __name__ == "__main__":
    main()
