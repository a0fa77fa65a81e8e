"""Envelope signing decrypts the SecureString's ciphertext with KMS directly (issue 23).

The ciphertext is read once (GetParameter without decryption) and kept, in the
process and, authenticated, in the shared cache; each signing call is then exactly
one kms:Decrypt under the ``PARAMETER_ARN`` encryption context, against the sandbox's
Parameter Store stand-in (a real KMS ciphertext). A parameter KMS will not decrypt
directly falls back to Parameter Store's decrypt, once, with one WARNING.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from algosdk import transaction
from django.core.cache import caches
from django.test import override_settings

from confio_kms import KMSSigner
from confio_kms.common import exceptions
from confio_kms.core import cache, kinds
from confio_kms.sandbox import LocalLedger

from . import legacy_layout
from .helpers import EnvelopeKey, RequestCounter, inject_error
from .test_fleet_switch import ALIAS as FLEET_ALIAS
from .test_fleet_switch import Worker

ALIAS = "confio-testnet-sponsor"
LOOKUP = {"kms.DescribeKey": 1, "kms.ListResourceTags": 1}
FIRST = {**LOOKUP, "ssm.GetParameter": 1, "kms.Decrypt": 1}
DECRYPT = {"kms.Decrypt": 1}
FALLBACK = {"ssm.GetParameter": 1}


@pytest.fixture
def file_cache(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A file-based Django cache (``default``) shared with worker processes."""
    setting = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        }
    }
    with override_settings(CACHES=setting):
        caches["default"].clear()
        yield setting
        caches["default"].clear()


def decryption_flags(session: boto3.Session) -> list[bool]:
    """The WithDecryption of each GetParameter made through ``session``, in order."""
    flags: list[bool] = []
    session.events.register(
        "provide-client-params.ssm.GetParameter",
        lambda params, **kw: flags.append(bool(params.get("WithDecryption"))),
    )
    return flags


def sign_checked(signer: KMSSigner, ledger: LocalLedger, note: bytes = b"") -> None:
    """Sign a self-payment; the ledger accepts it and rejects it with a flipped bit."""
    txn = transaction.PaymentTxn(
        signer.address, ledger.suggested_params(), signer.address, 0, note=note
    )
    signed = signer.sign_transaction(txn)
    raw = bytearray(base64.b64decode(signed.signature))
    raw[7] ^= 1
    tampered = transaction.SignedTransaction(txn, base64.b64encode(bytes(raw)).decode())
    with pytest.raises(Exception, match="signature"):
        ledger.evaluate([tampered])
    ledger.evaluate([signed])


def test_one_ciphertext_read_then_exactly_one_kms_decrypt_per_call(
    session: boto3.Session,
    counter: RequestCounter,
    envelope_key: EnvelopeKey,
    ledger: LocalLedger,
) -> None:
    _, address = envelope_key()
    ledger.fund(address, 1_000_000)
    flags = decryption_flags(session)
    signer = KMSSigner(ALIAS, session=session)
    counter.reset()

    sign_checked(signer, ledger, b"first")
    assert counter.by_operation() == FIRST
    assert flags == [False]  # the ciphertext, never the value

    for note in (b"second", b"third", b"fourth"):
        counter.reset()
        sign_checked(signer, ledger, note)
        assert counter.by_operation() == DECRYPT


def test_a_group_of_16_is_one_decrypt(
    session: boto3.Session, counter: RequestCounter, envelope_key: EnvelopeKey, ledger: LocalLedger
) -> None:
    _, address = envelope_key()
    ledger.fund(address, 10_000_000)
    signer = KMSSigner(ALIAS, session=session)
    sign_checked(signer, ledger, b"warm-up")
    sp = ledger.suggested_params()
    txns = [transaction.PaymentTxn(address, sp, address, 0, note=bytes([i])) for i in range(16)]
    transaction.assign_group_id(txns)
    counter.reset()

    signed = signer.sign_transactions(txns)

    assert counter.by_operation() == DECRYPT
    ledger.evaluate(signed)


def test_a_second_process_sharing_the_cache_reads_no_parameter(
    envelope_key: EnvelopeKey, ledger: LocalLedger, file_cache: dict[str, Any]
) -> None:
    _, address = envelope_key(FLEET_ALIAS)
    ledger.fund(address, 1_000_000)
    first, second = Worker(file_cache), Worker(file_cache)
    try:
        signed, answer = first.sign("first process")
        assert answer["requests"] == [
            "kms.DescribeKey",
            "kms.ListResourceTags",
            "ssm.GetParameter",
            "kms.Decrypt",
        ]
        assert signed is not None
        ledger.evaluate([signed])

        signed, answer = second.sign("second process")
        assert answer["requests"] == ["kms.Decrypt"]  # key entry and ciphertext both shared
        assert signed is not None
        ledger.evaluate([signed])
    finally:
        first.close()
        second.close()


def test_a_legacy_layout_key_signs_by_the_direct_path(
    session: boto3.Session, counter: RequestCounter, ledger: LocalLedger
) -> None:
    _, address, _ = legacy_layout.create("confio-mainnet-sponsor")
    ledger.fund(address, 1_000_000)
    flags = decryption_flags(session)
    signer = KMSSigner("confio-mainnet-sponsor", session=session)
    counter.reset()

    sign_checked(signer, ledger, b"one")
    sign_checked(signer, ledger, b"two")

    assert counter.by_operation() == {**FIRST, "kms.Decrypt": 2}
    assert flags == [False]


def _falls_back_once(
    signer: KMSSigner, counter: RequestCounter, ledger: LocalLedger, first: dict[str, int]
) -> None:
    """Sign three times: the first costs ``first`` requests, each next one FALLBACK."""
    counter.reset()
    sign_checked(signer, ledger, b"1")
    assert counter.by_operation() == first
    for note in (b"2", b"3"):
        counter.reset()
        sign_checked(signer, ledger, note)
        assert counter.by_operation() == FALLBACK


def test_an_advanced_tier_parameter_falls_back_once_with_one_warning(
    session: boto3.Session,
    counter: RequestCounter,
    ledger: LocalLedger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The stand-in leaves advanced-tier values as moto's placeholder (not a KMS
    # ciphertext), as AWS's Encryption SDK format is not one either.
    private_key, address, key_id = legacy_layout.create(ALIAS)
    boto3.client("ssm").put_parameter(
        Name=f"/confio/algorand/{ALIAS}/private-key",
        Value=private_key,
        Type="SecureString",
        KeyId=key_id,
        Tier="Advanced",
        Overwrite=True,
    )
    ledger.fund(address, 1_000_000)
    flags = decryption_flags(session)
    signer = KMSSigner(ALIAS, session=session)

    with caplog.at_level(logging.WARNING, logger="confio_kms.envelope"):
        _falls_back_once(signer, counter, ledger, {**LOOKUP, "ssm.GetParameter": 2})

    assert flags == [False, True, True, True]
    warnings = [r for r in caplog.records if r.name == "confio_kms.envelope"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert f"/confio/algorand/{ALIAS}/private-key" in warnings[0].getMessage()
    assert "not a KMS ciphertext" in warnings[0].getMessage()
    assert private_key not in caplog.text


def test_an_invalid_ciphertext_answer_falls_back_once(
    session: boto3.Session,
    counter: RequestCounter,
    envelope_key: EnvelopeKey,
    ledger: LocalLedger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, address = envelope_key()
    ledger.fund(address, 1_000_000)
    inject_error(session, "kms", "Decrypt", "InvalidCiphertextException", only_call=1)
    signer = KMSSigner(ALIAS, session=session)

    with caplog.at_level(logging.WARNING, logger="confio_kms.envelope"):
        _falls_back_once(signer, counter, ledger, {**FIRST, "ssm.GetParameter": 2})

    warnings = [r for r in caplog.records if r.name == "confio_kms.envelope"]
    assert len(warnings) == 1 and "InvalidCiphertextException" in warnings[0].getMessage()


@pytest.mark.parametrize("forgery", ["blob", "mac", "arn"])
def test_a_tampered_shared_ciphertext_entry_is_not_trusted(
    forgery: str,
    session: boto3.Session,
    counter: RequestCounter,
    envelope_key: EnvelopeKey,
    ledger: LocalLedger,
    file_cache: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, other_address = envelope_key("other-sponsor", "testnet")
    ledger.fund(other_address, 1_000_000)
    other = KMSSigner("other-sponsor", session=session)
    sign_checked(other, ledger, b"writes the other entry")
    _, address = envelope_key()
    ledger.fund(address, 1_000_000)
    signer = KMSSigner(ALIAS, session=session)
    sign_checked(signer, ledger, b"writes the entry")
    shared = caches["default"]
    keys = {
        name: cache._key(signer.clients.scope, cache._ciphertext_name(path, key_id))
        for name, path, key_id in (
            (ALIAS, f"/confio/algorand/{ALIAS}/private-key", signer._info().key_id),
            ("other", "/confio/algorand/other-sponsor/private-key", other._info().key_id),
        )
    }
    genuine, others = shared.get(keys[ALIAS]), shared.get(keys["other"])
    assert set(genuine) == {"blob", "arn", "mac"} and set(others) == set(genuine)
    forged = {
        "blob": {**genuine, "blob": others["blob"]},  # another key's ciphertext
        "mac": {**others},  # another entry's, MAC and all
        "arn": {**genuine, "arn": others["arn"]},
    }[forgery]
    shared.set(keys[ALIAS], forged, None)
    kinds.reset()  # a new process: only the shared cache remains
    cache.clear_process_cache()
    counter.reset()

    with caplog.at_level(logging.WARNING, logger="confio_kms.cache"):
        sign_checked(signer, ledger, b"after the forgery")

    assert counter.by_operation() == {"ssm.GetParameter": 1, "kms.Decrypt": 1}  # read again
    assert "MAC that does not verify" in caplog.text
    assert shared.get(keys[ALIAS]) == genuine  # rewritten with the real one


def test_a_key_pending_deletion_is_a_key_state_error(
    session: boto3.Session, counter: RequestCounter, envelope_key: EnvelopeKey, ledger: LocalLedger
) -> None:
    _, address = envelope_key()
    ledger.fund(address, 1_000_000)
    signer = KMSSigner(ALIAS, session=session)
    sign_checked(signer, ledger, b"before")
    boto3.client("kms").schedule_key_deletion(KeyId=signer._info().key_id, PendingWindowInDays=7)
    txn = transaction.PaymentTxn(address, ledger.suggested_params(), address, 0)
    counter.reset()

    with pytest.raises(exceptions.KeyStateError):
        signer.sign_transaction(txn)

    assert counter.by_operation()["kms.Decrypt"] == 1
    assert counter.by_operation().get("ssm.GetParameter", 0) == 0  # no fallback


def test_access_denied_names_kms_decrypt_with_the_parameter_arn_context(
    session: boto3.Session, envelope_key: EnvelopeKey, ledger: LocalLedger
) -> None:
    _, address = envelope_key()
    inject_error(session, "kms", "Decrypt", "AccessDeniedException")
    signer = KMSSigner(ALIAS, session=session)
    txn = transaction.PaymentTxn(address, ledger.suggested_params(), address, 0)

    with pytest.raises(exceptions.AccessDeniedError) as denied:
        signer.sign_transaction(txn)

    assert "kms:Decrypt" in str(denied.value)
    assert "kms:EncryptionContext:PARAMETER_ARN" in str(denied.value)


def test_a_parameter_answered_for_another_path_is_refused(
    session: boto3.Session, envelope_key: EnvelopeKey, ledger: LocalLedger
) -> None:
    """An answer naming another parameter (its ARN is the decrypt's context) is refused."""
    _, address = envelope_key()
    boto3.client("ssm").put_parameter(
        Name="/confio/algorand/elsewhere/private-key", Value="x", Type="SecureString"
    )

    def redirect(params: dict[str, Any], **kwargs: Any) -> None:
        params["Name"] = "/confio/algorand/elsewhere/private-key"

    session.events.register("provide-client-params.ssm.GetParameter", redirect)
    signer = KMSSigner(ALIAS, session=session)
    txn = transaction.PaymentTxn(address, ledger.suggested_params(), address, 0)

    with pytest.raises(exceptions.KeyMaterialError, match="parameter/confio/algorand/elsewhere"):
        signer.sign_transaction(txn)


def test_a_kept_ciphertext_of_another_key_is_read_again(
    session: boto3.Session, counter: RequestCounter, ledger: LocalLedger
) -> None:
    """The alias's account replaced outside confio_kms (parameter and address tag,
    same KMS key): the kept ciphertext decrypts to the old key, which is never used;
    it is dropped and read again, and the call signs with the new key."""
    _, old_address, key_id = legacy_layout.create(ALIAS)
    signer = KMSSigner(ALIAS, session=session)
    signer.sign_transaction(
        transaction.PaymentTxn(old_address, ledger.suggested_params(), old_address, 0)
    )
    new_key, new_address = legacy_layout.account.generate_account()
    boto3.client("ssm").put_parameter(
        Name=f"/confio/algorand/{ALIAS}/private-key",
        Value=new_key,
        Type="SecureString",
        KeyId=key_id,
        Overwrite=True,
    )
    boto3.client("kms").tag_resource(
        KeyId=key_id, Tags=[{"TagKey": "AlgorandAddress", "TagValue": new_address}]
    )
    cache.clear_process_cache()  # the key entry expired; the kept ciphertext did not
    caches["default"].clear()
    ledger.fund(new_address, 1_000_000)
    signer = KMSSigner(ALIAS, session=session)
    counter.reset()

    sign_checked(signer, ledger, b"new key")

    assert signer.address == new_address
    assert counter.by_operation() == {**FIRST, "kms.Decrypt": 2}


def test_the_audit_record_names_the_parameter_arn_cloudtrail_shows(
    session: boto3.Session, envelope_key: EnvelopeKey, caplog: pytest.LogCaptureFixture
) -> None:
    _, address = envelope_key()
    signer = KMSSigner(ALIAS, session=session)
    caplog.set_level(logging.INFO, logger="confio_kms.audit")

    signer.sign_transaction(
        transaction.PaymentTxn(address, LocalLedger.suggested_params(), address, 0)
    )

    (record,) = [r.audit for r in caplog.records if hasattr(r, "audit")]
    arn = boto3.client("ssm").get_parameter(Name=f"/confio/algorand/{ALIAS}/private-key")
    assert record["parameter_arn"] == arn["Parameter"]["ARN"]
