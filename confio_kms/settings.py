"""The settings lookup: every confio_kms setting, where it is looked up, its default.

Each setting is read from Django settings first, then from the environment or a
``.env`` / ``settings.ini`` file through python-decouple (searched from
``settings.BASE_DIR``, else the working directory). A missing or invalid value
raises ``ConfigurationError`` (an ``ImproperlyConfigured``) naming every place
that was looked in. Every module reads its settings here, when it uses them (so
``override_settings`` is honoured), except the AWS client settings, read when a
signer or manager builds its clients, and the native pool's size, read on first use.
Nothing here imports the rest of the package.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from decouple import AutoConfig, UndefinedValueError
from django.utils.functional import Promise

from confio_kms.algorand import networks, validation
from confio_kms.common.exceptions import ConfigurationError, InvalidAliasError

T = TypeVar("T")
_MISSING: Any = object()
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
# The setup guide's region, the default of KMS_REGION.
DEFAULT_REGION = "eu-central-2"
DEFAULT_ALIAS = {"testnet": "confio-testnet-sponsor", "mainnet": "confio-mainnet-sponsor"}
ALIAS_SETTING = {"testnet": "KMS_KEY_ALIAS_TESTNET", "mainnet": "KMS_KEY_ALIAS_MAINNET"}
# Entries expire so that a rotation made by another process is picked up: within this
# many seconds a worker stops signing with the retired key. Two requests per alias
# and process every five minutes is the cost.
DEFAULT_CACHE_TIMEOUT = 300
DEFAULT_MAX_FEE = 50_000


def as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{value!r} is not a boolean (use true or false)")


def as_int(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a whole number")
    return int(str(value)) if not isinstance(value, int) else value


@functools.lru_cache(maxsize=8)
def _autoconfig(search_path: str) -> AutoConfig:
    # AutoConfig reads its .env once; os.environ is still consulted on every lookup.
    return AutoConfig(search_path=search_path)


def _search_path() -> str:
    # A string, not a Path: this runs on every lookup, in the signing path too.
    from django.conf import settings

    base = getattr(settings, "BASE_DIR", None) if settings.configured else None
    return str(base) if base else os.getcwd()


def places(name: str) -> str:
    """Where ``name`` is looked for, in order, for error messages."""
    base = Path(_search_path())
    return (
        f"settings.{name}, the environment variable {name}, "
        f"{base / '.env'} or {base / 'settings.ini'}"
    )


def setting(name: str, default: Any = _MISSING, cast: Callable[[Any], T] = str) -> T:  # type: ignore[assignment]
    """Look ``name`` up in Django settings, then the environment / .env; cast it."""
    from django.conf import settings

    source = f"settings.{name}"
    value: Any = _MISSING
    if settings.configured and hasattr(settings, name):
        value = getattr(settings, name)
    else:
        try:
            value = _autoconfig(_search_path())(name)
            source = f"the environment variable or .env entry {name}"
        except UndefinedValueError:
            value = _MISSING
    if value is _MISSING:
        if default is _MISSING:
            raise ConfigurationError(
                f"The setting {name} is missing.",
                fix=f"Set it in one of: {places(name)}.",
            )
        return default  # type: ignore[no-any-return]
    try:
        return cast(value)
    except (TypeError, ValueError) as error:
        raise ConfigurationError(
            f"The setting {name} from {source} is invalid: {error}.",
            fix=f"Correct it; it is looked up in: {places(name)}.",
        ) from None


@dataclass(frozen=True)
class KMSSettings:
    """A snapshot of the confio_kms settings, read by ``kms_settings``."""

    use_kms_signing: bool
    confio_env: str
    alias_testnet: str
    alias_mainnet: str
    region: str
    ssm_prefix: str
    endpoint_url: str | None
    sandbox: bool

    def alias_for(self, network: str) -> str:
        """The configured alias of ``network`` (testnet's for any other network)."""
        return self.alias_mainnet if network == "mainnet" else self.alias_testnet

    @property
    def active_alias(self) -> str:
        """The alias of the network ``CONFIO_ENV`` selects."""
        return self.alias_for(self.confio_env)

    @property
    def active_alias_setting(self) -> str:
        return ALIAS_SETTING[self.confio_env]


def _confio_env(value: object) -> str:
    if value not in networks.DEPLOYMENT_NETWORKS:
        raise ValueError(f"{value!r} is not one of {', '.join(networks.DEPLOYMENT_NETWORKS)}")
    return str(value)


def _region(value: object) -> str:
    if not isinstance(value, str) or not _REGION.fullmatch(value):
        raise ValueError(f"{value!r} is not an AWS region name such as eu-central-2")
    return value


def _alias(value: object) -> str:
    try:
        return validation.alias_name(value)
    except InvalidAliasError as error:
        raise ValueError(error.message) from None


def _prefix(value: object) -> str:
    try:
        return validation.ssm_prefix(value)
    except InvalidAliasError as error:
        raise ValueError(error.message) from None


def _optional_url(value: object) -> str | None:
    text = str(value or "").strip()
    if text and not re.fullmatch(r"https?://\S+", text):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return text or None


def kms_settings() -> KMSSettings:
    """Read every confio_kms setting now (so ``override_settings`` is honoured)."""
    return KMSSettings(
        use_kms_signing=setting("USE_KMS_SIGNING", False, as_bool),
        confio_env=setting("CONFIO_ENV", "testnet", _confio_env),
        alias_testnet=setting(ALIAS_SETTING["testnet"], DEFAULT_ALIAS["testnet"], _alias),
        alias_mainnet=setting(ALIAS_SETTING["mainnet"], DEFAULT_ALIAS["mainnet"], _alias),
        region=setting("KMS_REGION", DEFAULT_REGION, _region),
        ssm_prefix=setting("KMS_SSM_PREFIX", validation.DEFAULT_SSM_PREFIX, _prefix),
        endpoint_url=setting("KMS_ENDPOINT_URL", None, _optional_url),
        sandbox=setting("CONFIO_SANDBOX", False, as_bool),
    )


# The setup guide's alias convention: confio-<network>-<role>.
ALIAS_CONVENTION = {f"confio-{network}-": network for network in networks.DEPLOYMENT_NETWORKS}


def network_of_alias(name: str) -> str:
    """The network an alias name stands for, or "" when it names none.

    The aliases configured as ``KMS_KEY_ALIAS_MAINNET`` / ``KMS_KEY_ALIAS_TESTNET``
    first, then the guide's convention (``confio-mainnet-*``, ``confio-testnet-*``).
    A rotation's staging alias stands for the same network as its alias.
    """
    name = name.removesuffix(validation.RESERVED_SUFFIX)
    for network, setting_name in ALIAS_SETTING.items():
        if setting(setting_name, DEFAULT_ALIAS[network], _alias) == name:
            return network
    return next((net for prefix, net in ALIAS_CONVENTION.items() if name.startswith(prefix)), "")


def region(explicit: str | None, aws_default: str | None) -> str:
    """The AWS region for a manager or signer: ``explicit``, else ``KMS_REGION``
    (settings, environment, .env), else ``aws_default`` (the boto3 session's region:
    ``AWS_DEFAULT_REGION``, the profile), else the guide's ``eu-central-2``."""
    configured: str | None = explicit or setting("KMS_REGION", None, _region)
    return configured or aws_default or DEFAULT_REGION


def configured_sponsor_address() -> str:
    """``ALGORAND_SPONSOR_ADDRESS`` as configured by hand, ignoring ``sponsor_address``."""
    from django.conf import settings

    value = getattr(settings, "ALGORAND_SPONSOR_ADDRESS", None) if settings.configured else None
    if value is not None and not isinstance(value, Promise):
        return str(value)
    return str(_autoconfig(_search_path())("ALGORAND_SPONSOR_ADDRESS", default=""))


def cache_alias() -> str:
    """``CONFIO_KMS_CACHE``: the Django cache that processes share lookups through."""
    return setting("CONFIO_KMS_CACHE", "default", str)


def _seconds(value: object) -> float:
    if value is None:
        return math.inf  # Django's way of saying "never expire"
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number of seconds")
    seconds = float(str(value)) if not isinstance(value, int | float) else float(value)
    if not seconds >= 0:
        raise ValueError(f"{value!r} is not 0 seconds or more")
    return seconds


def cache_timeout() -> float:
    """``CONFIO_KMS_CACHE_TIMEOUT`` in seconds; ``math.inf`` for never (``None``)."""
    return setting("CONFIO_KMS_CACHE_TIMEOUT", float(DEFAULT_CACHE_TIMEOUT), _seconds)


def audit_db() -> bool:
    """``CONFIO_KMS_AUDIT_DB``: also store audit records as database rows."""
    return setting("CONFIO_KMS_AUDIT_DB", False, as_bool)


# AWS request limits, for a web request: a request that gets no answer is abandoned
# after the read timeout, and a signing call (its lookups, requests and retries
# together) starts nothing new once its deadline has passed.
DEFAULT_CONNECT_TIMEOUT = 2.0
DEFAULT_READ_TIMEOUT = 5.0
DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_CALL_DEADLINE = 10.0


def _positive_seconds(value: object) -> float:
    if value is None or isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number of seconds")
    seconds = float(str(value)) if not isinstance(value, int | float) else float(value)
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"{value!r} is not a number of seconds above 0")
    return seconds


def _attempts(value: object) -> int:
    attempts = as_int(value)
    if not 1 <= attempts <= 10:
        raise ValueError(f"{value!r} is not a number of attempts from 1 to 10")
    return attempts


def connect_timeout() -> float:
    """``CONFIO_KMS_CONNECT_TIMEOUT``: seconds to wait for a connection to AWS."""
    return setting("CONFIO_KMS_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT, _positive_seconds)


def read_timeout() -> float:
    """``CONFIO_KMS_READ_TIMEOUT``: seconds to wait for AWS's answer to one request."""
    return setting("CONFIO_KMS_READ_TIMEOUT", DEFAULT_READ_TIMEOUT, _positive_seconds)


def max_attempts() -> int:
    """``CONFIO_KMS_MAX_ATTEMPTS``: attempts per AWS request, the first one included."""
    return setting("CONFIO_KMS_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS, _attempts)


def call_deadline() -> float:
    """``CONFIO_KMS_CALL_DEADLINE``: seconds one signing call may spend on AWS."""
    return setting("CONFIO_KMS_CALL_DEADLINE", DEFAULT_CALL_DEADLINE, _positive_seconds)


DEFAULT_THROTTLE_WAIT = 5.0
DEFAULT_COALESCE_MAX_CALLS = 16
DEFAULT_COALESCE_MAX_WAIT = 5.0


def throttle_wait() -> float:
    """``CONFIO_KMS_THROTTLE_WAIT``: seconds a request keeps retrying while AWS throttles
    it (within the call's deadline) before the throttling error is raised."""
    return setting("CONFIO_KMS_THROTTLE_WAIT", DEFAULT_THROTTLE_WAIT, _seconds)


@dataclass(frozen=True)
class Coalescing:
    """How concurrent signing calls for one envelope key share its decrypt."""

    enabled: bool
    max_calls: int
    max_wait: float


def _calls(value: object) -> int:
    calls = as_int(value)
    if calls < 1:
        raise ValueError(f"{value!r} is not 1 or more")
    return calls


def coalescing() -> Coalescing:
    """``CONFIO_KMS_COALESCE`` (on by default), ``CONFIO_KMS_COALESCE_MAX_CALLS`` (calls
    one decrypt may serve) and ``CONFIO_KMS_COALESCE_MAX_WAIT`` (seconds a call may wait
    for another call's decrypt)."""
    return Coalescing(
        enabled=setting("CONFIO_KMS_COALESCE", True, as_bool),
        max_calls=setting("CONFIO_KMS_COALESCE_MAX_CALLS", DEFAULT_COALESCE_MAX_CALLS, _calls),
        max_wait=setting(
            "CONFIO_KMS_COALESCE_MAX_WAIT", DEFAULT_COALESCE_MAX_WAIT, _positive_seconds
        ),
    )


def _concurrency(value: object) -> int:
    threads = as_int(value)
    if not 1 <= threads <= 64:
        raise ValueError(f"{value!r} is not a number of requests from 1 to 64")
    return threads


def native_concurrency() -> int:
    """``CONFIO_KMS_NATIVE_CONCURRENCY``: native keys' Sign requests in flight at once in
    this process (read when the first native signature is made)."""
    return setting("CONFIO_KMS_NATIVE_CONCURRENCY", networks.MAX_GROUP_SIZE, _concurrency)
