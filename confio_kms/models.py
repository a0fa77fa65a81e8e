"""The optional database copy of the audit trail (``CONFIO_KMS_AUDIT_DB = True``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import models


class SigningRecord(models.Model):
    """One signing call: who signed what, with which AWS requests, and how it ended."""

    created = models.DateTimeField(auto_now_add=True, db_index=True)
    alias = models.CharField(max_length=140, db_index=True)
    address = models.CharField(max_length=58, db_index=True)
    signer_address = models.CharField(max_length=58, blank=True)
    kind = models.CharField(max_length=16, blank=True)
    txids = models.TextField(blank=True, help_text="Transaction ids, space-separated.")
    group_id = models.CharField(max_length=200, blank=True)
    request_ids = models.TextField(blank=True, help_text="AWS request ids, for CloudTrail.")
    outcome = models.CharField(max_length=32, db_index=True)
    detail = models.CharField(max_length=500, blank=True)
    fee = models.PositiveBigIntegerField(
        default=0, help_text="Microalgos of fees the signed transactions carry (0 before 0003)."
    )

    class Meta:
        ordering = ("-created",)
        verbose_name = "signing record"

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.alias} {self.outcome}"


def store_signing_record(fields: Mapping[str, Any]) -> None:
    """The audit sink of ``CONFIO_KMS_AUDIT_DB``: one ``SigningRecord`` row per record,
    in a savepoint, so a failed insert does not break the caller's transaction. (Rows
    written inside a transaction the caller rolls back are lost with it; the log
    record is not.)"""
    from django.db import transaction as db_transaction

    with db_transaction.atomic():
        SigningRecord.objects.create(
            alias=fields["alias"],
            address=fields["address"],
            signer_address=fields["signer_address"],
            kind=fields["kind"],
            txids=" ".join(fields["txids"]),
            group_id=fields["group_id"][:200],
            request_ids=" ".join(fields["request_ids"]),
            outcome=fields["outcome"],
            detail=fields["detail"][:500],
            fee=fields.get("fee", 0),
        )


class KeyPause(models.Model):
    """A key paused fleet-wide (``manage.py kms_pause``): every process sharing the
    database refuses to sign with it until the row is deleted (``kms_resume``)."""

    alias = models.CharField(max_length=250, unique=True, help_text="Alias name.")
    reason = models.CharField(max_length=500, blank=True)
    paused_by = models.CharField(max_length=150, blank=True)
    paused_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("alias",)
        verbose_name = "key pause"

    def __str__(self) -> str:
        return f"{self.alias} paused by {self.paused_by or '?'}: {self.reason}"


class LimitUsage(models.Model):
    """What one fixed window of one limit of one key has used (``confio_kms.guardrails``):
    one row per (alias, limit, end user, window), incremented by conditional updates."""

    alias = models.CharField(max_length=250)
    limit = models.CharField(max_length=40, help_text="fees, algos, asset:<id>, calls, ...")
    subject = models.CharField(max_length=200, blank=True, help_text="The end user, if any.")
    window_start = models.BigIntegerField(help_text="Seconds since the epoch.")
    window = models.IntegerField(help_text="Seconds.")
    used = models.BigIntegerField(default=0)

    class Meta:
        ordering = ("-window_start", "alias", "limit")
        verbose_name = "limit usage"
        verbose_name_plural = "limit usage"
        constraints = [  # noqa: RUF012 (Django's own attribute)
            models.UniqueConstraint(
                fields=("alias", "limit", "subject", "window_start"), name="confio_kms_usage_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.alias} {self.limit} {self.subject} @{self.window_start}: {self.used}"
