"""A read-only admin for the audit trail, the pauses and the limits' usage: rows can be
read, never edited here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from confio_kms import settings as config
from confio_kms.models import KeyPause, LimitUsage, SigningRecord


class _ReadOnly(admin.ModelAdmin):  # type: ignore[type-arg]
    """Read-only: rows are written by signing calls and the commands (kms_pause,
    kms_resume), which audit what they do."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SigningRecord)
class SigningRecordAdmin(_ReadOnly):
    list_display = ("created", "alias", "address", "kind", "outcome")
    list_filter = ("outcome", "kind", "alias")
    search_fields = ("txids", "request_ids", "address", "group_id")


@admin.register(KeyPause)
class KeyPauseAdmin(_ReadOnly):
    list_display = ("alias", "reason", "paused_by", "paused_at")


@admin.register(LimitUsage)
class LimitUsageAdmin(_ReadOnly):
    list_display = ("alias", "limit", "subject", "window_starts", "window", "used", "maximum")
    list_filter = ("alias", "limit")
    search_fields = ("subject",)

    @admin.display(description="window starts (UTC)")
    def window_starts(self, row: LimitUsage) -> str:
        return datetime.fromtimestamp(row.window_start, UTC).isoformat(timespec="seconds")

    @admin.display(description="limit (settings)")
    def maximum(self, row: LimitUsage) -> str:
        """The limit the settings declare now (CONFIO_KMS_LIMITS), for comparison."""
        limits = config.limits().get(row.alias)
        if limits is None:
            return "-"
        if row.limit.startswith("asset:"):
            value = limits.assets.get(int(row.limit.removeprefix("asset:")))
        else:
            value = getattr(limits, row.limit, None)
        return "-" if value is None else str(value)
