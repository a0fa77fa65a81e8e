"""The audit trail: one structured record per signing call.

Records go to the ``confio_kms.audit`` logger (level INFO, the fields also under
``record.audit`` for JSON formatters) with alias, address, key mode, transaction
ids, group id, AWS request ids and outcome, so they can be joined with CloudTrail
by request id. With ``CONFIO_KMS_AUDIT_DB`` on, they are also stored as
``confio_kms.models.SigningRecord`` rows. Records never carry key material:
they are built from public facts only.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Sequence
from typing import Any

from algosdk import encoding, transaction

from confio_kms import settings as config
from confio_kms.core.keys import KeyInfo

logger = logging.getLogger("confio_kms.audit")


def record(
    info: KeyInfo | None,
    alias: str,
    txns: Sequence[transaction.Transaction],
    outcome: str,
    request_ids: Sequence[str] = (),
    detail: str = "",
    messages: Sequence[bytes] | None = None,
) -> dict[str, Any]:
    """Emit the record of one signing call; return its fields.

    ``messages``, the signed bytes of ``txns`` when the caller has them, spare
    encoding each transaction a second time for its id.
    """
    groups = {base64.b64encode(t.group).decode() for t in txns if t.group}
    fields: dict[str, Any] = {
        "alias": alias,
        "address": info.address if info else "",
        "signer_address": info.signer_address if info else "",
        "mode": info.mode if info else "",
        "txids": [txid(m) for m in messages] if messages is not None else [_txid(t) for t in txns],
        "group_id": ",".join(sorted(groups)),
        "request_ids": [r for r in request_ids if r],
        "outcome": outcome,
        "detail": detail,
    }
    logger.info(
        "signing %s alias=%s address=%s mode=%s txids=%s group=%s requests=%s %s",
        outcome,
        alias,
        fields["address"],
        fields["mode"],
        ",".join(fields["txids"]),
        fields["group_id"] or "-",
        ",".join(fields["request_ids"]) or "-",
        detail,
        extra={"audit": fields},
    )
    _store(fields)
    return fields


def txid(message: bytes) -> str:
    """The id of the transaction whose signing bytes are ``message``."""
    return base64.b32encode(_sha512_256(message)).decode().rstrip("=")


def _sha512_256(data: bytes) -> bytes:
    # OpenSSL's SHA-512/256 is several times faster than py-algorand-sdk's (pure
    # Python wrapper); builds without it fall back to the SDK's.
    try:
        return hashlib.new("sha512_256", data).digest()
    except ValueError:
        return bytes(encoding.checksum(data))


def _txid(txn: transaction.Transaction) -> str:
    try:
        return str(txn.get_txid())
    except Exception:  # a malformed transaction is what is being reported
        return "unencodable"


def _store(fields: dict[str, Any]) -> None:
    try:
        enabled = config.audit_db()
    except Exception as error:  # a bad setting must not undo a signing call
        logger.error("could not read CONFIO_KMS_AUDIT_DB, audit row not stored: %s", error)
        return
    if not enabled:
        return
    from django.db import transaction as db_transaction

    from confio_kms.models import SigningRecord

    try:
        # A savepoint: a failed insert must not break the caller's transaction. (Rows
        # written inside a transaction the caller rolls back are lost with it; the log
        # record is not.)
        with db_transaction.atomic():
            SigningRecord.objects.create(
                alias=fields["alias"],
                address=fields["address"],
                signer_address=fields["signer_address"],
                mode=fields["mode"],
                txids=" ".join(fields["txids"]),
                group_id=fields["group_id"][:200],
                request_ids=" ".join(fields["request_ids"]),
                outcome=fields["outcome"],
                detail=fields["detail"][:500],
            )
    except Exception as error:  # the trail must not break signing; say so loudly
        logger.error("could not store the audit record in the database: %r", error)
