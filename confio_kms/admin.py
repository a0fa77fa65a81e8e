"""A read-only admin for the audit trail: records can be read, never edited."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from confio_kms.models import SigningRecord


@admin.register(SigningRecord)
class SigningRecordAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("created", "alias", "address", "kind", "outcome")
    list_filter = ("outcome", "kind", "alias")
    search_fields = ("txids", "request_ids", "address", "group_id")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
