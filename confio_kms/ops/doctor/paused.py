"""The pause check: a configured key paused with ``kms_pause`` signs nothing anywhere."""

from __future__ import annotations

from confio_kms.algorand.validation import Alias
from confio_kms.common import exceptions as exc
from confio_kms.ops.doctor.report import Finding, Status
from confio_kms.ops.doctor.state import Checkup


def check_pauses(doctor: Checkup) -> list[Finding]:
    """A warning per configured alias that is paused; none when there is no guard."""
    guard = doctor.conf.options.guard
    if guard is None:
        return []
    found = []
    for target in doctor.targets:
        alias = str(Alias(target.name))
        try:
            reason = guard.paused(target.name)
        except exc.GuardUnavailableError as error:
            found.append(
                Finding("key.paused", Status.UNKNOWN, error.message, error.fix or "", alias)
            )
            continue
        if reason is not None:
            found.append(
                Finding(
                    "key.paused",
                    Status.WARN,
                    f"{alias} is paused ({reason or 'no reason given'}): every process "
                    "refuses to sign with it.",
                    f"Resume it when it is safe: manage.py kms_resume {target.name}.",
                    alias,
                )
            )
    return found
