"""Wall time of native-key signing: one transaction vs groups of 4 and 16.

Against the local endpoint (moto's server with the test tree's Ed25519 stand-in),
all in one run; prints medians and the ratio to a single signature, first as the
loopback endpoint answers (its work is CPU in this process, so requests cannot
overlap much on 2 cores), then with a simulated network round trip added to each
request (a sleep before sending, as a real network wait releases the CPU).
Run: python benchmarks/native_group.py [repeats] [round-trip-ms]
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3
from algosdk import transaction

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.sandbox import LocalAWS, LocalLedger
from tests import moto_ed25519


def measure(signer: KMSSigner, address: str, repeats: int) -> dict[int, float]:
    sp = LocalLedger.suggested_params()
    results = {}
    for size in (1, 4, 16):
        txns = [transaction.PaymentTxn(address, sp, address, i) for i in range(size)]
        signer.sign_transactions(txns)  # warm: connections, public key check
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            signer.sign_transactions(txns)
            times.append(time.perf_counter() - start)
        results[size] = statistics.median(times)
    return results


def main(repeats: int, round_trip_ms: float) -> None:
    moto_ed25519.install()
    with LocalAWS() as aws:
        os.environ.update(aws.environ())
        created = AlgorandKMSManager().create_algorand_key("bench", native=True)
        plain = measure(KMSSigner("bench"), created.address, repeats)
        session = boto3.Session()
        session.events.register(
            "before-send.kms.Sign", lambda **kw: time.sleep(round_trip_ms / 1000)
        )
        delayed = measure(KMSSigner("bench", session=session), created.address, repeats)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"native key, local endpoint, median of {repeats} runs per row")
    print(f"| transactions | loopback ms | ratio | with {round_trip_ms:g} ms round trip | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for size in plain:
        print(
            f"| {size} | {plain[size] * 1000:.1f} | {plain[size] / plain[1]:.2f} "
            f"| {delayed[size] * 1000:.1f} | {delayed[size] / delayed[1]:.2f} |"
        )


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 30,
        float(sys.argv[2]) if len(sys.argv) > 2 else 20.0,
    )
