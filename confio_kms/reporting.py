"""Django error reports without the legacy mnemonic.

Django's technical 500 page and its error emails list every setting, hiding only
names that match ``API|TOKEN|KEY|SECRET|PASS|SIGNATURE``: ``ALGORAND_ADMIN_MNEMONIC``
(the legacy sponsor mnemonic) would be shown in full. This filter hides mnemonics,
seeds and private keys too. Turn it on in settings.py::

    DEFAULT_EXCEPTION_REPORTER_FILTER = "confio_kms.reporting.SafeExceptionReporterFilter"

``manage.py check`` warns (``confio_kms.W003``) when a mnemonic setting is configured
and this filter (or a subclass) is not in effect. Frame variables are a separate
matter: confio_kms keeps secrets out of the frames of any traceback it raises
(``confio_kms.common.redaction.holds_secrets``).
"""

from __future__ import annotations

import re

from django.views.debug import SafeExceptionReporterFilter as DjangoFilter

SECRET_SETTING = re.compile(
    "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|MNEMONIC|SEED|PHRASE|PRIVATE", flags=re.IGNORECASE
)


class SafeExceptionReporterFilter(DjangoFilter):
    """Django's filter, hiding also settings whose names say mnemonic, seed or private."""

    hidden_settings = SECRET_SETTING
