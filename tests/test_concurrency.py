"""One signer shared by 8 threads, 250 transactions each, for both key kinds:
every signature verified locally, a sample through the ledger evaluator, no
errors, and no result ever handed to the wrong thread."""

from __future__ import annotations

import base64
import random
import threading

import boto3
import pytest
from algosdk import encoding, transaction
from nacl.signing import VerifyKey

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.core.signing import signing_bytes
from confio_kms.sandbox import LocalLedger

THREADS, PER_THREAD = 8, 250


@pytest.mark.parametrize("native", [False, True], ids=["envelope", "native"])
def test_eight_threads_share_one_signer(
    manager: AlgorandKMSManager, session: boto3.Session, ledger: LocalLedger, native: bool
) -> None:
    address = manager.create_algorand_key("shared", native=native).address
    signer = KMSSigner("shared", session=session)
    verify_key = VerifyKey(encoding.decode_address(address))
    sp = ledger.suggested_params()
    errors: list[BaseException] = []
    results: dict[int, list[transaction.SignedTransaction]] = {}

    def work(thread: int) -> None:
        rng = random.Random(thread)
        mine = [
            transaction.PaymentTxn(address, sp, address, 0, note=f"{thread}:{i}".encode())
            for i in range(PER_THREAD)
        ]
        signed: list[transaction.SignedTransaction] = []
        try:
            while len(signed) < PER_THREAD:
                size = rng.randint(1, 16)
                batch = mine[len(signed) : len(signed) + size]
                out = signer.sign_transactions(batch)
                # Each result is for this thread's own transaction, in order.
                assert [s.transaction for s in out] == batch
                signed.extend(out)
        except BaseException as error:
            errors.append(error)
        results[thread] = signed

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert sorted(results) == list(range(THREADS))
    for thread, signed in results.items():
        assert [s.transaction.note for s in signed] == [
            f"{thread}:{i}".encode() for i in range(PER_THREAD)
        ]
        for stxn in signed:
            verify_key.verify(signing_bytes(stxn.transaction), base64.b64decode(stxn.signature))
    ledger.fund(address, 1_000_000)
    sample = [results[t][i] for t in range(THREADS) for i in (0, PER_THREAD - 1)]
    ledger.evaluate(sample)
