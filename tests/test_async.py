"""Awaitable signing against the local AWS endpoint: the same requests, policy, audit
records and coalescing as the blocking calls, an event loop that keeps running while
a request is in flight, and cancellation that leaves nothing behind.

Every test runs its coroutines with ``asyncio.run``; overlaps are forced by holding a
request at the endpoint's door (botocore's before-send event) until the loop has done
what the test orders, never by sleeping.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest
from algosdk import encoding, transaction
from django.test import AsyncClient, override_settings
from django.urls import path

from confio_kms import KMSMultisigSigner
from confio_kms import settings as config
from confio_kms.common import exceptions
from confio_kms.core import awaitable, envelope
from confio_kms.core.signer import KMSSigner
from confio_kms.sandbox import LocalLedger
from confio_kms.sponsor import AlgorandSponsorService

from .helpers import (
    EnvelopeKey,
    RequestCounter,
    flip_a_signature_bit,
    new_account,
    same_bytes,
    sdk_signed,
)

ALIAS = "confio-testnet-sponsor"
CALLS = 8
LONG = 20  # seconds: only stops a hung test


@pytest.fixture
def imported(envelope_key: EnvelopeKey) -> tuple[str, str]:
    return envelope_key(ALIAS, imported=True)


@pytest.fixture
def records() -> list[dict[str, Any]]:
    return []


def new_signer(session: boto3.Session, records: list[dict[str, Any]]) -> KMSSigner:
    """A signer (the settings' options, audit records to ``records``), looked up
    already: its clients carry the handlers registered on ``session`` so far."""
    options = dataclasses.replace(config.options(), audit_sink=records.append)
    signer = KMSSigner(ALIAS, session=session, options=options)
    assert signer.address
    return signer


def warm_signer_holding_decrypt(
    session: boto3.Session, records: list[dict[str, Any]], address: str
) -> tuple[KMSSigner, threading.Event, threading.Event]:
    """A signer whose kms:Decrypt waits for ``release`` (``entered`` set when one is in
    flight), after a first call read the ciphertext (kept for later signers)."""
    new_signer(session, records).sign_transaction(payments(address, 1)[0])
    entered, release = hold(session, "kms.Decrypt")
    return new_signer(session, records), entered, release  # its clients carry the hold


def hold(session: boto3.Session, operation: str) -> tuple[threading.Event, threading.Event]:
    """Hold the first ``operation`` request until released; (entered, release)."""
    entered, release = threading.Event(), threading.Event()
    first = [True]

    def held(**kwargs: Any) -> None:
        if first[0]:
            first[0] = False
            entered.set()
            assert release.wait(LONG), "never released"

    session.events.register(f"before-send.{operation}", held)
    return entered, release


def joined() -> int:
    """Calls in the open decrypt burst of the one key."""
    with envelope._decrypts._lock:
        return max((b.calls for b in envelope._decrypts._open.values()), default=0)


async def until(condition: Any) -> None:
    """Yield to the loop until ``condition()`` holds (each check is a loop turn)."""
    for _ in range(LONG * 1000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never held")


def payments(address: str, count: int, **fields: Any) -> list[transaction.Transaction]:
    sp = LocalLedger.suggested_params()
    return [transaction.PaymentTxn(address, sp, address, i, **fields) for i in range(count)]


def keys_alive() -> int:
    gc.collect()
    # type(), not isinstance(): isinstance would wake lazy objects (Django's LazyObject).
    return sum(type(o) is envelope._PrivateKey for o in gc.get_objects())


def test_overlapping_coroutines_share_one_decrypt_while_the_loop_runs(
    session: boto3.Session,
    counter: RequestCounter,
    imported: tuple[str, str],
    records: list[dict[str, Any]],
    ledger: LocalLedger,
) -> None:
    private_key, address = imported
    entered, release = hold(session, "kms.Decrypt")
    signer = new_signer(session, records)
    txns = payments(address, CALLS)
    counter.reset()

    async def main() -> list[transaction.SignedTransaction]:
        tasks = [asyncio.create_task(signer.asign_transaction(t)) for t in txns]
        # The loop runs on while the decrypt is held in flight, and every coroutine joins it.
        await until(lambda: entered.is_set() and joined() == CALLS)
        release.set()
        return await asyncio.wait_for(asyncio.gather(*tasks), LONG)

    signed = asyncio.run(main())
    assert counter.by_operation() == {"ssm.GetParameter": 1, "kms.Decrypt": 1}
    assert all(same_bytes(s, sdk_signed(t, private_key)) for s, t in zip(signed, txns, strict=True))
    assert [r["outcome"] for r in records] == ["signed"] * CALLS
    ledger.fund(address, 10_000_000)
    ledger.evaluate(signed)
    # A tampered signature is rejected by the evaluator.
    (again,) = asyncio.run(signer.asign_transactions(payments(address, 1, note=b"x")))
    flip_a_signature_bit(again)
    with pytest.raises(Exception, match="signature didn't pass verification"):
        ledger.evaluate([again])


def test_refusal_and_audit_records_are_the_blocking_calls(
    session: boto3.Session,
    counter: RequestCounter,
    imported: tuple[str, str],
    records: list[dict[str, Any]],
) -> None:
    _, address = imported
    signer = new_signer(session, records)
    (txn,) = payments(address, 1)
    (rekey,) = payments(address, 1, rekey_to=new_account()[1])
    signer.sign_transaction(txn)  # the ciphertext is read once; then one Decrypt per call

    def outcomes(call: Any) -> tuple[Any, dict[str, Any], Any]:
        records.clear()
        counter.reset()
        try:
            result = call()
        except exceptions.ConfioKMSError as error:
            result = (type(error), str(error))
        (record,) = records
        ids = record.pop("request_ids")
        return result, record, (counter.by_operation(), len(ids))

    sync = outcomes(lambda: signer.sign_transactions([rekey]))
    awaited = outcomes(lambda: asyncio.run(signer.asign_transactions([rekey])))
    assert sync == awaited
    assert sync[0][0] is exceptions.PolicyViolationError and sync[2] == ({}, 0)
    sync = outcomes(lambda: signer.sign_transaction(txn))
    awaited = outcomes(lambda: asyncio.run(signer.asign_transaction(txn)))
    assert same_bytes(sync[0], awaited[0]) and sync[1:] == awaited[1:]
    assert sync[2] == ({"kms.Decrypt": 1}, 1)


def test_a_cancelled_call_leaves_no_burst_or_key_and_the_next_call_works(
    session: boto3.Session,
    counter: RequestCounter,
    imported: tuple[str, str],
    records: list[dict[str, Any]],
    ledger: LocalLedger,
) -> None:
    _, address = imported
    signer, entered, release = warm_signer_holding_decrypt(session, records, address)
    first, second = payments(address, 2)
    records.clear()
    counter.reset()

    async def main() -> transaction.SignedTransaction:
        task = asyncio.create_task(signer.asign_transaction(first))
        await until(entered.is_set)  # the decrypt is in flight, its burst open
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert awaitable.running() == 1 and joined() == 1  # it ends in its thread
        release.set()
        assert await asyncio.to_thread(awaitable.wait_idle, LONG)
        return await signer.asign_transaction(second)

    signed = asyncio.run(main())
    assert envelope._decrypts._open == {} and keys_alive() == 0
    # The cancelled call's signature was made and audited, then dropped; one decrypt each.
    assert [r["outcome"] for r in records] == ["signed", "signed"]
    assert counter.by_operation() == {"kms.Decrypt": 2}
    ledger.fund(address, 1_000_000)
    ledger.evaluate([signed])


def test_a_call_cancelled_while_queued_sends_and_signs_nothing(
    session: boto3.Session,
    counter: RequestCounter,
    imported: tuple[str, str],
    records: list[dict[str, Any]],
) -> None:
    _, address = imported
    signer, entered, release = warm_signer_holding_decrypt(session, records, address)
    txns = payments(address, awaitable.THREADS + 1)  # the last one waits for a thread
    records.clear()
    counter.reset()

    async def main() -> None:
        tasks = [asyncio.create_task(signer.asign_transaction(t)) for t in txns]
        await until(lambda: entered.is_set() and joined() == awaitable.THREADS)
        tasks[-1].cancel()
        release.set()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(done[-1], asyncio.CancelledError)

    asyncio.run(main())
    assert counter.by_operation() == {"kms.Decrypt": 1}
    assert len(records) == awaitable.THREADS
    assert txns[-1].get_txid() not in {t for r in records for t in r["txids"]}


def test_multisig_and_sponsor_service_are_awaitable(
    session: boto3.Session, imported: tuple[str, str], ledger: LocalLedger
) -> None:
    _, address = imported
    member = KMSSigner(ALIAS, session=session, options=config.options())
    _, outsider = new_account()
    msig = KMSMultisigSigner(1, 1, [member, outsider])
    ledger.fund(msig.address, 1_000_000)
    ledger.fund(address, 1_000_000)
    (mtxn,) = asyncio.run(msig.asign_transactions(payments(msig.address, 1)))
    ledger.evaluate([mtxn])

    user_key, user = new_account()
    ledger.fund(user, 1_000_000)
    service = AlgorandSponsorService(signer=member)
    user_txn = transaction.PaymentTxn(user, _zero_fee(), user, 0)
    sponsor_payment, grouped = asyncio.run(service.asponsor_group([user_txn], _zero_fee()))
    assert isinstance(grouped, transaction.Transaction) and grouped.group is not None
    ledger.evaluate([sponsor_payment, sdk_signed(grouped, user_key)])


def test_a_cancelled_sponsor_group_leaves_the_user_transactions_ungrouped(
    session: boto3.Session, imported: tuple[str, str]
) -> None:
    entered, release = hold(session, "kms.Decrypt")
    service = AlgorandSponsorService(signer=new_signer(session, []))
    _, user = new_account()
    user_txn = transaction.PaymentTxn(user, _zero_fee(), user, 0)

    async def main() -> None:
        task = asyncio.create_task(service.asponsor_group([user_txn], _zero_fee()))
        await until(entered.is_set)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert user_txn.group is not None  # the work goes on in its thread
        release.set()
        assert await asyncio.to_thread(awaitable.wait_idle, LONG)

    asyncio.run(main())
    assert user_txn.group is None and envelope._decrypts._open == {}
    assert len(asyncio.run(service.asponsor_group([user_txn], _zero_fee()))) == 2


def _zero_fee() -> transaction.SuggestedParams:
    sp = LocalLedger.suggested_params()
    sp.flat_fee, sp.fee = True, 0
    return sp


# The example project's async view, served by this module's URLconf.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "example_project"))
from payments import views  # noqa: E402

urlpatterns = [path("sponsor/group/", views.sponsor_group)]


@override_settings(ROOT_URLCONF=__name__, USE_KMS_SIGNING=True)
def test_the_example_async_view_sponsors_a_group(
    imported: tuple[str, str], ledger: LocalLedger
) -> None:
    _, sponsor = imported
    user_key, user = new_account()
    ledger.fund(sponsor, 1_000_000)
    ledger.fund(user, 1_000_000)
    user_txn = transaction.PaymentTxn(user, _zero_fee(), user, 0)
    body = {"transactions": [encoding.msgpack_encode(user_txn)]}

    async def post(payload: object) -> Any:
        return await AsyncClient().post(
            "/sponsor/group/", json.dumps(payload), content_type="application/json"
        )

    answer = asyncio.run(post(body))
    assert answer.status_code == 200, answer.content
    paid, grouped = (encoding.msgpack_decode(t) for t in answer.json()["group"])
    assert paid.transaction.sender == sponsor
    ledger.evaluate([paid, sdk_signed(grouped, user_key)])
    refused = asyncio.run(post({"transactions": ["not base64!"]}))
    assert refused.status_code == 400 and "base64" in refused.json()["error"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_has_its_own_pool_and_none_of_the_parents_calls() -> None:
    # Celery's and gunicorn's workers are forked, possibly while the parent awaits a call.
    held, release = threading.Event(), threading.Event()

    async def parent() -> None:
        task = asyncio.create_task(awaitable.run(lambda: held.set() or release.wait(LONG)))
        await until(held.is_set)
        pid = os.fork()
        if pid == 0:  # the child: no pytest from here, only an exit status
            ok = False
            try:
                ok = awaitable.running() == 0 and awaitable.wait_idle(1)
                ok = ok and asyncio.run(awaitable.run(os.getpid)) == os.getpid()
            finally:
                os._exit(0 if ok else 1)
        release.set()
        await task
        assert os.waitpid(pid, 0)[1] == 0

    asyncio.run(parent())
