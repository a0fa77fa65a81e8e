"""Soak and fault benchmark: a fleet signing through faults and a rotation.

N worker processes (benchmarks/soak_worker.py) x M threads sign single 0-ALGO
payments and groups of 16 from one envelope-key account, through
benchmarks/quota_proxy.py (Parameter Store's GetParameter quota and a round trip) in
front of moto's server (benchmarks/endpoint.py), for a chosen duration. The
processes share one Django cache: a FileBasedCache directory, or Redis with
``--cache redis`` (needs redis-server). The run is cut into equal slots: a steady
one, then each fault (injected through the proxy's fault API for ``--fault-seconds``,
then cleared, the rest of the slot is recovery), the rotation in the middle (this
process holds the sandbox ledger, LocalLedger, and calls ``rotate_key`` on it: the
rekey is submitted and confirmed there, then the alias switches), the other faults,
and a steady slot to end.

Reported (benchmarks/soak_report.py): signatures, errors by type, throttles surfaced,
p50/p99/max latency per phase, recovery after each fault, each worker's RSS, threads
and open files over time, and for the rotation, per process, the time from
``rotate_key`` returning to its first new-key signature, its old-key signatures after
that moment and the last one's lateness, and its failed calls after the 2 s window.
Every signature is verified by its worker (Ed25519, the key of the address it names
as signer); a sample is evaluated by the ledger: signatures made before the rotation
accepted before it, new-key ones accepted after it, late old-key ones refused.

Run: python benchmarks/soak.py [--processes 3] [--threads 4] [--seconds 120]
  [--faults outage,hang,trickle,throttle,reset,error] [--cache file|redis]
  [--out FILE.md] [--json FILE.json]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import secrets
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# quota_run configures Django (a local-memory cache): run() sets the shared one.
import boto3  # noqa: E402
from algojig import get_suggested_params  # noqa: E402
from algosdk import account, mnemonic  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from benchmarks import endpoint, quota_proxy, quota_run  # noqa: E402
from benchmarks import soak_report as report  # noqa: E402
from confio_kms import AlgorandKMSManager  # noqa: E402
from confio_kms.sandbox import SANDBOX_REGION, LedgerChain, LocalLedger  # noqa: E402

GET = ["AmazonSSM.GetParameter", "AmazonSSM.GetParameters"]
# name -> (the proxy's fault kind, operations it hits or None for all, parameters).
FAULTS: dict[str, tuple[str, list[str] | None, dict[str, Any]]] = {
    "outage": ("outage", None, {}),
    "hang": ("hang", GET, {}),
    "trickle": ("trickle", GET, {"bytes_per_second": 1}),
    "throttle": ("throttle", GET, {}),
    "reset": ("reset", None, {}),
    "error": ("error", None, {}),
    # One answer trickled, the rest answered: a slow answer must delay only its calls.
    "trickle-one": ("trickle", GET, {"bytes_per_second": 1, "count": 1}),
}
DEFAULT_FAULTS = ["outage", "hang", "trickle", "throttle", "reset", "error"]
# The worker's setting for each --coalesce choice, as quota_run's approaches name them.
COALESCE = {"default": "old", "true": "direct", "false": "no-coalescing"}
FUNDS = 10_000_000  # microALGO: the sampled transactions' fees


class SoakWorker(quota_run.Worker):
    """quota_run's line-protocol worker, running benchmarks/soak_worker.py."""

    def __init__(self, job: dict[str, Any], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._stderr = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / "soak_worker.py"), json.dumps(job)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
        )


def schedule(seconds: float, faults: list[str], fault_seconds: float) -> list[dict[str, Any]]:
    """The slots, in seconds after "go": steady, half the faults, the rotation, the
    rest, steady. A fault is on for ``fault_seconds`` (at most half its slot)."""
    half = (len(faults) + 1) // 2
    names = ["steady", *faults[:half], "rotation", *faults[half:], "steady"]
    length = seconds / len(names)
    slots = []
    for number, name in enumerate(names):
        start = number * length
        slot: dict[str, Any] = {"name": name, "start": start, "end": start + length}
        if name in FAULTS:
            slot["clear"] = start + min(fault_seconds, length / 2)
        slots.append(slot)
    return slots


class Sampler(threading.Thread):
    """Each worker's RSS (kB), threads and open files every ``interval`` seconds (/proc)."""

    def __init__(self, pids: list[int], interval: float) -> None:
        super().__init__(daemon=True)
        self.pids, self.interval = pids, interval
        self.series: list[list[list[float]]] = [[] for _ in pids]  # [t, rss, threads, fds]
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            now = time.monotonic()
            for pid, series in zip(self.pids, self.series, strict=True):
                with contextlib.suppress(OSError, ValueError):
                    status = Path(f"/proc/{pid}/status").read_text().splitlines()
                    fields = dict(x.split(":", 1) for x in status if ":" in x)
                    fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
                    rss, threads = fields["VmRSS"].split()[0], fields["Threads"].strip()
                    series.append([now, int(rss), int(threads), fds])
            self.done.wait(self.interval)


def inject(proxy: quota_proxy.QuotaProxy, name: str) -> str:
    """Turn the fault on; returns a note, empty when injected."""
    fault = getattr(proxy, "fault", None)
    if fault is None:
        return "not injected: this quota_proxy has no fault API"
    kind, operations, params = FAULTS[name]
    fault(kind, operations=operations, **params)
    return ""


def clear(proxy: quota_proxy.QuotaProxy) -> None:
    clear_faults = getattr(proxy, "clear_faults", None)
    if clear_faults is not None:
        clear_faults()


@contextlib.contextmanager
def shared_cache(kind: str, workdir: Path) -> Iterator[dict[str, Any]]:
    """Django's CACHES for every process: a file cache directory, or a Redis server."""
    if kind == "file":
        location = str(workdir / "cache")
        backend = "django.core.cache.backends.filebased.FileBasedCache"
        yield {"default": {"BACKEND": backend, "LOCATION": location}}
        return
    with endpoint.cache_server("redis") as config:
        if config is None:
            raise SystemExit("--cache redis: redis-server or the redis client is not installed")
        yield {"default": config}


def start_workers(
    args: argparse.Namespace, key: dict[str, str], caches: dict[str, Any], url: str, logs: Path
) -> list[SoakWorker]:
    env = quota_run.worker_env(COALESCE[args.coalesce], url)
    workers = []
    for number in range(args.processes):
        job = {
            "alias": key["alias"],
            "address": key["address"],
            "region": SANDBOX_REGION,
            "endpoint": url,
            "credentials": quota_run.CREDENTIALS,
            "caches": caches,
            "threads": args.threads,
            "group": args.group,
            "grace": args.grace,
            "sample_every": args.sample_every,
            "worker": number,
            "records": str(logs / f"records-{number}.csv"),
            "samples": str(logs / f"samples-{number}.jsonl"),
        }
        workers.append(SoakWorker(job, env, logs / f"worker-{number}.log"))
    for worker in workers:
        line = worker.read_line(args.startup_timeout).strip()
        if line != "ready":
            raise RuntimeError(f"a worker said {line[:200]!r} instead of ready")
    return workers


def rotate(
    manager: AlgorandKMSManager,
    key: dict[str, str],
    ledger: LocalLedger,
    workers: list[SoakWorker],
    logs: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Evaluate the sampled signatures so far on the ledger (the old key's, accepted),
    then rotate on it; returns when and what."""
    before = report.read_samples(logs, len(workers))
    pre = report.ledger_check(ledger, [s for s in before if s["key"] == 0][-args.ledger_sample :])
    called = time.monotonic()
    result = manager.rotate_key(key["alias"], LedgerChain(ledger))
    confirmed = time.monotonic()
    for worker in workers:
        worker.send("rotated")
    return {
        "called": called,
        "confirmed": confirmed,
        "state": result.state,
        "auth_address": result.auth_address,
        "ledger_before": pre,
    }


def drive(
    slots: list[dict[str, Any]],
    proxy: quota_proxy.QuotaProxy,
    go: float,
    on_rotation: Any,
) -> dict[str, Any]:
    """Run the schedule from ``go`` (monotonic); fill each slot's actual times."""
    rotation: dict[str, Any] = {}
    for slot in slots:
        time.sleep(max(0.0, go + slot["start"] - time.monotonic()))
        slot["began"] = time.monotonic()
        if slot["name"] == "rotation":
            rotation = on_rotation()
            print(f"  rotated in {rotation['confirmed'] - rotation['called']:.2f} s", flush=True)
        elif "clear" in slot:
            before = proxy.stats().get("faulted", {})
            slot["note"] = inject(proxy, slot["name"])
            print(f"  {slot['name']} on {slot['note']}", flush=True)
            time.sleep(max(0.0, go + slot["clear"] - time.monotonic()))
            clear(proxy)
            slot["cleared"] = time.monotonic()
            after = proxy.stats().get("faulted", {})
            kind = FAULTS[slot["name"]][0]
            slot["faulted"] = after.get(kind, 0) - before.get(kind, 0)
        time.sleep(max(0.0, go + slot["end"] - time.monotonic()))
        slot["ended"] = time.monotonic()
    return rotation


def make_key(manager: AlgorandKMSManager, ledger: LocalLedger) -> dict[str, str]:
    """A funded account on the ledger, imported as an envelope key."""
    private_key, address = account.generate_account()
    alias = f"confio-bench-soak-{secrets.token_hex(4)}"
    manager.import_existing_key(alias, mnemonic.from_private_key(private_key), network="localnet")
    ledger.fund(address, FUNDS)
    return {"alias": alias, "address": address}


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    logs = workdir / "logs"
    logs.mkdir()
    slots = schedule(args.seconds, args.faults, args.fault_seconds)
    ledger = LocalLedger()
    with (
        endpoint.local_aws(ed25519=False) as moto,
        shared_cache(args.cache, workdir) as caches,
        quota_proxy.QuotaProxy(
            moto.url, rate=args.rate, burst=args.burst, delay=args.delay_ms / 1000
        ) as proxy,
    ):
        override_settings(
            CACHES=caches, CONFIO_KMS_TRUSTED_GENESIS=[get_suggested_params().gh]
        ).enable()
        session = boto3.Session(**quota_run.CREDENTIALS)
        manager = AlgorandKMSManager(SANDBOX_REGION, endpoint_url=proxy.url, session=session)
        key = make_key(manager, ledger)
        print(f"moto {moto.url}, proxy {proxy.url}, cache {args.cache}", flush=True)
        workers = start_workers(args, key, caches, proxy.url, logs)
        print(f"{len(workers)} workers ready", flush=True)
        sampler = Sampler([w.process.pid for w in workers], args.sample_interval)
        try:
            sampler.start()
            go = time.monotonic()
            for worker in workers:
                worker.send("go")
            rotation = drive(
                slots, proxy, go, lambda: rotate(manager, key, ledger, workers, logs, args)
            )
            clear(proxy)
            for worker in workers:
                worker.send("stop")
            summaries = [json.loads(w.read_line(args.grace + 60)) for w in workers]
            print("workers done", flush=True)
        finally:
            sampler.done.set()
            for worker in workers:
                worker.close()
        proxy_stats = proxy.stats()
        proxy_settings = proxy.settings
    return {
        "go": go,
        "slots": slots,
        "rotation": rotation,
        "summaries": summaries,
        "resources": sampler.series,
        "proxy": proxy_settings,
        "proxy_stats": proxy_stats,
        "ledger_after": report.ledger_after(ledger, logs, len(workers), rotation, args),
        "address": key["address"],
        "logs": str(logs),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--processes", type=int, default=3)
    add("--threads", type=int, default=4, help="even ones sign singles, odd ones groups")
    add("--group", type=int, default=16, help="transactions per group call")
    add("--seconds", type=float, default=120.0, help="the whole schedule")
    add("--faults", type=lambda s: [f for f in s.split(",") if f], default=DEFAULT_FAULTS)
    add("--fault-seconds", type=float, default=5.0, help="how long each fault stays on")
    add("--cache", choices=["file", "redis"], default="file")
    add("--coalesce", choices=list(COALESCE), default="default", help="CONFIO_KMS_COALESCE")
    add("--rate", type=float, default=quota_proxy.DEFAULT_RATE)
    add("--burst", type=int, default=quota_proxy.DEFAULT_BURST)
    add("--delay-ms", type=float, default=quota_proxy.DEFAULT_DELAY * 1000)
    add("--sample-every", type=int, default=200, help="ledger sample: every n-th call")
    add("--ledger-sample", type=int, default=32, help="calls evaluated per ledger check")
    add("--ledger-refusals", type=int, default=4, help="late old-key calls evaluated")
    add("--sample-interval", type=float, default=1.0, help="seconds between RSS samples")
    add("--grace", type=float, default=30.0, help="seconds a call may run past the end")
    add("--startup-timeout", type=float, default=120.0)
    add("--window", type=float, default=2.0, help="the rotation target, seconds")
    add(
        "--out",
        type=Path,
        help="markdown file (default: a new temporary directory); "
        "an earlier run's section in it is replaced, the text before it kept",
    )
    add("--note", default="", help="a sentence for the page (what this run measured)")
    add("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    unknown = [f for f in args.faults if f not in FAULTS]
    if unknown:
        parser.error(f"unknown faults: {', '.join(unknown)} (known: {', '.join(FAULTS)})")
    return args


def main() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="confio-soak-"))
    began = time.perf_counter()
    library = quota_run.library_version()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = run(args, workdir)
    result = report.analyse(raw, args)
    result.update(
        command=shlex.join(["python", "benchmarks/soak.py", *sys.argv[1:]]),
        date=datetime.date.today().isoformat(),
        machine=quota_run.machine(),
        library=library,
        library_at_end=quota_run.library_version(),
        elapsed=time.perf_counter() - began,
        note=args.note,
    )
    out = args.out or workdir / "soak.md"
    report.write(report.markdown(result), out)
    print(f"report: {out} ({result['elapsed']:.0f} s)", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
