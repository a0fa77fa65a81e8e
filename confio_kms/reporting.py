"""Django error reports without the legacy mnemonic.

Django's technical 500 page and its error emails list every setting, hiding only
names that match ``API|TOKEN|KEY|SECRET|PASS|SIGNATURE``: ``ALGORAND_ADMIN_MNEMONIC``
(the legacy sponsor mnemonic) would be shown in full. This filter hides mnemonics,
seeds and private keys too. Turn it on in settings.py::

    DEFAULT_EXCEPTION_REPORTER_FILTER = "confio_kms.reporting.SafeExceptionReporterFilter"

``ALGORAND_ADMIN_MNEMONIC`` itself is hidden whatever the filter: when the app is
ready (and whenever ``override_settings`` changes it), its Django setting becomes a
``HiddenSetting`` whose repr and str are a marker (``hide_legacy_mnemonic``), and its
environment variable is hidden in the copy of the environment that ``runserver`` hands
each request as ``request.META``. ``manage.py check`` warns (``confio_kms.W003``) when
another setting or environment variable named like a mnemonic, or holding an Algorand
secret, would be shown and this filter (or a subclass) is not in effect. Frame
variables are a separate matter: confio_kms keeps secrets out of the frames of any
traceback it raises (``confio_kms.common.redaction.holds_secrets``).
"""

from __future__ import annotations

import re
from typing import Any

from django.views.debug import SafeExceptionReporterFilter as DjangoFilter

from confio_kms import settings as config
from confio_kms.common.redaction import HiddenSetting
from confio_kms.ops.secrets import LEGACY_MNEMONIC, holds_algorand_secret

SECRET_SETTING = re.compile(
    "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|MNEMONIC|SEED|PHRASE|PRIVATE", flags=re.IGNORECASE
)


class SafeExceptionReporterFilter(DjangoFilter):
    """Django's filter, hiding also settings whose names say mnemonic, seed or private."""

    hidden_settings = SECRET_SETTING


def hide_legacy_mnemonic() -> None:
    """Hide the legacy mnemonic from Django's error reports, whatever the filter: the
    Django setting (``confio_kms.settings.hide_admin_mnemonic``), and the environment
    variables of the copy of the environment that wsgiref (``runserver``) gives every
    request as ``request.META``, which the debug page lists."""
    config.hide_admin_mnemonic()
    # wsgiref copies os.environ once, at import, into BaseHandler.os_environ; imported
    # here so that the copy exists now and is the one later requests start from.
    from wsgiref.handlers import BaseHandler

    environ = BaseHandler.os_environ
    for name, value in list(environ.items()):
        hidden = isinstance(value, HiddenSetting)
        if not hidden and (name == LEGACY_MNEMONIC or holds_algorand_secret(value)):
            environ[name] = HiddenSetting(value)


def rehide_legacy_mnemonic(*, setting: str, **kwargs: Any) -> None:
    """``setting_changed`` receiver: ``override_settings`` (and tests) set a new value."""
    if setting == LEGACY_MNEMONIC:
        config.hide_admin_mnemonic()
