"""The audit trail: one structured record per signing call.

Records go to the ``confio_kms.audit`` logger (level INFO, the fields also under
``record.audit`` for JSON formatters) with alias, address, key kind, transaction
ids, their fees summed, group id, AWS request ids, outcome and, for envelope keys,
the SSM parameter's ARN, so they can be joined with CloudTrail by request id (or by
the Decrypt events' ``PARAMETER_ARN`` encryption context), then handed to the options' audit sink
(``Options.audit_sink``; the Django app's, with ``CONFIO_KMS_AUDIT_DB`` on, stores
``confio_kms.models.SigningRecord``
rows), and to OpenTelemetry (``confio_kms.core.telemetry``: the call's span and
metrics). A refusal names the policy ``rule`` that refused. Records never carry key
material: they are built from public facts only.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

from algosdk import encoding, transaction

from confio_kms.core import telemetry
from confio_kms.core.key_info import KeyInfo
from confio_kms.core.options import AuditSink

logger = logging.getLogger("confio_kms.audit")


def record(
    info: KeyInfo | None,
    alias: str,
    txns: Sequence[transaction.Transaction],
    outcome: str,
    request_ids: Sequence[str] = (),
    detail: str = "",
    messages: Sequence[bytes] | None = None,
    sink: AuditSink | None = None,
    parameter_arn: str = "",
    rule: str | None = None,
) -> dict[str, Any]:
    """Emit the record of one signing call; return its fields.

    ``messages``, the signed bytes of ``txns`` when the caller has them, spare
    encoding each transaction a second time for its id. ``sink`` (the signer's
    ``Options.audit_sink``) receives the fields after they are logged. ``rule``: the
    policy rule of a refusal; None: the ``rule`` of the error being handled, if any.
    """
    if rule is None:
        rule = getattr(sys.exc_info()[1], "rule", "") if outcome == "refused" else ""
    groups = {base64.b64encode(t.group).decode() for t in txns if t.group}
    fields: dict[str, Any] = {
        "alias": alias,
        "address": info.address if info else "",
        "signer_address": info.signer_address if info else "",
        "kind": info.kind if info else "",
        "txids": [txid(m) for m in messages] if messages is not None else [_txid(t) for t in txns],
        "group_id": ",".join(sorted(groups)),
        "request_ids": [r for r in request_ids if r],
        "outcome": outcome,
        "detail": detail,
        # What the signed transactions' senders pay in fees: the sponsor's spend.
        "fee": _fees(txns),
        # CloudTrail's Decrypt events carry it as their PARAMETER_ARN encryption context.
        "parameter_arn": parameter_arn,
        "rule": rule,
    }
    fields["mode"] = fields["kind"]  # deprecated name of "kind", kept for one release
    if logger.isEnabledFor(logging.INFO):  # else the joins below are work for nothing
        _log(outcome, alias, detail, fields)
    if sink is not None:
        try:
            sink(fields)
        except Exception as error:  # the trail must not undo a signing call; say so loudly
            logger.error("the audit sink failed, the record was only logged: %r", error)
    telemetry.recorded(fields)
    return fields


def _log(outcome: str, alias: str, detail: str, fields: dict[str, Any]) -> None:
    logger.info(
        "signing %s alias=%s address=%s kind=%s txids=%s group=%s requests=%s %s",
        outcome,
        alias,
        fields["address"],
        fields["kind"],
        ",".join(fields["txids"]),
        fields["group_id"] or "-",
        ",".join(fields["request_ids"]) or "-",
        detail,
        extra={"audit": fields},
    )


def txid(message: bytes) -> str:
    """The id of the transaction whose signing bytes are ``message``: the unpadded
    base32 of its SHA-512/256, read as 260 bits (the digest and 4 zero bits) in 26
    pairs of digits (half the time of ``base64.b32encode``: about 5 us a transaction)."""
    bits = int.from_bytes(_sha512_256(message), "big") << 4
    return "".join([_BASE32_PAIRS[(bits >> shift) & 0x3FF] for shift in _PAIR_SHIFTS])


_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_BASE32_PAIRS = [first + second for first in _BASE32 for second in _BASE32]
_PAIR_SHIFTS = range(250, -10, -10)


def _sha512_256(data: bytes) -> bytes:
    # OpenSSL's SHA-512/256 is several times faster than py-algorand-sdk's (pure
    # Python wrapper); builds without it fall back to the SDK's.
    try:
        return hashlib.new("sha512_256", data).digest()
    except ValueError:
        return bytes(encoding.checksum(data))


def _fees(txns: Sequence[transaction.Transaction]) -> int:
    try:
        return sum(int(t.fee or 0) for t in txns)
    except (AttributeError, TypeError, ValueError):  # a malformed transaction is reported
        return 0


def _txid(txn: transaction.Transaction) -> str:
    try:
        return str(txn.get_txid())
    except Exception:  # a malformed transaction is what is being reported
        return "unencodable"
