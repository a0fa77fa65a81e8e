"""KMSSigner against the local AWS endpoint, every signature checked twice:
byte-identical to py-algorand-sdk's and accepted by Algorand's ledger evaluator."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from algojig import TealProgram
from algosdk import transaction
from algosdk.atomic_transaction_composer import (
    AtomicTransactionComposer,
    TransactionWithSigner,
    sign_transaction_with_signer,
)

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.common import exceptions
from confio_kms.core import cache, signing
from confio_kms.sandbox import LocalLedger

from .helpers import (
    EnvelopeKey,
    RequestCounter,
    flip_a_signature_bit,
    new_account,
    same_bytes,
    sdk_signed,
)

ALIAS = "confio-testnet-sponsor"
ASSET_ID = 10
APP_ID = 77


@pytest.fixture
def imported(envelope_key: EnvelopeKey) -> tuple[str, str]:
    """An account imported into KMS; returns (private_key, address) for comparison."""
    return envelope_key(ALIAS, imported=True)


@pytest.fixture
def signer(session: boto3.Session, imported: tuple[str, str]) -> KMSSigner:
    return KMSSigner(ALIAS, session=session)


def test_payment_is_byte_identical_to_sdk_and_accepted(
    signer: KMSSigner, imported: tuple[str, str], ledger: LocalLedger
) -> None:
    private_key, address = imported
    _, receiver = new_account()
    ledger.fund(address, 10_000_000)
    txn = transaction.PaymentTxn(address, ledger.suggested_params(), receiver, 1_234_567)

    signed = signer.sign_transaction(txn)

    assert same_bytes(signed, sdk_signed(txn, private_key))
    assert signed.authorizing_address is None
    ledger.evaluate([signed])
    assert ledger.balance(receiver) == 1_234_567


def test_asset_transfer_and_app_call_are_accepted(
    signer: KMSSigner, imported: tuple[str, str], ledger: LocalLedger
) -> None:
    private_key, address = imported
    _, receiver = new_account()
    ledger.fund(address, 10_000_000)
    ledger.jig.create_asset(ASSET_ID)
    ledger.jig.set_account_balance(address, 500, asset_id=ASSET_ID)
    ledger.fund(receiver, 200_000)
    ledger.jig.opt_in_asset(receiver, ASSET_ID)
    ledger.jig.create_app(APP_ID, approval_program=TealProgram(teal="#pragma version 8\nint 1"))
    sp = ledger.suggested_params()
    transfer = transaction.AssetTransferTxn(address, sp, receiver, 42, ASSET_ID)
    call = transaction.ApplicationNoOpTxn(address, sp, APP_ID, app_args=[b"hello"])

    for txn in (transfer, call):
        signed = signer.sign_transaction(txn)
        assert same_bytes(signed, sdk_signed(txn, private_key))
        ledger.evaluate([signed])
    assert ledger.balance(receiver, ASSET_ID) == 42


def test_atomic_group_through_composer(
    signer: KMSSigner, imported: tuple[str, str], ledger: LocalLedger, counter: RequestCounter
) -> None:
    private_key, address = imported
    _, receiver = new_account()
    ledger.fund(address, 10_000_000)
    ledger.jig.create_app(APP_ID, approval_program=TealProgram(teal="#pragma version 8\nint 1"))
    sp = ledger.suggested_params()
    assert signer.address  # resolve the address first so the count below is signing alone
    counter.reset()

    composer = AtomicTransactionComposer()
    composer.add_transaction(
        TransactionWithSigner(transaction.PaymentTxn(address, sp, receiver, 300_000), signer)
    )
    composer.add_transaction(
        TransactionWithSigner(transaction.ApplicationNoOpTxn(address, sp, APP_ID), signer)
    )
    composer.add_transaction(
        TransactionWithSigner(transaction.PaymentTxn(address, sp, receiver, 200_000), signer)
    )
    signed = composer.gather_signatures()

    # The ciphertext read once, then one decrypt for the three transactions.
    assert counter.by_operation() == {"ssm.GetParameter": 1, "kms.Decrypt": 1}
    grouped = [t.txn for t in composer.txn_list]
    assert grouped[0].group is not None
    for stxn, txn in zip(signed, grouped, strict=True):
        assert same_bytes(stxn, sdk_signed(txn, private_key))
    ledger.evaluate(signed)
    assert ledger.balance(receiver) == 500_000


def test_created_key_signs_like_its_backup_mnemonic(
    envelope_key: EnvelopeKey, session: boto3.Session, ledger: LocalLedger
) -> None:
    private_key, address = envelope_key(ALIAS)
    ledger.fund(address, 1_000_000)
    txn = transaction.PaymentTxn(address, ledger.suggested_params(), address, 0, note=b"x")

    signed = sign_transaction_with_signer(txn, KMSSigner(ALIAS, session=session))

    assert same_bytes(signed, sdk_signed(txn, private_key))
    ledger.evaluate([signed])


def test_tampered_signature_is_rejected_by_the_ledger(
    signer: KMSSigner, imported: tuple[str, str], ledger: LocalLedger
) -> None:
    _, address = imported
    ledger.fund(address, 1_000_000)
    signed = signer.sign_transaction(
        transaction.PaymentTxn(address, ledger.suggested_params(), address, 0)
    )
    flip_a_signature_bit(signed, byte=5)

    with pytest.raises(Exception, match="signature didn't pass verification"):
        ledger.evaluate([signed])


def test_wrong_key_is_rejected_and_rekeyed_account_is_accepted(
    signer: KMSSigner, imported: tuple[str, str], ledger: LocalLedger
) -> None:
    _, kms_address = imported
    _, other = new_account()
    ledger.fund(other, 1_000_000)
    ledger.fund(kms_address, 1_000_000)
    txn = transaction.PaymentTxn(other, ledger.suggested_params(), kms_address, 1000)

    signed = signer.sign_transaction(txn)
    # The sender is not the key's account, so the signature names its signer.
    assert signed.authorizing_address == kms_address
    with pytest.raises(Exception, match="should have been authorized by"):
        ledger.evaluate([signed])

    ledger.jig.set_auth_addr(other, kms_address)
    ledger.evaluate([signed])
    assert ledger.balance(kms_address) == 1_001_000


@pytest.mark.parametrize("size", [1, 2, 4, 8, 16])
def test_one_request_per_signing_call_whatever_the_group_size(
    signer: KMSSigner,
    imported: tuple[str, str],
    ledger: LocalLedger,
    counter: RequestCounter,
    size: int,
) -> None:
    private_key, address = imported
    ledger.fund(address, 10_000_000)
    sp = ledger.suggested_params()
    txns = [transaction.PaymentTxn(address, sp, address, i) for i in range(size)]
    if size > 1:
        transaction.assign_group_id(txns)
    assert signer.address
    counter.reset()

    signed = signer.sign_transactions(txns)

    # The ciphertext's first (and only) read, and one decrypt for the whole group.
    assert counter.by_operation() == {"ssm.GetParameter": 1, "kms.Decrypt": 1}
    assert [s.transaction.amt for s in signed] == list(range(size))
    assert all(same_bytes(s, sdk_signed(t, private_key)) for s, t in zip(signed, txns, strict=True))
    ledger.evaluate(signed)


def test_indexes_pick_transactions_in_order(
    signer: KMSSigner, imported: tuple[str, str], ledger: LocalLedger
) -> None:
    _, address = imported
    sp = ledger.suggested_params()
    txns = [transaction.PaymentTxn(address, sp, address, i) for i in range(4)]

    signed = signer.sign_transactions(txns, [3, 1])

    assert [s.transaction.amt for s in signed] == [3, 1]
    assert signer.sign_transactions(txns, []) == []


def test_address_is_cached_in_the_process_and_in_djangos_cache(
    session: boto3.Session, imported: tuple[str, str], counter: RequestCounter
) -> None:
    _, address = imported
    counter.reset()

    assert KMSSigner(ALIAS, session=session).address == address
    assert counter.by_operation() == {"kms.DescribeKey": 1, "kms.ListResourceTags": 1}

    counter.reset()
    assert KMSSigner(ALIAS, session=session).address == address
    assert counter.total == 0

    cache.clear_process_cache()  # as in a new process: only Django's cache remains
    assert KMSSigner(ALIAS, session=session).address == address
    assert counter.total == 0


_CHILD = """
import json, sys, boto3, django
django.setup()
from confio_kms import KMSSigner
calls = []
session = boto3.Session()
session.events.register("before-send", lambda event_name, **kw: calls.append(event_name))
address = KMSSigner(sys.argv[1], session=session).address
print(json.dumps({"address": address, "requests": len(calls)}))
"""


def test_processes_sharing_a_django_cache_share_the_lookup(
    imported: tuple[str, str], tmp_path: Path
) -> None:
    _, address = imported
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CONFIO_TEST_CACHE_DIR": str(tmp_path / "cache"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }

    def child() -> dict[str, object]:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, ALIAS], env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        result: dict[str, object] = json.loads(out.stdout)
        return result

    assert child() == {"address": address, "requests": 2}
    assert child() == {"address": address, "requests": 0}


def test_swapped_parameter_never_produces_a_signature(
    signer: KMSSigner, imported: tuple[str, str], ledger: LocalLedger, counter: RequestCounter
) -> None:
    _, address = imported
    intruder_key, _ = new_account()
    path = f"/confio/algorand/{ALIAS}/private-key"
    boto3.client("ssm").put_parameter(
        Name=path, Value=intruder_key, Type="SecureString", Overwrite=True
    )
    txn = transaction.PaymentTxn(address, ledger.suggested_params(), address, 0)
    counter.reset()

    with pytest.raises(exceptions.AddressMismatchError) as raised:
        signer.sign_transaction(txn)

    assert address in str(raised.value) and path in str(raised.value)
    assert intruder_key not in str(raised.value)
    # The address came fresh from AWS (not from a cache), so it is not looked up again.
    assert counter.by_operation() == {
        "kms.DescribeKey": 1,
        "kms.ListResourceTags": 1,
        "ssm.GetParameter": 1,
        "kms.Decrypt": 1,
    }


def test_alias_recreated_after_caching_is_resolved_again(
    session: boto3.Session, manager: AlgorandKMSManager, ledger: LocalLedger
) -> None:
    manager.create_algorand_key(ALIAS)
    stale_signer = KMSSigner(ALIAS, session=session)
    old_address = stale_signer.address
    # An operator replaces the key: alias and parameter removed, then created anew.
    boto3.client("kms").delete_alias(AliasName=f"alias/{ALIAS}")
    boto3.client("ssm").delete_parameter(Name=f"/confio/algorand/{ALIAS}/private-key")
    _, new_address, _ = AlgorandKMSManager().create_algorand_key(ALIAS)
    assert new_address != old_address
    ledger.fund(new_address, 1_000_000)
    txn = transaction.PaymentTxn(new_address, ledger.suggested_params(), new_address, 0)

    signed = stale_signer.sign_transaction(txn)

    assert stale_signer.address == new_address
    assert signed.authorizing_address is None
    ledger.evaluate([signed])


def _overwrite_parameter(value: str) -> None:
    """Replace the key's SecureString (a corrupted parameter, as a faulty restore leaves)."""
    boto3.client("ssm").put_parameter(
        Name=f"/confio/algorand/{ALIAS}/private-key", Value=value, Type="SecureString",
        Overwrite=True,
    )  # fmt: skip


def test_corrupt_parameter_is_a_typed_error_without_its_content(
    signer: KMSSigner, imported: tuple[str, str]
) -> None:
    _, address = imported
    garbage = base64.b64encode(b"not a key at all, but secret-ish").decode()
    _overwrite_parameter(garbage)
    txn = transaction.PaymentTxn(address, LocalLedger.suggested_params(), address, 0)

    with pytest.raises(exceptions.KeyMaterialError, match="does not hold an Algorand private key"):
        signer.sign_transaction(txn)
    with pytest.raises(ValueError) as raised:
        signer.sign_transaction(txn)
    assert garbage not in str(raised.value)


def test_a_seed_not_matching_its_public_half_is_a_typed_error_and_signs_nothing(
    signer: KMSSigner, imported: tuple[str, str]
) -> None:
    # The parameter's public half is the address's, its seed another key's: what it
    # signs does not verify, so nothing is returned and the parameter is named corrupt.
    private_key, address = imported
    other_seed = os.urandom(32)
    public_half = base64.b64decode(private_key)[32:]
    value = base64.b64encode(other_seed + public_half).decode()
    _overwrite_parameter(value)
    txn = transaction.PaymentTxn(address, LocalLedger.suggested_params(), address, 0)

    with pytest.raises(exceptions.KeyMaterialError, match="is corrupt") as raised:
        signer.sign_transaction(txn)
    for form in (value, other_seed.hex(), base64.b64encode(other_seed).decode()):
        assert form not in str(raised.value) and form not in repr(raised.value)


def test_non_transactions_are_refused_before_any_request(
    signer: KMSSigner, imported: tuple[str, str], counter: RequestCounter
) -> None:
    _, address = imported
    txn = transaction.PaymentTxn(address, LocalLedger.suggested_params(), address, 0)
    counter.reset()

    with pytest.raises(exceptions.NotATransactionError, match="not an algosdk Transaction"):
        signer.sign_transactions([txn, {"snd": address}])
    with pytest.raises(TypeError, match="Use sign_transaction"):
        signer.sign_transactions(txn)  # type: ignore[arg-type]
    with pytest.raises(exceptions.InvalidSigningRequestError, match="Index 2"):
        signer.sign_transactions([txn, txn], [0, 2])
    assert counter.total == 0


def test_unknown_alias_and_missing_parameter_name_the_fix(
    session: boto3.Session, manager: AlgorandKMSManager
) -> None:
    with pytest.raises(exceptions.AliasNotFoundError, match="kms_list") as raised:
        _ = KMSSigner("no-such-key", session=session).address
    assert isinstance(raised.value, LookupError)

    manager.create_algorand_key(ALIAS)
    boto3.client("ssm").delete_parameter(Name=f"/confio/algorand/{ALIAS}/private-key")
    signer = KMSSigner(ALIAS, session=session)
    txn = transaction.PaymentTxn(signer.address, LocalLedger.suggested_params(), signer.address, 0)
    with pytest.raises(exceptions.ParameterNotFoundError) as missing:
        signer.sign_transaction(txn)
    assert f"/confio/algorand/{ALIAS}/private-key" in str(missing.value)
    assert "kms_setup --create-new" in str(missing.value)


def test_repr_names_alias_and_region_only(signer: KMSSigner) -> None:
    assert repr(signer) == f"KMSSigner('alias/{ALIAS}', region_name='eu-central-2')"


def test_malformed_address_tag_is_not_an_algorand_key(
    session: boto3.Session, manager: AlgorandKMSManager
) -> None:
    key_id, _, _ = manager.create_algorand_key(ALIAS)
    boto3.client("kms").tag_resource(
        KeyId=key_id, Tags=[{"TagKey": "AlgorandAddress", "TagValue": "A" * 58}]
    )
    with pytest.raises(exceptions.NotAnAlgorandKeyError, match="not a valid Algorand address"):
        _ = KMSSigner(ALIAS, session=session).address


def test_cached_lookups_expire(
    session: boto3.Session, imported: tuple[str, str], counter: RequestCounter
) -> None:
    from django.test import override_settings

    with override_settings(CONFIO_KMS_CACHE_TIMEOUT=0):
        assert KMSSigner(ALIAS, session=session).address
        counter.reset()
        assert KMSSigner(ALIAS, session=session).address  # expired at once: asked again
    assert counter.by_operation() == {"kms.DescribeKey": 1, "kms.ListResourceTags": 1}
    counter.reset()
    assert KMSSigner(ALIAS, session=session).address
    assert KMSSigner(ALIAS, session=session).address
    assert counter.by_operation() == {"kms.DescribeKey": 1, "kms.ListResourceTags": 1}


def test_malformed_transaction_is_a_typed_error(signer: KMSSigner, counter: RequestCounter) -> None:
    txn = transaction.PaymentTxn(signer.address, LocalLedger.suggested_params(), signer.address, 0)
    txn.sender = "not-an-address"
    counter.reset()
    with pytest.raises(exceptions.NotATransactionError, match="cannot be encoded"):
        signer.sign_transaction(txn)
    assert counter.total == 0


def test_a_malformed_address_in_the_cache_is_looked_up_again(
    signer: KMSSigner, imported: tuple[str, str], ledger: LocalLedger, counter: RequestCounter
) -> None:
    _, address = imported
    info = signing.lookup(signer.clients, ALIAS)[0]
    # A tampered or corrupted shared-cache entry: the checksum no longer matches. A
    # middle character: the last one also carries two padding bits that decode to
    # nothing, so changing it can leave the key the same.
    broken = address[:29] + ("A" if address[29] != "A" else "B") + address[30:]
    cache.put(
        signer.clients.scope,
        ALIAS,
        dataclasses.replace(info, address=broken),
        options=signer.clients.options,  # in the generation the signer checks
    )
    ledger.fund(address, 1_000_000)
    txn = transaction.PaymentTxn(address, ledger.suggested_params(), address, 0)
    counter.reset()

    signed = signer.sign_transaction(txn)

    ledger.evaluate([signed])
    assert counter.by_operation() == {
        "ssm.GetParameter": 1,  # the ciphertext, read once
        "kms.Decrypt": 2,  # refused against the broken address, then signed
        "kms.DescribeKey": 1,
        "kms.ListResourceTags": 1,
    }
