"""Envelope signing's own CPU per signature against a floor that signs AND verifies.

The library verifies every signature it returns, on purpose; benchmarks/run.py's
floor (py-algorand-sdk's AccountTransactionSigner) only signs. This runs run.py's
CPU split (``local_cpu``: the call less its kms:Decrypt, replayed and live) against
the local endpoint with a floor that signs each transaction and then verifies the
signature (PyNaCl, over ``bytes_to_sign()``), at groups of 1, 4 and 16.

Run: python benchmarks/cpu_floor.py [--repeats N] [--floor sdk|one-encoding]
Prints one line per group size: floor, own CPU replayed and live (µs per signature,
medians) and their ratios to the floor; then the calling thread's CPU time
(``time.thread_time``) of the floor and of the replayed and live calls, which no
wait for a core or a thread hand-off inflates (the request itself runs in a worker
thread, so none of botocore's work for it is in these).
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from algosdk import account, mnemonic, transaction
from algosdk.atomic_transaction_composer import AccountTransactionSigner
from nacl.signing import SigningKey, VerifyKey

from benchmarks import run
from confio_kms import AlgorandKMSManager


class VerifyingFloor:
    """py-algorand-sdk's signer, then a PyNaCl verification of each signature."""

    def __init__(self, private_key: str) -> None:
        self._signer = AccountTransactionSigner(private_key)
        self._key = VerifyKey(base64.b64decode(private_key)[32:])

    def sign_transactions(
        self, txns: list[transaction.Transaction], indexes: list[int]
    ) -> list[Any]:
        signed = self._signer.sign_transactions(txns, indexes)
        for txn, one in zip(txns, signed, strict=True):
            self._key.verify(txn.bytes_to_sign(), base64.b64decode(one.signature))
        return signed


class OneEncodingFloor:
    """The least a sign-and-verify can do: the key decoded per call (as the SDK and the
    library do: neither keeps it), each transaction encoded once, signed and verified
    with PyNaCl (``VerifyingFloor`` encodes each transaction twice: the SDK's signer
    does not hand back the bytes it signed)."""

    def __init__(self, private_key: str) -> None:
        self._private_key = private_key

    def sign_transactions(
        self, txns: list[transaction.Transaction], indexes: list[int]
    ) -> list[Any]:
        key = SigningKey(base64.b64decode(self._private_key)[:32])
        signed = []
        for index in indexes:
            message = txns[index].bytes_to_sign()
            signature = key.sign(message).signature
            key.verify_key.verify(message, signature)
            signed.append(
                transaction.SignedTransaction(txns[index], base64.b64encode(signature).decode())
            )
        return signed


FLOORS = {"sdk": VerifyingFloor, "one-encoding": OneEncodingFloor}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument(
        "--floor",
        choices=sorted(FLOORS),
        default="sdk",
        help="sdk: py-algorand-sdk's signer, then a verification (the default); "
        "one-encoding: each transaction encoded once, signed and verified with PyNaCl",
    )
    args = parser.parse_args()
    with run.quiet(), run.endpoint.local_aws() as server:
        aws = {"endpoint": server.url, "region": run.SANDBOX_REGION,
               "credentials": run.CREDENTIALS}  # fmt: skip
        manager = AlgorandKMSManager(
            aws["region"], endpoint_url=aws["endpoint"], session=run.new_session(aws)
        )
        private_key, address = account.generate_account()
        name = "confio-bench-cpu-floor"
        manager.import_existing_key(name, mnemonic.from_private_key(private_key), network="testnet")
        figures = run.local_cpu(FLOORS[args.floor](private_key), name, aws, address, args.repeats)
    print(f"floor: {args.floor}; load average at the end: {os.getloadavg()[0]:.1f} (1 min)")
    for size, cpu in figures.items():
        print(
            f"group {size:>2}: floor (sign + verify) {cpu.floor:.0f} µs; own CPU replayed "
            f"{cpu.replayed:.0f} µs ({cpu.replayed / cpu.floor:.2f}x), live {cpu.live:.0f} µs "
            f"({cpu.live / cpu.floor:.2f}x); calling thread's CPU time: floor "
            f"{cpu.floor_cpu:.0f} µs, replayed {cpu.replayed_cpu:.0f} µs "
            f"({cpu.replayed_cpu / cpu.floor_cpu:.2f}x), live {cpu.live_cpu:.0f} µs "
            f"({cpu.live_cpu / cpu.floor_cpu:.2f}x)"
        )


if __name__ == "__main__":
    main()
