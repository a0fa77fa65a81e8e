"""What ``kms_pause`` and ``kms_resume`` share: the guard must be on, and confirmation."""

from __future__ import annotations

from confio_kms import settings as config
from confio_kms.algorand.validation import alias_name
from confio_kms.common.exceptions import ConfigurationError
from confio_kms.core.options import AuditSink
from confio_kms.guardrails import pause as pause
from confio_kms.guardrails import resume as resume
from confio_kms.management.base import KMSCommand


class GuardCommand(KMSCommand):
    confirms = True

    def key_name(self, name: str) -> str:
        """The alias name, once the guard is known to be on (else a pause does nothing)."""
        name = alias_name(name)
        if not config.guard_on():
            raise ConfigurationError(
                "CONFIO_KMS_GUARD is off in these settings, so signers do not read pauses: "
                "nothing was changed.",
                fix="Turn CONFIO_KMS_GUARD on (the default) where the signers run, and "
                "run `manage.py migrate confio_kms`.",
            )
        return name

    def audit_sink(self) -> AuditSink | None:
        return config.options().audit_sink
