"""Keep secrets out of botocore's DEBUG wire logging, and out of error reports.

With DEBUG on, botocore logs request bodies (``botocore.endpoint``: PutParameter's
``Value``) and response bodies (``botocore.parsers``: GetParameter's decrypted
``Value``). A filter on those loggers rewrites such records before any handler sees
them. Logger filters survive an application's own ``logging.config.dictConfig``
(which replaces handlers, not filters), so this holds whatever logging the project
sets up.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

# JSON fields whose values may be secret in SSM and KMS requests and responses.
_SECRET_FIELDS = ("Value", "Plaintext", "PrivateKey", "Mnemonic", "SecretString")
_SECRET_JSON = re.compile(r'("(?:' + "|".join(_SECRET_FIELDS) + r')"\s*:\s*)"(?:[^"\\]|\\.)*"')
_SECRET_DICT = re.compile(
    r"('(?:" + "|".join(_SECRET_FIELDS) + r")'\s*:\s*)(['\"])(?:(?!\2)[^\\]|\\.)*\2"
)
REDACTED = "***redacted by confio_kms***"

# Loggers known to print bodies, plus every botocore/boto3/urllib3 logger that exists
# when the filter is installed (botocore creates its loggers at import time).
_KNOWN_LOGGERS = ("botocore.endpoint", "botocore.parsers", "botocore.hooks", "botocore.auth")
_LOGGER_PREFIXES = ("botocore", "boto3", "urllib3", "s3transfer")


def redact(text: str) -> str:
    """Replace the values of secret-bearing fields in ``text`` with a marker."""
    text = _SECRET_JSON.sub(lambda m: f'{m.group(1)}"{REDACTED}"', text)
    return _SECRET_DICT.sub(lambda m: f"{m.group(1)}'{REDACTED}'", text)


class RedactSecretsFilter(logging.Filter):
    """Rewrites a record whose formatted message carries a secret field."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


_FILTER = RedactSecretsFilter()
_lock = threading.Lock()


def install_redaction() -> None:
    """Attach the filter to botocore's loggers; safe to call any number of times."""
    with _lock:
        names = set(_KNOWN_LOGGERS)
        names.update(
            name
            for name in list(logging.root.manager.loggerDict)
            if name.split(".", 1)[0] in _LOGGER_PREFIXES
        )
        for name in names:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)


class HiddenStr(str):
    """A secret string (a backup mnemonic) whose repr hides it.

    Error reporters and debuggers show locals by their repr; the value itself is
    still the string, for the one deliberate display.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "<hidden>"


P = ParamSpec("P")
R = TypeVar("R")


def holds_secrets(func: Callable[P, R]) -> Callable[P, R]:
    """Mark ``func`` as holding a private key, seed or mnemonic in its frames.

    Error reporters (Django's technical 500 page and error emails, Sentry) render the
    local variables of every frame of a traceback and of its ``__cause__`` and
    ``__context__`` chain; Django's ``sensitive_variables`` hides them only with
    DEBUG off. An exception escaping ``func`` is re-raised from here instead, without
    the frames below (``func``'s and whatever it called), without its chain, and with
    this frame's arguments deleted. The exception's message says what failed: messages
    never carry secrets.
    """

    @functools.wraps(func)
    def secret_section(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except BaseException as error:
            failure = error
        del args, kwargs  # this frame stays in the traceback: keep nothing secret in it
        failure.__cause__ = failure.__context__ = None
        failure.__suppress_context__ = True
        raise failure.with_traceback(None)

    return secret_section


HIDDEN_SETTING = "<hidden by confio_kms>"


class HiddenSetting(HiddenStr):
    """A setting's secret value (the legacy sponsor mnemonic) that no rendering shows.

    Django's error pages and emails render every setting (by repr) and every frame's
    locals, hiding only names like KEY or SECRET; ``repr``, ``str`` and formatting of
    this value give a marker instead. String operations (``split``, ``join``) still
    see the phrase; ``reveal`` returns it as a plain ``str`` for the one reader.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return HIDDEN_SETTING

    def __str__(self) -> str:
        return HIDDEN_SETTING

    def __format__(self, format_spec: str) -> str:
        return format(HIDDEN_SETTING, format_spec)

    def reveal(self) -> str:
        """The value as a plain ``str`` (``str.__str__`` copies a subclass's text)."""
        return str.__str__(self)


def reveal(value: object) -> str:
    """``value`` as text: a ``HiddenSetting``'s own text, else ``str(value)``."""
    if isinstance(value, HiddenSetting):
        return value.reveal()
    return str(value)
