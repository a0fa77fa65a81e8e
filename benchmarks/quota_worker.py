"""One worker process of benchmarks/quota_run.py: threads signing for a fixed time.

Run with a JSON job as its argument. Django is configured as benchmarks/
fresh_process.py does (confio_kms installed, a local-memory cache); the approach's
settings come from the environment the parent gives (``CONFIO_KMS_COALESCE``,
``AWS_ENDPOINT_URL``); with ``database`` in the job, the guardrails on that database
and the job's ``limits`` (``CONFIO_KMS_GUARD``, ``CONFIO_KMS_LIMITS``). Protocol on
stdin/stdout, one line each: the worker builds its signers (approaches: benchmarks/
quota_run.py's ``APPROACHES``), signs one warm-up transaction per thread (outside the
clock), prints ``ready``; on a ``go`` line it signs single 0-ALGO self-payments from every thread
for ``settle`` seconds and then the measured window of ``seconds``, waits at most
``grace`` seconds for the calls still running, and prints its result as JSON:
signatures verified (in all, and completed inside the window), failed verifications,
errors by type (throttling ones apart), and the latency of each call started inside
the window.

Every signature is verified with the account's public key (from the address the
parent created the key for, not from the signer) over ``txn.bytes_to_sign()``.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3
import django
from django.conf import settings

job = json.loads(sys.argv[1])
# With a database, the guardrails are on (every call reads the pause and takes its
# limits there, as a deployment's signer does); without one they are off.
database = job.get("database")
settings.configure(
    # Processes sharing a cache share SECRET_KEY, as a deployment does: entries are
    # authenticated under a key derived from it.
    SECRET_KEY="confio-kms-benchmarks-shared-secret-key",
    INSTALLED_APPS=["confio_kms"],
    CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    DATABASES={"default": database} if database else {},
    CONFIO_KMS_GUARD=bool(database),
    CONFIO_KMS_LIMITS=job.get("limits") or {},
    USE_TZ=True,
)
django.setup()
if job.get("migrate"):  # the parent's one-off run: the guard's tables, before any worker
    from django.core.management import call_command

    call_command("migrate", "confio_kms", verbosity=0)
    sys.exit(0)

from algosdk import encoding, transaction  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from botocore.retries import adaptive  # noqa: E402
from nacl.exceptions import BadSignatureError  # noqa: E402
from nacl.signing import VerifyKey  # noqa: E402

from benchmarks.baseline import ScriptSigner  # noqa: E402
from confio_kms import KMSSigner  # noqa: E402
from confio_kms.algorand.networks import GENESIS_HASH, GENESIS_ID  # noqa: E402
from confio_kms.common.exceptions import ConfioKMSError  # noqa: E402
from confio_kms.core.envelope import EnvelopeKey  # noqa: E402

ADDRESS: str = job["address"]
VERIFY_KEY = VerifyKey(encoding.decode_address(ADDRESS))
PARAMS = transaction.SuggestedParams(
    1000, 1, 1000, GENESIS_HASH["testnet"], GENESIS_ID["testnet"], flat_fee=True
)
THROTTLING_CODES = ("Throttling", "ThrottlingException", "TooManyRequestsException")


def error_code(error: BaseException) -> str:
    """AWS's error code behind ``error``, if any (botocore's, or confio_kms's cause)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:  # bounded: each link once
        seen.add(id(current))
        if isinstance(current, ClientError):
            return str(current.response.get("Error", {}).get("Code", ""))
        if isinstance(current, ConfioKMSError) and current.cause:
            return current.cause.split(":", 1)[0].strip()
        current = current.__cause__ or current.__context__
    return ""


def classify(error: BaseException) -> tuple[str, bool]:
    """("Type(Code)", whether AWS throttled it)."""
    code = error_code(error)
    # botocore names its exception classes after the code: ClientError says what it is.
    kind = "ClientError" if isinstance(error, ClientError) else type(error).__name__
    name = kind + (f"({code})" if code else "")
    return name, code in THROTTLING_CODES


def verified(txn: transaction.Transaction, signed: Any) -> bool:
    """The signature is the account's over this very transaction."""
    try:
        if not isinstance(signed, transaction.SignedTransaction) or signed.signature is None:
            return False
        if signed.transaction.get_txid() != txn.get_txid() or signed.authorizing_address:
            return False
        VERIFY_KEY.verify(txn.bytes_to_sign(), base64.b64decode(signed.signature))
        return True
    except (BadSignatureError, ValueError, TypeError):
        return False


def build_signers(threads: int) -> list[Any]:
    """One signer per thread: the old approach's are separate (a boto3 session is not
    thread-safe), KMSSigner's threads share one, as a Django process does."""
    credentials = job["credentials"]
    if job["approach"] == "old":
        return [
            ScriptSigner(job["alias"], job["region"], job["endpoint"], boto3.Session(**credentials))
            for _ in range(threads)
        ]
    if job["approach"].startswith("fallback"):
        # As for a parameter KMS will not decrypt directly (advanced tier): the library
        # then decrypts through Parameter Store (GetParameter WithDecryption), coalesced.
        EnvelopeKey._ciphertext = lambda self, slot: (None, False)  # type: ignore[method-assign]
    shared = KMSSigner(
        job["alias"],
        job["region"],
        endpoint_url=job["endpoint"],
        session=boto3.Session(**credentials),
    )
    if job["approach"].endswith("-adaptive"):
        # botocore's retry mode "adaptive": a client-side token bucket per client that,
        # after a throttle, paces requests to a rate adjusted by CUBIC.
        for aws_client in shared._handle.aws.clients.values():
            adaptive.register_retry_handler(aws_client)
    return [shared] * threads


class Tally:
    """What one worker saw, every thread together (under ``lock``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ok = 0  # every verified signature after "go"
        self.ok_in_window = 0  # of which completed inside the measured window
        self.warmup_ok = 0
        self.verify_failures = 0  # warm-up included
        self.errors: Counter[str] = Counter()  # by type, throttling ones apart
        self.throttling: Counter[str] = Counter()
        self.warmup_errors: Counter[str] = Counter()
        self.latencies: list[float] = []  # of the calls started inside the window
        self.last_end = 0.0


def main() -> None:
    threads = int(job["threads"])
    signers = build_signers(threads)
    tally = Tally()
    go = threading.Event()
    warmed = threading.Barrier(threads + 1)
    # Seconds on this process's perf_counter: the start ("go"), the measured window.
    clock = {"start": 0.0, "window": 0.0, "end": 0.0}

    def sign_one(index: int, signer: Any, number: int) -> tuple[bool, str | None, bool]:
        """(verified, error name or None, throttled) of one signing call."""
        note = f"{job['worker']}:{index}:{number}".encode()
        txn = transaction.PaymentTxn(ADDRESS, PARAMS, ADDRESS, 0, note=note)
        try:
            [signed] = signer.sign_transactions([txn])
        except Exception as error:
            name, throttled = classify(error)
            return False, name, throttled
        return verified(txn, signed), None, False

    def work(index: int) -> None:
        signer = signers[index]
        try:
            ok, error, _ = sign_one(index, signer, -1)  # warm: connections, address, kind
            with tally.lock:
                if error is not None:
                    tally.warmup_errors[error] += 1
                elif ok:
                    tally.warmup_ok += 1
                else:
                    tally.verify_failures += 1
        finally:
            warmed.wait()
        go.wait()
        number = 0
        while time.perf_counter() < clock["end"]:
            start = time.perf_counter()
            ok, error, throttled = sign_one(index, signer, number)
            end = time.perf_counter()
            number += 1
            with tally.lock:
                if start >= clock["window"]:
                    tally.latencies.append(end - start)
                tally.last_end = max(tally.last_end, end - clock["start"])
                if error is not None:
                    (tally.throttling if throttled else tally.errors)[error] += 1
                elif ok:
                    tally.ok += 1
                    tally.ok_in_window += clock["window"] <= end <= clock["end"]
                else:
                    tally.verify_failures += 1

    workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for thread in workers:
        thread.start()
    warmed.wait()
    print("ready", flush=True)
    line = sys.stdin.readline()
    if line.strip() != "go":
        return  # the parent gave up: nothing to measure
    cpu = time.process_time()
    clock["start"] = time.perf_counter()
    clock["window"] = clock["start"] + float(job["settle"])
    clock["end"] = clock["window"] + float(job["seconds"])
    go.set()
    cutoff = clock["end"] + float(job["grace"])
    for thread in workers:
        thread.join(timeout=max(0.0, cutoff - time.perf_counter()))
    unfinished = sum(thread.is_alive() for thread in workers)
    cpu = time.process_time() - cpu
    with tally.lock:
        result = {
            "ok": tally.ok,
            "ok_in_window": tally.ok_in_window,
            "warmup_ok": tally.warmup_ok,
            "verify_failures": tally.verify_failures,
            "errors": dict(tally.errors),
            "throttling": dict(tally.throttling),
            "warmup_errors": dict(tally.warmup_errors),
            "latencies": tally.latencies,
            "last_end": tally.last_end,
            "unfinished": unfinished,
            "cpu": cpu,
        }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # threads still in a call past the grace period must not hold the process
