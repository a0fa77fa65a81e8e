"""The one door for settings: every confio_kms setting, where it is looked up, its default.

Each setting is read from Django settings first, then from the environment or a
``.env`` / ``settings.ini`` file through python-decouple (searched from
``settings.BASE_DIR``, else the working directory). A missing or invalid value
raises ``ConfigurationError`` (an ``ImproperlyConfigured``) naming every place
that was looked in.

This is the only module of the package that reads settings. The signing core and
the key lifecycle read none: they take an ``Options`` (``confio_kms.core.options``),
which ``options()`` builds from the settings, now (so ``override_settings`` around
the construction of a signer or manager is honoured). The Django app's classes
(``confio_kms.signers``, the package's top-level names) call it when built without
options; the factory, the sponsor service and the commands read the rest here.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import boto3
from botocore.exceptions import BotoCoreError
from decouple import AutoConfig, UndefinedValueError
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.functional import Promise

from confio_kms import casts
from confio_kms.algorand import networks, validation
from confio_kms.casts import as_bool, as_int, is_loopback
from confio_kms.common import redaction
from confio_kms.common.exceptions import ConfigurationError
from confio_kms.core import options as core_options
from confio_kms.core.aws import SERVICES
from confio_kms.core.limits import Limits
from confio_kms.core.options import Coalescing, Options
from confio_kms.core.policy import SigningPolicy
from confio_kms.django_cache import DjangoCache as DjangoCache
from confio_kms.guardrails import DatabaseGuard
from confio_kms.lifecycle import policies
from confio_kms.snapshot import ALIAS_SETTING as ALIAS_SETTING
from confio_kms.snapshot import KMSSettings as KMSSettings
from confio_kms.snapshot import LegacySettings as LegacySettings

# The defaults are the core's (confio_kms.core.options), also named here for importers.
ALIAS_CONVENTION = core_options.ALIAS_CONVENTION
DEFAULT_ALIAS = core_options.DEFAULT_ALIAS
DEFAULT_CACHE_TIMEOUT = core_options.DEFAULT_CACHE_TIMEOUT
DEFAULT_CALL_DEADLINE = core_options.DEFAULT_CALL_DEADLINE
DEFAULT_COALESCE_MAX_CALLS = core_options.DEFAULT_COALESCE_MAX_CALLS
DEFAULT_COALESCE_MAX_WAIT = core_options.DEFAULT_COALESCE_MAX_WAIT
DEFAULT_COALESCE_JOIN_WINDOW = core_options.DEFAULT_COALESCE_JOIN_WINDOW
DEFAULT_CONNECT_TIMEOUT = core_options.DEFAULT_CONNECT_TIMEOUT
DEFAULT_MAX_ATTEMPTS = core_options.DEFAULT_MAX_ATTEMPTS
DEFAULT_MAX_FEE = core_options.DEFAULT_MAX_FEE
DEFAULT_READ_TIMEOUT = core_options.DEFAULT_READ_TIMEOUT
DEFAULT_REGION = core_options.DEFAULT_REGION
DEFAULT_THROTTLE_WAIT = core_options.DEFAULT_THROTTLE_WAIT

T = TypeVar("T")
_MISSING: Any = object()
logger = logging.getLogger("confio_kms.settings")


@functools.lru_cache(maxsize=8)
def _autoconfig(search_path: str) -> AutoConfig:
    # AutoConfig reads its .env once; os.environ is still consulted on every lookup.
    return AutoConfig(search_path=search_path)


def _search_path() -> str:
    # A string, not a Path: this runs on most lookups.
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
    source = f"settings.{name}"
    # One attribute lookup: a missing Django setting costs an exception each time.
    value: Any = getattr(settings, name, _MISSING) if settings.configured else _MISSING
    if value is _MISSING:
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


def kms_settings() -> KMSSettings:
    """Read every confio_kms setting now (so ``override_settings`` is honoured)."""
    return KMSSettings(
        use_kms_signing=setting("USE_KMS_SIGNING", False, as_bool),
        confio_env=setting("CONFIO_ENV", "testnet", casts.confio_env),
        alias_testnet=setting(ALIAS_SETTING["testnet"], DEFAULT_ALIAS["testnet"], casts.alias),
        alias_mainnet=setting(ALIAS_SETTING["mainnet"], DEFAULT_ALIAS["mainnet"], casts.alias),
        kms_region=setting("KMS_REGION", None, casts.region),
        ssm_prefix=setting("KMS_SSM_PREFIX", validation.DEFAULT_SSM_PREFIX, casts.prefix),
        endpoint_url=setting("KMS_ENDPOINT_URL", None, casts.optional_url),
        sandbox=setting("CONFIO_SANDBOX", False, as_bool),
    )


def network_of_alias(name: str) -> str:
    """The network an alias name stands for, or "" when it names none: the aliases
    configured as ``KMS_KEY_ALIAS_TESTNET`` / ``KMS_KEY_ALIAS_MAINNET`` first, then the
    guide's convention (``confio_kms.core.options.network_of_alias``)."""
    return core_options.network_of_alias(
        name,
        setting(ALIAS_SETTING["testnet"], DEFAULT_ALIAS["testnet"], casts.alias),
        setting(ALIAS_SETTING["mainnet"], DEFAULT_ALIAS["mainnet"], casts.alias),
    )


def configured_sponsor_address() -> str:
    """``ALGORAND_SPONSOR_ADDRESS`` as configured by hand, ignoring ``sponsor_address``."""
    value = getattr(settings, "ALGORAND_SPONSOR_ADDRESS", None) if settings.configured else None
    if value is not None and not isinstance(value, Promise):
        return str(value)
    return str(_autoconfig(_search_path())("ALGORAND_SPONSOR_ADDRESS", default=""))


def cache_alias() -> str:
    """``CONFIO_KMS_CACHE``: the Django cache that processes share lookups through."""
    return setting("CONFIO_KMS_CACHE", "default", str)


def cache_mac_key() -> bytes | None:
    """The key of the shared cache entries' MACs: derived from ``SECRET_KEY`` for this
    purpose alone (as Django's signing does); None without Django settings or a
    ``SECRET_KEY``, and then alias lookups are not shared between processes."""
    from django.core.exceptions import ImproperlyConfigured
    from django.utils.crypto import salted_hmac

    if not settings.configured:
        return None
    try:
        mac_key = salted_hmac("confio_kms.cache", "entries", algorithm="sha256").digest()
    except ImproperlyConfigured:  # an empty SECRET_KEY
        return None
    return bytes(mac_key)


def cache_timeout() -> float:
    """``CONFIO_KMS_CACHE_TIMEOUT`` in seconds; ``math.inf`` for never (``None``)."""
    return setting("CONFIO_KMS_CACHE_TIMEOUT", float(DEFAULT_CACHE_TIMEOUT), casts.seconds)


def audit_db() -> bool:
    """``CONFIO_KMS_AUDIT_DB``: also store audit records as database rows."""
    return setting("CONFIO_KMS_AUDIT_DB", False, as_bool)


def connect_timeout() -> float:
    """``CONFIO_KMS_CONNECT_TIMEOUT``: seconds to wait for a connection to AWS."""
    return setting("CONFIO_KMS_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT, casts.positive_seconds)


def read_timeout() -> float:
    """``CONFIO_KMS_READ_TIMEOUT``: seconds to wait for AWS's answer to one request."""
    return setting("CONFIO_KMS_READ_TIMEOUT", DEFAULT_READ_TIMEOUT, casts.positive_seconds)


def max_attempts() -> int:
    """``CONFIO_KMS_MAX_ATTEMPTS``: attempts per AWS request, the first one included."""
    return setting("CONFIO_KMS_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS, casts.attempts)


def call_deadline() -> float:
    """``CONFIO_KMS_CALL_DEADLINE``: seconds one signing call may spend on AWS."""
    return setting("CONFIO_KMS_CALL_DEADLINE", DEFAULT_CALL_DEADLINE, casts.positive_seconds)


def throttle_wait() -> float:
    """``CONFIO_KMS_THROTTLE_WAIT``: seconds a request keeps retrying while AWS throttles
    it (within the call's deadline) before the throttling error is raised."""
    return setting("CONFIO_KMS_THROTTLE_WAIT", DEFAULT_THROTTLE_WAIT, casts.seconds)


def coalescing() -> Coalescing:
    """``CONFIO_KMS_COALESCE`` (on by default), ``CONFIO_KMS_COALESCE_MAX_CALLS`` (calls
    one decrypt may serve), ``CONFIO_KMS_COALESCE_MAX_WAIT`` (seconds a call may wait
    for another call's decrypt) and ``CONFIO_KMS_COALESCE_JOIN_WINDOW`` (seconds a decrypt
    in flight accepts new calls)."""
    return Coalescing(
        enabled=setting("CONFIO_KMS_COALESCE", True, as_bool),
        max_calls=setting("CONFIO_KMS_COALESCE_MAX_CALLS", DEFAULT_COALESCE_MAX_CALLS, casts.calls),
        max_wait=setting(
            "CONFIO_KMS_COALESCE_MAX_WAIT", DEFAULT_COALESCE_MAX_WAIT, casts.positive_seconds
        ),
        join_window=setting(
            "CONFIO_KMS_COALESCE_JOIN_WINDOW", DEFAULT_COALESCE_JOIN_WINDOW, casts.positive_seconds
        ),
    )


def native_concurrency() -> int:
    """``CONFIO_KMS_NATIVE_CONCURRENCY``: native keys' Sign requests in flight at once in
    this process (per size: signers built with the same value share them)."""
    return setting("CONFIO_KMS_NATIVE_CONCURRENCY", networks.MAX_GROUP_SIZE, casts.concurrency)


def key_policy_account() -> str:
    """``CONFIO_KMS_KEY_POLICY_ACCOUNT``: when set (a 12-digit account id), every key
    confio-kms creates gets the key policy for that account at creation; "" when not."""
    return setting("CONFIO_KMS_KEY_POLICY_ACCOUNT", "", policies.key_policy_account)


# boto3's variables that move an endpoint (AWS_ENDPOINT_URL, _KMS, a profile's endpoint_url).
_ENDPOINT_VARIABLES = ("ENDPOINT", "PROFILE", "CONFIG_FILE")


@functools.lru_cache(maxsize=16)
def _resolved_endpoints(
    endpoint_url: str | None, region: str, environment: tuple[tuple[str, str], ...]
) -> tuple[str, ...]:
    # boto3 decides (KMS_ENDPOINT_URL, else its own variables and profile); building
    # clients is slow, so once per configuration (``environment`` is only the cache key).
    try:
        # Any: boto3's stubs type client() per literal service name.
        build: Any = boto3.Session().client
        return tuple(
            str(build(name, region_name=region, endpoint_url=endpoint_url).meta.endpoint_url)
            for name in SERVICES
        )
    except BotoCoreError:
        return ()


def aws_endpoints(snapshot: KMSSettings | None = None) -> tuple[str, ...]:
    """The KMS and SSM endpoint URLs that signers and managers built from the settings
    reach: ``KMS_ENDPOINT_URL``, else boto3's (``AWS_ENDPOINT_URL``, a profile's), else
    AWS itself; () when boto3 cannot tell (a missing profile). No request is made."""
    conf = snapshot or kms_settings()
    environment = tuple(
        sorted(
            (name, value)
            for name, value in os.environ.items()
            if name.startswith("AWS_") and any(word in name for word in _ENDPOINT_VARIABLES)
        )
    )
    return _resolved_endpoints(conf.endpoint_url, conf.region, environment)


def sandbox_endpoint(snapshot: KMSSettings | None = None) -> bool:
    """Whether every AWS endpoint the settings reach is on loopback: the local sandbox
    (``confio_kms.sandbox.LocalAWS``), where no key of a real account lives."""
    endpoints = aws_endpoints(snapshot)
    return bool(endpoints) and all(is_loopback(url) for url in endpoints)


def trusted_genesis() -> frozenset[str]:
    """``CONFIO_KMS_TRUSTED_GENESIS``, plus the sandbox ledger's genesis hash when
    ``CONFIO_SANDBOX`` is on and every AWS endpoint is on loopback (``sandbox_endpoint``):
    keys in real AWS never sign for a ledger that exists only in memory."""
    trusted = set(setting("CONFIO_KMS_TRUSTED_GENESIS", [], casts.hashes))
    if setting("CONFIO_SANDBOX", False, as_bool) and sandbox_endpoint():
        try:
            from confio_kms.sandbox import LocalLedger

            trusted.add(casts.text(LocalLedger.suggested_params().gh))
        except ImportError:
            raise ConfigurationError(
                "CONFIO_SANDBOX is on but the sandbox is not installed.",
                fix="pip install 'confio-kms[sandbox]', or turn CONFIO_SANDBOX off.",
            ) from None
    return frozenset(trusted)


def _delegation(value: object) -> core_options.DelegationConsent:
    if isinstance(value, str) and value.strip().lower() == core_options.EVERY_NETWORK:
        return core_options.EVERY_NETWORK
    # A boolean spelling: off is False; on, alone, is refused for naming no reach.
    return core_options.delegation_consent(as_bool(value), "CONFIO_KMS_ALLOW_DELEGATION")


def allow_delegation() -> core_options.DelegationConsent:
    """``CONFIO_KMS_ALLOW_DELEGATION``: ``"every-network"`` consents to logic-signature
    delegation (valid on every network); False (the default) refuses it; True alone
    raises ``ConfigurationError`` naming the value that consents."""
    return setting("CONFIO_KMS_ALLOW_DELEGATION", False, _delegation)


def signing_policy() -> SigningPolicy:
    """The signing policy the settings describe (``CONFIO_KMS_MAX_FEE``,
    ``CONFIO_KMS_TRUSTED_GENESIS``, ``CONFIO_SANDBOX``, ``CONFIO_KMS_ALLOW_DELEGATION``)."""
    return SigningPolicy(
        max_fee=setting("CONFIO_KMS_MAX_FEE", DEFAULT_MAX_FEE, as_int),
        trusted_genesis=trusted_genesis(),
        allow_delegation=allow_delegation(),
    )


def store_signing_record(fields: Mapping[str, Any]) -> None:
    """The audit sink of ``CONFIO_KMS_AUDIT_DB`` (``confio_kms.models.store_signing_record``,
    imported when first used: the models need Django's apps loaded)."""
    from confio_kms.models import store_signing_record as store

    store(fields)


def _lenient(read: Callable[[], T], fallback: T, consequence: str) -> T:
    """``read()``, or ``fallback`` with an error logged: a bad setting of the cache's
    lifetime or the audit rows must not stop signing."""
    try:
        return read()
    except ConfigurationError as error:
        logger.error("%s %s", error.message, consequence)
        return fallback


def cache_seconds() -> float:
    """``CONFIO_KMS_CACHE_TIMEOUT`` as the cache uses it: an invalid value is logged and
    the default used (signing must not stop over the cache's lifetime)."""
    fallback = float(DEFAULT_CACHE_TIMEOUT)
    return _lenient(cache_timeout, fallback, f"Using {DEFAULT_CACHE_TIMEOUT} seconds.")


def options(snapshot: KMSSettings | None = None) -> Options:
    """The core's ``Options`` from the settings, read now: every setting the signing
    core and the key lifecycle use (see docs/settings.md). ``CONFIO_KMS_CACHE`` is
    the shared cache (when Django is configured), ``CONFIO_KMS_AUDIT_DB`` the audit
    sink. Invalid values raise ``ConfigurationError``, except those of
    ``CONFIO_KMS_CACHE_TIMEOUT`` and ``CONFIO_KMS_AUDIT_DB``, which are logged and
    replaced by their defaults. ``snapshot``: ``kms_settings()`` just read, not read again."""
    aliases = snapshot or kms_settings()
    audit_rows = _lenient(audit_db, False, "Audit rows are not stored; the audit log is.")
    return Options(
        region=aliases.kms_region,
        connect_timeout=connect_timeout(),
        read_timeout=read_timeout(),
        max_attempts=max_attempts(),
        call_deadline=call_deadline(),
        throttle_wait=throttle_wait(),
        coalescing=coalescing(),
        native_concurrency=native_concurrency(),
        pacing=setting("CONFIO_KMS_PACING", True, as_bool),
        pacing_dir=setting("CONFIO_KMS_PACING_DIR", "") or None,
        cache=DjangoCache(cache_alias()) if settings.configured else None,
        cache_timeout=cache_seconds(),
        cache_mac_key=cache_mac_key(),
        audit_sink=store_signing_record if audit_rows else None,
        testnet_alias=aliases.alias_testnet,
        mainnet_alias=aliases.alias_mainnet,
        max_fee=setting("CONFIO_KMS_MAX_FEE", DEFAULT_MAX_FEE, as_int),
        trusted_genesis=trusted_genesis(),
        allow_delegation=allow_delegation(),
        key_policy_account=key_policy_account(),
        limits=limits(),
        guard=DatabaseGuard() if guard_on() else None,
    )


def guard_on() -> bool:
    """``CONFIO_KMS_GUARD``: pauses and limits in the database (default on with the app
    installed and a ``default`` database, where they can be kept)."""
    from django.apps import apps

    installed = settings.configured and apps.ready and apps.is_installed("confio_kms")
    engine = settings.DATABASES.get("default", {}).get("ENGINE", "") if installed else ""
    return installed and setting(
        "CONFIO_KMS_GUARD", bool(engine) and "dummy" not in engine, as_bool
    )


def limits() -> dict[str, Limits]:
    """``CONFIO_KMS_LIMITS``: alias name -> its limits (docs/limits.md)."""
    value = setting("CONFIO_KMS_LIMITS", {}, casts.mapping)
    return {
        str(name): Limits.of(one, f"CONFIO_KMS_LIMITS[{name!r}]") for name, one in value.items()
    }


def sponsor_fee_cap(default: int) -> int:
    """``ALGORAND_SPONSOR_FEE_CAP``: most microalgos one sponsored group may pay."""
    return setting("ALGORAND_SPONSOR_FEE_CAP", default, as_int)


def sponsor_min_balance() -> int:  # CONFIO_KMS_SPONSOR_MIN_BALANCE, microalgos; 0: no floor
    return setting("CONFIO_KMS_SPONSOR_MIN_BALANCE", 0, casts.microalgos)


def admin_mnemonic() -> str:
    """``ALGORAND_ADMIN_MNEMONIC`` (legacy, while ``USE_KMS_SIGNING`` is off); "" if unset.
    Its Django setting is a ``HiddenSetting`` (``hide_admin_mnemonic``): read through it."""
    return setting("ALGORAND_ADMIN_MNEMONIC", "", redaction.reveal)


def hide_admin_mnemonic() -> None:
    """Replace a text ``settings.ALGORAND_ADMIN_MNEMONIC`` by a ``HiddenSetting`` (which
    ``admin_mnemonic`` reads through): Django's error pages and emails render every
    setting, hiding only names like KEY or SECRET, whatever the exception reporter filter."""
    if not settings.configured:
        return
    value = getattr(settings, "ALGORAND_ADMIN_MNEMONIC", None)
    # A lazy value (a Promise) is not a str, and stays unevaluated.
    if isinstance(value, str) and not isinstance(value, redaction.HiddenSetting):
        settings.ALGORAND_ADMIN_MNEMONIC = redaction.HiddenSetting(value)


def algod() -> tuple[str, str]:
    """``ALGOD_ADDRESS`` and ``ALGOD_TOKEN`` ("" when unset)."""
    return setting("ALGOD_ADDRESS", "", str), setting("ALGOD_TOKEN", "", str)


def legacy_settings() -> LegacySettings:
    """Read the original module's settings now."""
    return LegacySettings(
        key_alias=setting("KMS_KEY_ALIAS", "", str),
        admin_key_alias=setting("KMS_ADMIN_KEY_ALIAS", "", str),
        native_signing=setting("KMS_NATIVE_SIGNING", None, as_bool),
        admin_address=setting("ALGORAND_ADMIN_ADDRESS", "", str),
    )


# --- what the system checks, the doctor and kms_cost read ----------------------------


def legacy_mnemonic_configured() -> bool:
    """Whether ``ALGORAND_ADMIN_MNEMONIC`` is set in settings, the environment or .env."""
    return bool(admin_mnemonic())


def named_values(named: re.Pattern[str]) -> dict[str, object]:
    """The Django settings in upper case or named like ``named``, for scans that report
    names only (a lazy setting stays unevaluated; one Django refuses to read, such as
    an empty ``SECRET_KEY``, holds nothing to find and is left out)."""
    values: dict[str, object] = {}
    for name in dir(settings):
        if name.isupper() or named.search(name):
            try:
                values[name] = getattr(settings, name, None)
            except ImproperlyConfigured:
                continue
    return values


def debug() -> bool:
    return bool(settings.DEBUG)


def exception_reporter_filter() -> str:
    """``DEFAULT_EXCEPTION_REPORTER_FILTER``'s dotted path."""
    return str(settings.DEFAULT_EXCEPTION_REPORTER_FILTER)


def cache_backend(alias: str) -> str:
    """The ``BACKEND`` of the Django cache ``alias`` ("" when there is none)."""
    return str(settings.CACHES.get(alias, {}).get("BACKEND", ""))


def explicit_alias_networks() -> frozenset[str]:
    """The networks whose alias setting is set rather than defaulted."""
    return frozenset(
        network for network, name in ALIAS_SETTING.items() if setting(name, None, str) is not None
    )


def legacy_names() -> tuple[str, str, str]:
    """``KMS_KEY_ALIAS``, ``KMS_ADMIN_KEY_ALIAS``, ``ALGORAND_ADMIN_ADDRESS`` ("" unset)."""
    return (
        setting("KMS_KEY_ALIAS", "", str),
        setting("KMS_ADMIN_KEY_ALIAS", "", str),
        setting("ALGORAND_ADMIN_ADDRESS", "", str),
    )
