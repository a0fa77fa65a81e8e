"""Event-loop lag while coroutines sign: awaited (``asign_transaction``) vs the
blocking signer called from a coroutine (what an ``async def`` view did before).

The AWS endpoint is the sandbox's moto server in another process
(``benchmarks.endpoint.local_aws``). In each round, ``--calls`` coroutines each sign
one transaction at once, while a heartbeat coroutine asks to wake every
``--tick`` ms and records how late it woke (its lag: how long the loop could not
serve anything else). Per kind (envelope, native) and way, the report gives the
median and worst of the rounds' worst lag, the median lag of all beats, the round's
wall time (median), the AWS requests per round and the most threads alive. The
``idle`` way signs nothing: the heartbeat alone for 0.3 s, the lag the machine's
load causes by itself.

Run: python benchmarks/event_loop_lag.py [--rounds 7] [--calls 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
from algosdk import transaction  # noqa: E402

from benchmarks import endpoint  # noqa: E402
from confio_kms.core import awaitable  # noqa: E402
from confio_kms.core.signer import KMSSigner  # noqa: E402
from confio_kms.lifecycle.manager import AlgorandKMSManager  # noqa: E402
from confio_kms.sandbox import DUMMY_CREDENTIALS, SANDBOX_REGION  # noqa: E402

TESTNET = ("SGO1GKSzyE7IEPItTxCByw9x8FmnrCDexi9/cOUJOiI=", "testnet-v1.0")
WAYS = ("idle", "blocking", "awaited")
IDLE_SECONDS = 0.3  # "idle": the heartbeat alone for this long (the machine's own lag)


def session(counts: Counter[str]) -> boto3.Session:
    s = boto3.Session(region_name=SANDBOX_REGION, **_credentials())
    s.events.register("before-send", lambda event_name, **_: counts.update([event_name]))
    return s


def _credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }


def payments(address: str, count: int, round_no: int) -> list[transaction.Transaction]:
    sp = transaction.SuggestedParams(1000, 1, 1000, TESTNET[0], TESTNET[1], flat_fee=True)
    note = f"lag {round_no}".encode()
    return [transaction.PaymentTxn(address, sp, address, i, note=note) for i in range(count)]


async def one_round(signer: KMSSigner, way: str, txns: list[Any], tick: float) -> dict[str, Any]:
    lags: list[float] = []
    threads = [threading.active_count()]
    stop = asyncio.Event()

    async def heartbeat() -> None:
        while not stop.is_set():
            asked = time.perf_counter()
            await asyncio.sleep(tick)
            lags.append(time.perf_counter() - asked - tick)
            threads.append(threading.active_count())

    async def sign(txn: Any) -> Any:
        if way == "idle":
            return await asyncio.sleep(IDLE_SECONDS)
        if way == "awaited":
            return await signer.asign_transaction(txn)
        return signer.sign_transaction(txn)  # blocks the loop for the whole call

    beat = asyncio.create_task(heartbeat())
    await asyncio.sleep(tick * 2)  # the heartbeat is beating before the calls start
    started = time.perf_counter()
    signed = await asyncio.gather(*(sign(t) for t in txns))
    wall = time.perf_counter() - started
    stop.set()
    await beat
    assert len(signed) == len(txns)
    return {"worst_lag": max(lags), "lags": lags, "wall": wall, "threads": max(threads)}


def measure(url: str, kind: str, way: str, rounds: int, calls: int, tick: float) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    signer = KMSSigner(f"lag-{kind}", endpoint_url=url, session=session(counts))
    asyncio.run(one_round(signer, way, payments(signer.address, 2, -1), tick))  # warm-up
    results = []
    for n in range(rounds):
        counts.clear()
        result = asyncio.run(one_round(signer, way, payments(signer.address, calls, n), tick))
        result["requests"] = dict(counts)
        results.append(result)
    worst = [r["worst_lag"] for r in results]
    beats = [lag for r in results for lag in r["lags"]]
    return {
        "kind": kind,
        "way": way,
        "calls": calls,
        "rounds": rounds,
        "worst_lag_median_ms": statistics.median(worst) * 1000,
        "worst_lag_max_ms": max(worst) * 1000,
        "beat_lag_median_ms": statistics.median(beats) * 1000,
        "wall_median_ms": statistics.median(r["wall"] for r in results) * 1000,
        "requests_per_round": results[-1]["requests"],
        "threads_max": max(r["threads"] for r in results),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--tick", type=float, default=5.0, help="heartbeat period, ms")
    parser.add_argument(
        "--threads", type=int, default=awaitable.THREADS, help="awaitable.THREADS for this run"
    )
    parser.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    awaitable.THREADS = args.threads  # read when the pool is first built
    figures = []
    load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    with endpoint.local_aws() as aws:
        manager = AlgorandKMSManager(
            SANDBOX_REGION, endpoint_url=aws.url, session=boto3.Session(**_credentials())
        )
        for kind in ("envelope", "native"):
            manager.create_algorand_key(f"lag-{kind}", network="testnet", kind=kind)
            for way in args.ways:
                figures.append(
                    measure(aws.url, kind, way, args.rounds, args.calls, args.tick / 1000)
                )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} cores, load average before/after: {load_before} / {load}")
    print(
        f"{args.calls} concurrent signatures per round, {args.threads} awaitable threads, "
        f"{args.rounds} rounds, heartbeat every {args.tick:g} ms, endpoint in another process (ms):"
    )
    print(
        f"{'kind':9} {'way':9} {'worst lag med':>13} {'worst lag max':>13} "
        f"{'beat lag med':>12} {'wall med':>9} {'threads':>7}  requests per round"
    )
    for f in figures:
        requests = ", ".join(
            f"{k.split('.', 1)[1]} {v}" for k, v in sorted(f["requests_per_round"].items())
        )
        print(
            f"{f['kind']:9} {f['way']:9} {f['worst_lag_median_ms']:13.1f} "
            f"{f['worst_lag_max_ms']:13.1f} {f['beat_lag_median_ms']:12.2f} "
            f"{f['wall_median_ms']:9.0f} {f['threads_max']:7d}  {requests}"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
