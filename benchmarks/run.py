"""Cost per signature: confio-kms against the old per-transaction approach.

One command, one run, side by side: the in-memory floor, the old scripts' approach
(benchmarks/baseline.py), KMSSigner with an envelope key and with a native key
(single transactions and groups of 4 and 16), the first signature in a fresh
process, and an address lookup from a second process sharing Redis or memcached.
Against the local endpoint always, and against real AWS too when credentials and a
region are configured (it creates two keys there and schedules them for deletion).

Run: python benchmarks/run.py [--repeats N] [--no-aws] [--quick] [--out DIR] [--json FILE]
Prints the tables and writes benchmarks.md and img/benchmarks.png to the report
directory: docs/ for a full run (the tracked page and chart); a new temporary
directory for a --quick smoke run, so it never rewrites tracked files; --out DIR
names the directory for either (--quick --out docs would write smoke figures there).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import functools
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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

from algosdk import account, mnemonic, transaction  # noqa: E402
from algosdk.atomic_transaction_composer import AccountTransactionSigner  # noqa: E402
from botocore.awsrequest import AWSResponse  # noqa: E402

from benchmarks import endpoint, report  # noqa: E402
from benchmarks.baseline import ScriptSigner  # noqa: E402
from confio_kms import AlgorandKMSManager, KMSSigner  # noqa: E402
from confio_kms.algorand.networks import GENESIS_HASH, GENESIS_ID  # noqa: E402
from confio_kms.sandbox import DUMMY_CREDENTIALS, SANDBOX_REGION  # noqa: E402

CREDENTIALS = {
    "aws_access_key_id": DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
    "aws_secret_access_key": DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
}
GROUP_SIZES = (1, 4, 16)
SIMULATED_RTT_MS = 20.0
PARAMS = transaction.SuggestedParams(
    1000, 1, 1000, GENESIS_HASH["testnet"], GENESIS_ID["testnet"], flat_fee=True
)
SignFn = Callable[[list[transaction.Transaction]], list[Any]]


@dataclass
class Row:
    approach: str
    group: int
    requests_per_call: float
    median_ms: float
    p95_ms: float
    per_second_1: float
    per_second_8: float


@dataclass
class LocalCpu:
    """Per signature, medians in µs, of one group size: the floor, and the envelope
    signer's own CPU (the call less its request), split into the part before the
    request and the part after the answer; replayed and live."""

    floor: float
    replayed: float
    replayed_before: float
    replayed_after: float
    live: float
    live_before: float
    live_after: float
    # The calling thread's CPU time (time.thread_time), per signature, medians: what the
    # library computes in the caller, whatever the waits (the request runs in a worker
    # thread: botocore's work for it is not in these).
    floor_cpu: float = 0.0
    replayed_cpu: float = 0.0
    live_cpu: float = 0.0


@dataclass
class Target:
    name: str
    where: str
    rows: list[Row] = field(default_factory=list)
    local_cpu: dict[int, LocalCpu] = field(default_factory=dict)
    delayed_native: dict[int, float] = field(default_factory=dict)
    delayed_native_cpu: dict[int, float] = field(default_factory=dict)
    delayed_endpoint_cpu: dict[int, float] = field(default_factory=dict)
    cold: dict[str, dict[str, Any]] = field(default_factory=dict)
    shared_cache: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    identical_signatures: bool = False


class Counter:
    """Counts HTTP requests (attempts, retries included) made through a session."""

    def __init__(self, session: boto3.Session) -> None:
        self.count = 0
        self._lock = threading.Lock()  # native keys send from several threads
        session.events.register("before-send", self._seen)

    def _seen(self, **kwargs: Any) -> None:
        with self._lock:
            self.count += 1


def new_session(aws: dict[str, Any]) -> boto3.Session:
    """A session for the target: the sandbox's dummy credentials, or the default chain."""
    return boto3.Session(**aws["credentials"])


def payments(address: str, size: int) -> list[transaction.Transaction]:
    return [transaction.PaymentTxn(address, PARAMS, address, i) for i in range(size)]


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20, method="inclusive")[18]


def latency(
    sign: SignFn,
    txns: list[transaction.Transaction],
    repeats: int,
    cpu: list[float] | None = None,
) -> list[float]:
    """Wall time of each of ``repeats`` calls after one warm-up; with ``cpu``, also
    this process's CPU time per call (all threads), read outside the wall window."""
    sign(txns)  # warm: connections, caches
    times = []
    for _ in range(repeats):
        start_cpu = time.process_time() if cpu is not None else 0.0
        start = time.perf_counter()
        sign(txns)
        times.append(time.perf_counter() - start)
        if cpu is not None:
            cpu.append(time.process_time() - start_cpu)
    return times


def throughput(signers: list[SignFn], txns: list[transaction.Transaction], seconds: float) -> float:
    """Signatures per second with one thread per signer, for ``seconds`` of wall time."""
    calls = [0] * len(signers)
    errors: list[BaseException] = []
    warmed = threading.Barrier(len(signers) + 1)
    go = threading.Event()
    deadline = 0.0

    def work(index: int) -> None:
        try:
            signers[index](txns)  # warm, outside the clock: a new signer loads its model
        finally:
            warmed.wait()
        go.wait()
        try:
            while time.perf_counter() < deadline:
                signers[index](txns)
                calls[index] += 1
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(signers))]
    for thread in threads:
        thread.start()
    warmed.wait()
    began = time.perf_counter()
    deadline = began + seconds
    go.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:  # a failing thread would make the figure silently low
        raise errors[0]
    return sum(calls) * len(txns) / elapsed


@dataclass
class Approach:
    name: str
    address: str
    counter: Counter | None
    sign: SignFn
    per_thread: Callable[[], SignFn] | None = None
    """Makes a signer for each thread; None: threads share ``sign`` (thread-safe)."""


def measure(target: Target, approaches: list[Approach], repeats: int, seconds: float) -> None:
    for item in approaches:
        sign = item.sign
        for size in GROUP_SIZES:
            txns = payments(item.address, size)
            sign(txns)  # the first call also looks up the address: cold starts are apart
            before = item.counter.count if item.counter else 0
            times = latency(sign, txns, repeats)
            requests = (item.counter.count - before) / (repeats + 1) if item.counter else 0.0
            eight = [item.per_thread() for _ in range(8)] if item.per_thread else [sign] * 8
            target.rows.append(
                Row(
                    item.name,
                    size,
                    requests,
                    statistics.median(times) * 1000,
                    p95(times) * 1000,
                    throughput([sign], txns, seconds),
                    throughput(eight, txns, seconds),
                )
            )
            print(f"  {item.name:<10} group {size:>2}: {target.rows[-1].median_ms:8.2f} ms")


# Sub-millisecond calls: more samples for the same confidence as the timed rows.
LOCAL_CPU_SAMPLES_PER_REPEAT = 10


def local_cpu(
    floor: AccountTransactionSigner,
    envelope_name: str,
    aws: dict[str, Any],
    address: str,
    repeats: int,
) -> dict[int, LocalCpu]:
    """The envelope signer's own CPU against the floor, per group size.

    Own CPU is the whole call less its request (kms:Decrypt, the one request of an
    envelope signing call after the first), the request being what lies between
    botocore's first and last events for it (``provide-client-params`` to
    ``after-call``): building, signing, sending and parsing it. Measured twice: with
    Decrypt's real answer replayed in the process (a ``before-call`` handler),
    so nothing waits on a socket, and on calls that really go to the endpoint.
    """
    marks: dict[str, float] = {}
    answers: list[dict[str, Any]] = []

    def mark(name: str) -> Callable[..., None]:
        return lambda **kw: marks.__setitem__(name, time.perf_counter())

    def signer(replay: bool) -> KMSSigner:
        session = new_session(aws)
        session.events.register("provide-client-params.kms.Decrypt", mark("sent"))
        session.events.register("after-call.kms.Decrypt", mark("answered"))
        if replay:  # a before-call handler's answer stands in for the HTTP exchange
            session.events.register(
                "before-call.kms.Decrypt",
                lambda **kw: (AWSResponse("", 200, {}, None), copy.deepcopy(answers[0])),
            )
        else:
            session.events.register(
                "after-call.kms.Decrypt",
                lambda parsed, **kw: answers.append(copy.deepcopy(parsed)) if not answers else None,
            )
        return KMSSigner(
            envelope_name, aws["region"], endpoint_url=aws["endpoint"], session=session
        )

    def floor_call(txns: list[transaction.Transaction]) -> tuple[float, float, float]:
        start, cpu = time.perf_counter(), time.thread_time()
        floor.sign_transactions(txns, list(range(len(txns))))
        return time.perf_counter() - start, 0.0, time.thread_time() - cpu

    Call = Callable[[list[transaction.Transaction]], tuple[float, float, float]]

    def split(sign: KMSSigner) -> Call:
        """(before the request, after the answer, the calling thread's CPU), in
        seconds, of one call."""

        def call(txns: list[transaction.Transaction]) -> tuple[float, float, float]:
            start, cpu = time.perf_counter(), time.thread_time()
            sign.sign_transactions(txns)
            end, cpu = time.perf_counter(), time.thread_time() - cpu
            return marks["sent"] - start, end - marks["answered"], cpu

        return call

    def us(values: list[float], size: int) -> float:
        return statistics.median(values) / size * 1e6

    def medians(times: list[tuple[float, float, float]], size: int) -> tuple[float, ...]:
        """(own, before, after) per signature in µs; the first call (warm-up) dropped."""
        counted = times[1:]
        return (
            us([b + a for b, a, _ in counted], size),
            us([b for b, _, _ in counted], size),
            us([a for _, a, _ in counted], size),
        )

    live = signer(replay=False)
    live.sign_transactions(payments(address, 1))  # records the answer to replay
    replayed_call, live_call = split(signer(replay=True)), split(live)
    samples = LOCAL_CPU_SAMPLES_PER_REPEAT * repeats + 1
    result = {}
    for size in GROUP_SIZES:
        txns = payments(address, size)
        floor_times, replayed_times = [], []
        # The floor and the replayed signer alternate call by call, so a burst of
        # stolen CPU (these are shared virtual machines) lands on both alike. The
        # live calls run apart: their socket waits would leave the floor's next call
        # with cold caches.
        for _ in range(samples):
            floor_times.append(floor_call(txns))
            replayed_times.append(replayed_call(txns))
        live_times = [live_call(txns) for _ in range(samples)]
        result[size] = LocalCpu(
            us([t for t, _, _ in floor_times[1:]], size),
            *medians(replayed_times, size),
            *medians(live_times, size),
            *(
                us([c for _, _, c in times[1:]], size)
                for times in (floor_times, replayed_times, live_times)
            ),
        )
    return result


def simulated_round_trip(
    target: Target,
    slow_native: SignFn,
    address: str,
    repeats: int,
    endpoint_cpu: Callable[[], float] | None,
) -> None:
    """Native groups of 1 and 16 through a session that sleeps before each Sign:
    wall time and this process's CPU (medians), and the local endpoint's CPU."""
    for size in (1, 16):
        cpu: list[float] = []
        served_from = endpoint_cpu() if endpoint_cpu else 0.0
        wall = latency(slow_native, payments(address, size), repeats, cpu)
        target.delayed_native[size] = statistics.median(wall) * 1000
        target.delayed_native_cpu[size] = statistics.median(cpu) * 1000
        if endpoint_cpu:  # /proc counts in 10 ms ticks: a mean over the loop
            served = endpoint_cpu() - served_from
            target.delayed_endpoint_cpu[size] = served / repeats * 1000


def fresh_process(job: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fresh_process.py"), json.dumps(job)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if out.returncode:
        raise RuntimeError(f"fresh process failed: {out.stderr.strip().splitlines()[-1]}")
    return json.loads(out.stdout)  # type: ignore[no-any-return]


LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}


def cold_starts(target: Target, names: dict[str, str], aws: dict[str, Any], runs: int) -> None:
    for kind, alias in names.items():
        results = [
            fresh_process({"mode": "cold", "kind": kind, "alias": alias, "cache": LOCMEM, **aws})
            for _ in range(runs)
        ]
        operations = {tuple(r["operations"]) for r in results}
        target.cold[kind] = {
            "operations": sorted(operations)[0] if len(operations) == 1 else None,
            "requests": statistics.median(len(r["operations"]) for r in results),
            "median_ms": statistics.median(r["seconds"] for r in results) * 1000,
            "imports_ms": statistics.median(r["imports"] for r in results) * 1000,
        }
        print(f"  cold {kind:<9}: {target.cold[kind]['median_ms']:8.1f} ms")


def shared_cache(target: Target, alias: str, aws: dict[str, Any]) -> None:
    for kind in ("redis", "memcached"):
        with endpoint.cache_server(kind) as cache:
            if cache is None:
                target.shared_cache[kind] = None
                print(f"  {kind}: not installed, skipped")
                continue
            job = {"mode": "address", "kind": "envelope", "alias": alias, "cache": cache, **aws}
            first, second = fresh_process(job), fresh_process(job)
            target.shared_cache[kind] = (len(first["operations"]), len(second["operations"]))
            print(
                f"  {kind}: first process {target.shared_cache[kind][0]} requests, "
                f"second {target.shared_cache[kind][1]}"
            )


def run_target(
    target: Target,
    aws: dict[str, Any],
    args: argparse.Namespace,
    endpoint_cpu: Callable[[], float] | None = None,
) -> None:
    """Measure everything against one endpoint. ``endpoint_cpu`` reads a local
    endpoint's CPU seconds so far; AWS's own work cannot be read."""
    manager = AlgorandKMSManager(
        aws["region"], endpoint_url=aws["endpoint"], session=new_session(aws)
    )
    private_key, address = account.generate_account()
    suffix = secrets.token_hex(4)
    names = {
        "envelope": f"confio-bench-envelope-{suffix}",
        "native": f"confio-bench-native-{suffix}",
    }
    created: list[str] = []
    try:
        manager.import_existing_key(
            names["envelope"], mnemonic.from_private_key(private_key), network="testnet"
        )
        created.append(names["envelope"])
        native_address = manager.create_algorand_key(
            names["native"], native=True, network="testnet"
        ).address
        created.append(names["native"])
        floor = AccountTransactionSigner(private_key)

        def floor_sign(txns: list[transaction.Transaction]) -> list[Any]:
            return floor.sign_transactions(txns, list(range(len(txns))))

        def kms(name: str, session: boto3.Session | None = None) -> SignFn:
            signer = KMSSigner(
                name,
                aws["region"],
                endpoint_url=aws["endpoint"],
                session=session or new_session(aws),
            )
            return signer.sign_transactions

        def script(session: boto3.Session | None = None) -> SignFn:
            return ScriptSigner(
                names["envelope"], aws["region"], aws["endpoint"], session or new_session(aws)
            ).sign_transactions

        sessions = {name: new_session(aws) for name in ("baseline", "envelope", "native")}
        counters = {name: Counter(session) for name, session in sessions.items()}
        approaches = [
            Approach("floor", address, None, floor_sign),
            # Each baseline thread has its own session: boto3 sessions are not thread-safe.
            Approach(
                "baseline", address, counters["baseline"], script(sessions["baseline"]), script
            ),
            Approach(
                "envelope",
                address,
                counters["envelope"],
                kms(names["envelope"], sessions["envelope"]),
            ),
            Approach(
                "native",
                native_address,
                counters["native"],
                kms(names["native"], sessions["native"]),
            ),
        ]
        measure(target, approaches, args.repeats, args.seconds)

        group = payments(address, 16)
        envelope_sign = kms(names["envelope"])
        target.identical_signatures = [s.dictify() for s in envelope_sign(group)] == [
            s.dictify() for s in floor_sign(group)
        ]
        target.local_cpu = local_cpu(floor, names["envelope"], aws, address, args.repeats)

        delayed = new_session(aws)
        delayed.events.register(
            "before-send.kms.Sign", lambda **kw: time.sleep(SIMULATED_RTT_MS / 1000)
        )
        simulated_round_trip(
            target, kms(names["native"], delayed), native_address, args.repeats, endpoint_cpu
        )

        cold_starts(
            target,
            {
                "baseline": names["envelope"],
                "envelope": names["envelope"],
                "native": names["native"],
            },
            aws,
            args.cold_runs,
        )
        shared_cache(target, names["envelope"], aws)
    finally:
        if aws["endpoint"] is None:
            cleanup(manager, aws, created)


def cleanup(manager: AlgorandKMSManager, aws: dict[str, Any], created: list[str]) -> None:
    """Remove what the run made in real AWS (keys cost money): each key scheduled for
    deletion in 7 days, the shortest window, and the throwaway account's parameter.
    Each step on its own, so one failure neither skips the rest nor hides the run's."""
    ssm = new_session(aws).client("ssm", region_name=aws["region"])
    for name in created:
        steps = [
            (
                f"alias/{name}'s key scheduled for deletion in 7 days",
                functools.partial(manager.delete_key, name, pending_window_days=7),
            )
        ]
        if name.startswith("confio-bench-envelope-"):
            path = manager.parameter_path(name)
            steps.append((f"{path} deleted", functools.partial(ssm.delete_parameter, Name=path)))
        for done, step in steps:
            try:
                step()
                print(f"AWS: {done}")
            except Exception as error:
                print(f"AWS: cleanup step failed ({done}): {error}", file=sys.stderr)


def real_aws() -> dict[str, Any] | None:
    """The real AWS target, when credentials and a region are configured."""
    session = boto3.Session()
    region = os.environ.get("KMS_REGION") or session.region_name
    if session.get_credentials() is None or not region or os.environ.get("AWS_ENDPOINT_URL"):
        return None
    return {"endpoint": None, "region": region, "credentials": {}}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, boto3 {boto3.__version__}"
    )


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def report_dir(out: Path | None, *, quick: bool) -> Path:
    """Where the report goes: ``out`` if given; else docs/ for a full run, and a new
    temporary directory for a quick one (smoke figures never overwrite the tracked page)."""
    if out is not None:
        return out
    if quick:
        return Path(tempfile.mkdtemp(prefix="confio-bench-"))
    return ROOT / "docs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per row")
    parser.add_argument("--seconds", type=float, default=1.0, help="per throughput measurement")
    parser.add_argument("--cold-runs", type=int, default=10, help="fresh processes per kind")
    parser.add_argument("--no-aws", action="store_true", help="skip real AWS even if configured")
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny counts")
    parser.add_argument(
        "--out",
        type=Path,
        help="report directory (default: docs/ for a full run, a new temp dir for --quick)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.seconds, args.cold_runs = 5, 0.1, 2
    out = report_dir(args.out, quick=args.quick)
    print(f"report directory: {out}")
    targets = []
    aws = None if args.no_aws else real_aws()
    with quiet():
        with endpoint.local_aws() as server:
            url = server.url
            local = Target("local", f"moto's server on loopback ({url}), a separate process")
            print(f"local endpoint: {url}")
            sandbox = {"endpoint": url, "region": SANDBOX_REGION, "credentials": CREDENTIALS}
            run_target(local, sandbox, args, server.cpu_reader())
            targets.append(local)
        if aws is None:
            aws_note = (
                "Real AWS was not measured in this run ("
                + ("--no-aws" if args.no_aws else "no AWS credentials or region configured")
                + "). With credentials and `KMS_REGION` set, the same command adds a "
                "section measured against AWS in the same run."
            )
        else:
            remote = Target("aws", f"AWS KMS and SSM in {aws['region']}")
            print(f"real AWS: {aws['region']}")
            try:
                run_target(remote, aws, args)
                targets.append(remote)
                aws_note = ""
            except Exception as error:  # keep the local figures; say what failed
                aws_note = f"The real AWS run failed: {type(error).__name__}: {error}"
        print(aws_note or "real AWS: measured")
    report.write(targets, machine(), args, out, aws_note)
    print(f"report written: {out / 'benchmarks.md'} and {out / 'img' / 'benchmarks.png'}")
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(t) for t in targets], indent=1))


if __name__ == "__main__":
    main()
