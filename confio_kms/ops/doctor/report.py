"""The doctor's report: ``Finding``s with a ``Status``, and the findings every check
area builds the same way (cannot tell, a reminder)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from confio_kms.common import exceptions as exc


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    UNKNOWN = "unknown"
    REMINDER = "reminder"


@dataclass(frozen=True)
class Finding:
    """One checked item: ``check`` is a stable id (``key.state``), ``subject`` what it
    is about (an alias, the identity, the region), ``fix`` what to do ("" on a pass)."""

    check: str
    status: Status
    message: str
    fix: str = ""
    subject: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "subject": self.subject or None,
            "status": self.status.value,
            "message": self.message,
            "fix": self.fix or None,
        }


@dataclass(frozen=True)
class Report:
    """Every finding of one run, in the order checked."""

    findings: tuple[Finding, ...]
    region: str = ""

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if f.status is Status.FAIL]

    def counts(self) -> dict[str, int]:
        return {status.value: sum(f.status is status for f in self.findings) for status in Status}

    def as_dict(self) -> dict[str, Any]:
        return {
            "region": self.region or None,
            "findings": [f.as_dict() for f in self.findings],
            "counts": self.counts(),
            "failed": [f.check for f in self.failed],
        }


def one_line(error: exc.ConfioKMSError) -> str:
    text = error.message + (f" ({error.said}: {error.cause})" if error.cause else "")
    return " ".join(text.split())


def unknown(check: str, subject: str, error: exc.ConfioKMSError) -> Finding:
    denied = isinstance(error, exc.AccessDeniedError)
    return Finding(
        check,
        Status.UNKNOWN,
        f"Cannot tell: {one_line(error)}",
        (error.fix or "") if not denied else f"{error.fix} (or run the doctor as an operator)",
        subject,
    )


def reminder(check: str, message: str) -> Finding:
    return Finding(check, Status.REMINDER, message)
