"""Native keys: Ed25519 inside KMS, on the local endpoint's stand-in; every signature
accepted by Algorand's ledger evaluator and verified by an independent Ed25519
implementation (cryptography's, not PyNaCl's which the library uses)."""

from __future__ import annotations

import base64

import boto3
import pytest
from algojig import TealProgram
from algosdk import encoding, mnemonic, transaction
from algosdk.atomic_transaction_composer import AtomicTransactionComposer, TransactionWithSigner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.test import override_settings

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms import factory as conf
from confio_kms.common import exceptions
from confio_kms.core.signing import signing_bytes
from confio_kms.sandbox import LocalLedger

from .helpers import NativeKey, RequestCounter, inject_error, inject_response, kms_tags, new_account

ALIAS = "native-sponsor"
ASSET_ID, APP_ID = 10, 77


@pytest.fixture
def created(native_key: NativeKey):  # type: ignore[no-untyped-def]
    return native_key(ALIAS, network="testnet")


@pytest.fixture
def signer(created, session: boto3.Session) -> KMSSigner:  # type: ignore[no-untyped-def]
    return KMSSigner(ALIAS, session=session)


def independently_verified(stxn: transaction.SignedTransaction, address: str) -> bool:
    public = Ed25519PublicKey.from_public_bytes(encoding.decode_address(address))
    public.verify(base64.b64decode(stxn.signature), signing_bytes(stxn.transaction))
    return True


def test_create_makes_an_aliased_tagged_ed25519_key(
    created,
    counter: RequestCounter,  # type: ignore[no-untyped-def]
) -> None:
    key_id, address, backup = created
    assert backup is None and created.kind == "native"
    assert "backup_mnemonic=None" in repr(created)
    kms = boto3.client("kms")
    metadata = kms.describe_key(KeyId=f"alias/{ALIAS}")["KeyMetadata"]
    assert (metadata["KeyId"], metadata["KeySpec"], metadata["KeyUsage"]) == (
        key_id,
        "ECC_NIST_EDWARDS25519",
        "SIGN_VERIFY",
    )
    tags = kms_tags(key_id)
    assert tags == {
        "AlgorandAddress": address,
        "AlgorandNetwork": "testnet",
        "ManagedBy": "confio-kms",
        "CreationState": "complete",  # marked pending at CreateKey (lifecycle.recovery)
    }
    spki = kms.get_public_key(KeyId=key_id)["PublicKey"]
    assert encoding.encode_address(spki[12:]) == address
    with pytest.raises(boto3.client("ssm").exceptions.ParameterNotFound):
        boto3.client("ssm").get_parameter(Name=f"/confio/algorand/{ALIAS}/private-key")
    assert counter.by_operation() == {
        "kms.DescribeKey": 1,
        "kms.CreateKey": 1,
        "kms.GetPublicKey": 1,
        "kms.TagResource": 2,  # the address, then CreationState=complete
        "kms.CreateAlias": 1,
    }


def test_payment_and_asset_transfer_are_accepted(
    signer: KMSSigner,
    created,
    ledger: LocalLedger,  # type: ignore[no-untyped-def]
) -> None:
    address = created.address
    _, receiver = new_account()
    for account in (address, receiver):
        ledger.fund(account, 1_000_000)
    ledger.jig.create_asset(ASSET_ID)
    ledger.jig.set_account_balance(address, 100, asset_id=ASSET_ID)
    ledger.jig.opt_in_asset(receiver, ASSET_ID)
    sp = ledger.suggested_params()

    for txn in (
        transaction.PaymentTxn(address, sp, receiver, 250_000),
        transaction.AssetTransferTxn(address, sp, receiver, 40, ASSET_ID),
    ):
        signed = signer.sign_transaction(txn)
        assert independently_verified(signed, address)
        ledger.evaluate([signed])
    assert ledger.balance(receiver) == 1_250_000
    assert ledger.balance(receiver, ASSET_ID) == 40


def test_atc_group_costs_one_sign_per_transaction_and_one_public_key_per_process(
    signer: KMSSigner,
    created,
    ledger: LocalLedger,
    counter: RequestCounter,  # type: ignore[no-untyped-def]
) -> None:
    address = created.address
    ledger.fund(address, 10_000_000)
    ledger.jig.create_app(APP_ID, approval_program=TealProgram(teal="#pragma version 8\nint 1"))
    sp = ledger.suggested_params()
    conf.reset()  # forget creation's check and lookups: as in a fresh process
    counter.reset()

    composer = AtomicTransactionComposer()
    for txn in (
        transaction.PaymentTxn(address, sp, address, 1),
        transaction.ApplicationNoOpTxn(address, sp, APP_ID),
        transaction.PaymentTxn(address, sp, address, 2),
    ):
        composer.add_transaction(TransactionWithSigner(txn, signer))
    signed = composer.gather_signatures()

    assert counter.by_operation() == {
        "kms.DescribeKey": 1,
        "kms.ListResourceTags": 1,
        "kms.GetPublicKey": 1,
        "kms.Sign": 3,
    }
    assert all(independently_verified(s, address) for s in signed)
    ledger.evaluate(signed)

    counter.reset()
    # Another signer in the same process: no lookup, no GetPublicKey, only the Signs.
    KMSSigner(ALIAS, session=signer.clients.session).sign_transactions(
        [t.txn for t in composer.txn_list]
    )
    assert counter.by_operation() == {"kms.Sign": 3}


def test_sixteen_transactions_keep_their_order(
    signer: KMSSigner,
    created,
    ledger: LocalLedger,
    counter: RequestCounter,  # type: ignore[no-untyped-def]
) -> None:
    address = created.address
    ledger.fund(address, 10_000_000)
    sp = ledger.suggested_params()
    txns = [transaction.PaymentTxn(address, sp, address, i) for i in range(16)]
    transaction.assign_group_id(txns)
    assert signer.address
    counter.reset()

    signed = signer.sign_transactions(txns, list(reversed(range(16))))

    assert [s.transaction.amt for s in signed] == list(reversed(range(16)))
    assert counter.by_operation() == {"kms.Sign": 16}
    ledger.evaluate(list(reversed(signed)))


def test_garbled_signature_from_kms_is_caught(
    created,
    session: boto3.Session,  # type: ignore[no-untyped-def]
) -> None:
    garbled = base64.b64encode(bytes(64)).decode()
    inject_response(
        session, "kms", "Sign",
        {"KeyId": created.key_id, "Signature": garbled, "SigningAlgorithm": "ED25519_SHA_512"},
    )  # fmt: skip
    signer = KMSSigner(ALIAS, session=session)
    txn = transaction.PaymentTxn(
        created.address, LocalLedger.suggested_params(), created.address, 0
    )

    with pytest.raises(exceptions.SignatureVerificationError) as raised:
        signer.sign_transaction(txn)

    text = str(raised.value)
    assert created.key_id in text and "injected-1" in text and created.address in text


def test_one_failed_request_fails_the_whole_group(
    created,
    session: boto3.Session,  # type: ignore[no-untyped-def]
) -> None:
    inject_error(session, "kms", "Sign", "AccessDeniedException", "no", only_call=3)
    signer = KMSSigner(ALIAS, session=session)
    sp = LocalLedger.suggested_params()
    txns = [transaction.PaymentTxn(created.address, sp, created.address, i) for i in range(4)]

    with pytest.raises(exceptions.AccessDeniedError, match="kms:Sign"):
        signer.sign_transactions(txns)


def test_retagged_key_signs_nothing(
    created,
    session: boto3.Session,
    counter: RequestCounter,  # type: ignore[no-untyped-def]
) -> None:
    _, other = new_account()
    boto3.client("kms").tag_resource(
        KeyId=created.key_id, Tags=[{"TagKey": "AlgorandAddress", "TagValue": other}]
    )
    conf.reset()  # a fresh process: it looks the key up and checks it
    txn = transaction.PaymentTxn(other, LocalLedger.suggested_params(), other, 0)
    counter.reset()

    with pytest.raises(exceptions.AddressMismatchError, match="nothing was signed"):
        KMSSigner(ALIAS, session=session).sign_transaction(txn)
    assert "kms.Sign" not in counter.by_operation()


def test_messages_over_4096_bytes_fail_before_any_request(
    signer: KMSSigner,
    created,
    counter: RequestCounter,  # type: ignore[no-untyped-def]
) -> None:
    sp = LocalLedger.suggested_params()
    program = b"\x08" + b"\x81\x01" * 2100  # a large approval program
    create = transaction.ApplicationCreateTxn(
        created.address, sp, transaction.OnComplete.NoOpOC, program, b"\x08\x81\x01",
        transaction.StateSchema(0, 0), transaction.StateSchema(0, 0), extra_pages=1,
    )  # fmt: skip
    size = len(signing_bytes(create))
    assert signer.address
    counter.reset()

    with pytest.raises(exceptions.MessageTooLargeError) as raised:
        signer.sign_transactions(
            [transaction.PaymentTxn(created.address, sp, created.address, 0), create]
        )

    assert f"signs {size} bytes" in str(raised.value) and "at most 4096" in str(raised.value)
    assert "envelope key" in str(raised.value.fix) and "deploy" in str(raised.value.fix)
    assert counter.total == 0


@pytest.mark.parametrize("native", [True, False])
def test_delegated_logic_signature_is_accepted(
    manager: AlgorandKMSManager, session: boto3.Session, ledger: LocalLedger, native: bool
) -> None:
    created = manager.create_algorand_key("delegating", native=native)
    program = TealProgram(teal="#pragma version 8\nint 1").bytecode
    lsig = transaction.LogicSigAccount(program)
    with pytest.raises(exceptions.PolicyViolationError, match="open-ended authority"):
        lsig.sign_with_signer(KMSSigner("delegating", session=session))  # off by default
    assert lsig.lsig.sig is None
    with override_settings(CONFIO_KMS_ALLOW_DELEGATION="every-network"):
        lsig.sign_with_signer(KMSSigner("delegating", session=session))
    ledger.fund(created.address, 1_000_000)
    txn = transaction.PaymentTxn(created.address, ledger.suggested_params(), created.address, 0)

    assert lsig.address() == created.address
    ledger.evaluate([transaction.LogicSigTransaction(txn, lsig)])
    if not native:
        reference = transaction.LogicSigAccount(program)
        reference.lsig.sig = transaction.LogicSig._sign_program(
            program, mnemonic.to_private_key(created.backup_mnemonic)
        )
        assert reference.lsig.sig == lsig.lsig.sig


def test_mode_detection_behind_one_signer(
    manager: AlgorandKMSManager,
    session: boto3.Session,
    ledger: LocalLedger,
    counter: RequestCounter,
) -> None:
    from .test_manager import _legacy_key

    manager.create_algorand_key("n", native=True)
    manager.create_algorand_key("e")
    _legacy_key("legacy")
    sp = ledger.suggested_params()
    envelope = {"ssm.GetParameter", "kms.Decrypt"}  # the ciphertext read, one decrypt
    for name, operations in (
        ("n", {"kms.Sign"}),
        ("e", envelope),
        ("legacy", envelope),
    ):
        signer = KMSSigner(name, session=session)
        ledger.fund(signer.address, 1_000_000)
        counter.reset()
        signed = signer.sign_transaction(
            transaction.PaymentTxn(signer.address, sp, signer.address, 0)
        )
        assert set(counter.by_operation()) == operations
        ledger.evaluate([signed])
    assert {r.name: r.kind for r in manager.list_keys()} == {
        "e": "envelope", "legacy": "envelope", "n": "native",
    }  # fmt: skip


def test_failed_tagging_rolls_back_the_native_key(session: boto3.Session) -> None:
    inject_error(session, "kms", "TagResource", "AccessDeniedException", "no tagging")
    with pytest.raises(exceptions.ProvisioningError, match="failed at TagResource") as raised:
        AlgorandKMSManager(session=session).create_algorand_key(ALIAS, native=True)
    assert "scheduled for deletion" in str(raised.value)
    kms = boto3.client("kms")
    assert kms.list_aliases()["Aliases"] == [] or all(
        a["AliasName"] != f"alias/{ALIAS}" for a in kms.list_aliases()["Aliases"]
    )
    (key,) = kms.list_keys()["Keys"]
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingDeletion"


def test_requests_of_one_call_overlap_within_a_bounded_pool(
    created,
    session: boto3.Session,  # type: ignore[no-untyped-def]
) -> None:
    """Counted, not timed: how many Sign requests are in flight at once."""
    from confio_kms.core.native import MAX_CONCURRENT_REQUESTS

    peak = count_signs_in_flight(session)
    signer = KMSSigner(ALIAS, session=session)
    sp = LocalLedger.suggested_params()
    txns = [transaction.PaymentTxn(created.address, sp, created.address, i) for i in range(20)]

    signed = signer.sign_transactions(txns)

    assert [s.transaction.amt for s in signed] == list(range(20))
    assert 8 <= peak[0] <= MAX_CONCURRENT_REQUESTS


def test_the_native_concurrency_setting_bounds_requests_in_flight(
    created,
    session: boto3.Session,  # type: ignore[no-untyped-def]
) -> None:
    peak = count_signs_in_flight(session)
    conf.reset()  # the pool is sized when first used
    sp = LocalLedger.suggested_params()
    txns = [transaction.PaymentTxn(created.address, sp, created.address, i) for i in range(9)]
    with override_settings(CONFIO_KMS_NATIVE_CONCURRENCY=3):
        signed = KMSSigner(ALIAS, session=session).sign_transactions(txns)
    assert len(signed) == 9 and peak[0] == 3
    conf.reset()


def count_signs_in_flight(session: boto3.Session) -> list[int]:
    """Make each Sign request take a 50 ms round trip; the list's one item becomes the
    most requests that were in flight at once."""
    import threading
    import time

    lock, in_flight, peak = threading.Lock(), [0], [0]

    def slow_send(**kwargs: object) -> None:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.05)  # a network round trip, during which the others proceed
        with lock:
            in_flight[0] -= 1

    session.events.register("before-send.kms.Sign", slow_send)
    return peak


def test_single_signatures_count_against_the_native_concurrency_too(
    created,
    session: boto3.Session,  # type: ignore[no-untyped-def]
) -> None:
    import threading

    peak = count_signs_in_flight(session)
    conf.reset()
    sp = LocalLedger.suggested_params()
    with override_settings(CONFIO_KMS_NATIVE_CONCURRENCY=2):
        signer = KMSSigner(ALIAS, session=session)
        assert signer.address
        txns = [transaction.PaymentTxn(created.address, sp, created.address, i) for i in range(6)]
        threads = [threading.Thread(target=signer.sign_transaction, args=(t,)) for t in txns]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert peak[0] == 2  # six one-transaction calls at once, two Sign requests at a time
    conf.reset()
