"""The audit trail: one structured record per signing call, joinable with
CloudTrail by AWS request id; optionally stored in the database."""

from __future__ import annotations

import base64
import logging

import boto3
import pytest
from algosdk import encoding, transaction
from django.contrib.admin.sites import AdminSite
from django.test import RequestFactory, override_settings

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.admin import SigningRecordAdmin
from confio_kms.common import exceptions
from confio_kms.models import SigningRecord
from confio_kms.sandbox import LocalLedger

from .helpers import inject_error


def audit_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [r.audit for r in caplog.records if r.name == "confio_kms.audit"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("native", [False, True], ids=["envelope", "native"])
def test_one_record_per_signing_call(
    manager: AlgorandKMSManager,
    session: boto3.Session,
    caplog: pytest.LogCaptureFixture,
    native: bool,
) -> None:
    address = manager.create_algorand_key("audited", native=native).address
    signer = KMSSigner("audited", session=session)
    sp = LocalLedger.suggested_params()
    txns = [transaction.PaymentTxn(address, sp, address, i) for i in range(3)]
    transaction.assign_group_id(txns)
    caplog.set_level(logging.INFO, logger="confio_kms.audit")

    signer.sign_transactions(txns)

    (record,) = audit_records(caplog)
    assert record["alias"] == "alias/audited" and record["address"] == address
    assert record["kind"] == record["mode"] == ("native" if native else "envelope")
    assert record["txids"] == [t.get_txid() for t in txns]
    assert record["group_id"] == base64.b64encode(txns[0].group).decode()
    assert record["outcome"] == "signed"
    request_ids = record["request_ids"]
    assert isinstance(request_ids, list) and len(request_ids) == (3 if native else 1)
    assert all(len(r) > 10 for r in request_ids)  # the endpoint's x-amzn-RequestId


def test_failures_are_recorded_with_their_error(
    manager: AlgorandKMSManager, caplog: pytest.LogCaptureFixture
) -> None:
    address = manager.create_algorand_key("denied").address
    session = boto3.Session()
    inject_error(session, "ssm", "GetParameter", "AccessDeniedException", "no")
    signer = KMSSigner("denied", session=session)
    caplog.set_level(logging.INFO, logger="confio_kms.audit")
    with pytest.raises(exceptions.AccessDeniedError):
        signer.sign_transaction(
            transaction.PaymentTxn(address, LocalLedger.suggested_params(), address, 0)
        )
    (record,) = audit_records(caplog)
    assert (record["outcome"], record["detail"]) == ("failed", "AccessDeniedError")


@pytest.mark.django_db
def test_records_are_stored_when_enabled_and_read_only_in_the_admin(
    manager: AlgorandKMSManager, session: boto3.Session
) -> None:
    address = manager.create_algorand_key("stored").address
    signer = KMSSigner("stored", session=session)
    txn = transaction.PaymentTxn(address, LocalLedger.suggested_params(), address, 0)
    signer.sign_transaction(txn)
    assert SigningRecord.objects.count() == 0  # off by default

    # The setting is read when a signer is built (into its options).
    with override_settings(CONFIO_KMS_AUDIT_DB=True):
        KMSSigner("stored", session=session).sign_transaction(txn)

    (row,) = SigningRecord.objects.all()
    assert (row.alias, row.address, row.outcome, row.txids) == (
        "alias/stored",
        address,
        "signed",
        txn.get_txid(),
    )
    admin = SigningRecordAdmin(SigningRecord, AdminSite())
    request = RequestFactory().get("/")
    assert not admin.has_add_permission(request)
    assert not admin.has_change_permission(request, row)
    assert not admin.has_delete_permission(request, row)


def test_a_bad_audit_db_setting_does_not_undo_a_signature(
    manager: AlgorandKMSManager, caplog: pytest.LogCaptureFixture
) -> None:
    address = manager.create_algorand_key("k", network="localnet").address
    txn = transaction.PaymentTxn(address, LocalLedger.suggested_params(), address, 0)
    with override_settings(CONFIO_KMS_AUDIT_DB="sometimes"):
        assert KMSSigner("k").sign_transaction(txn).transaction is txn
    assert "CONFIO_KMS_AUDIT_DB" in caplog.text


def test_no_log_message_is_built_when_info_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from confio_kms.core import audit

    calls: list[object] = []
    monkeypatch.setattr(audit.logger, "info", lambda *args, **kwargs: calls.append(args))
    level = audit.logger.level
    try:
        audit.logger.setLevel(logging.WARNING)  # setLevel: clears the loggers' level caches
        fields = audit.record(None, "k", [], "signed", request_ids=["r1", "r2"])
        assert calls == []  # the joins of the message are not even built
        assert fields["request_ids"] == ["r1", "r2"]  # the record is, for sink and telemetry
        audit.logger.setLevel(logging.INFO)
        audit.record(None, "k", [], "signed")
        assert len(calls) == 1
    finally:
        audit.logger.setLevel(level)


@pytest.mark.django_db
def test_a_signing_call_reads_no_setting(
    manager: AlgorandKMSManager, session: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``CONFIO_KMS_AUDIT_DB`` (like every setting) is read once, when the signer is
    built, into its ``Options``: its calls read no setting, and keep storing rows."""
    from confio_kms import settings as config

    address = manager.create_algorand_key("reads").address
    with override_settings(CONFIO_KMS_AUDIT_DB=True):
        signer = KMSSigner("reads", session=session)
    reads: list[object] = []
    for name in ("setting", "options", "audit_db"):
        monkeypatch.setattr(config, name, lambda *args, name=name, **kw: reads.append(name))
    txn = transaction.PaymentTxn(address, LocalLedger.suggested_params(), address, 0)
    for _ in range(2):
        signer.sign_transaction(txn)
    assert reads == []
    assert SigningRecord.objects.filter(alias="alias/reads").count() == 2


def test_transaction_ids_are_the_sdks() -> None:
    """The audit trail's ids, computed from the signed bytes, are py-algorand-sdk's."""
    from confio_kms.core import audit

    sp = LocalLedger.suggested_params()
    for amount in range(64):
        address = encoding.encode_address(bytes([amount]) * 32)
        txn = transaction.PaymentTxn(address, sp, address, amount, note=bytes(amount))
        assert audit.txid(txn.bytes_to_sign()) == txn.get_txid()
