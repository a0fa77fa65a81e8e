"""The settings shim: every confio_kms setting, where it is looked up, and its default.

Each setting is read from Django settings first, then from the environment or a
``.env`` / ``settings.ini`` file through python-decouple (searched from
``settings.BASE_DIR``, else the working directory). A missing or invalid value
raises ``ConfigurationError`` (an ``ImproperlyConfigured``) naming every
place that was looked in. Nothing here calls AWS at import time.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from decouple import AutoConfig, UndefinedValueError
from django.utils.functional import Promise, lazy

from . import validation
from .chain import AlgodChain, Chain
from .exceptions import ConfigurationError, InvalidAliasError
from .manager import AlgorandKMSManager
from .signer import KMSSigner

T = TypeVar("T")
_MISSING: Any = object()
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
CONFIO_ENVS = ("testnet", "mainnet")


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
def _autoconfig(search_path: Path) -> AutoConfig:
    # AutoConfig reads its .env once; os.environ is still consulted on every lookup.
    return AutoConfig(search_path=str(search_path))


def _search_path() -> Path:
    from django.conf import settings

    base = getattr(settings, "BASE_DIR", None) if settings.configured else None
    return Path(base) if base else Path.cwd()


def places(name: str) -> str:
    """Where ``name`` is looked for, in order, for error messages."""
    base = _search_path()
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

    @property
    def active_alias(self) -> str:
        """The alias of the network ``CONFIO_ENV`` selects."""
        return self.alias_mainnet if self.confio_env == "mainnet" else self.alias_testnet

    @property
    def active_alias_setting(self) -> str:
        return "KMS_KEY_ALIAS_MAINNET" if self.confio_env == "mainnet" else "KMS_KEY_ALIAS_TESTNET"


def _confio_env(value: object) -> str:
    if value not in CONFIO_ENVS:
        raise ValueError(f"{value!r} is not one of {', '.join(CONFIO_ENVS)}")
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
        alias_testnet=setting("KMS_KEY_ALIAS_TESTNET", "confio-testnet-sponsor", _alias),
        alias_mainnet=setting("KMS_KEY_ALIAS_MAINNET", "confio-mainnet-sponsor", _alias),
        region=setting("KMS_REGION", "eu-central-2", _region),
        ssm_prefix=setting("KMS_SSM_PREFIX", validation.DEFAULT_SSM_PREFIX, _prefix),
        endpoint_url=setting("KMS_ENDPOINT_URL", None, _optional_url),
        sandbox=setting("CONFIO_SANDBOX", False, as_bool),
    )


# Signers and managers hold boto3 clients: build one per configuration and reuse it.
_built: dict[tuple[Any, ...], Any] = {}
_built_lock = threading.Lock()


def _once(key: tuple[Any, ...], build: Callable[[], T]) -> T:
    with _built_lock:
        if key not in _built:
            _built[key] = build()
        return _built[key]  # type: ignore[no-any-return]


def kms_signer(alias: str | None = None) -> KMSSigner:
    """The KMSSigner for ``alias`` (default: the active network's) from settings."""
    conf = kms_settings()
    name = validation.alias_name(alias) if alias else conf.active_alias
    key = ("signer", name, conf.region, conf.endpoint_url, conf.ssm_prefix)
    return _once(
        key,
        lambda: KMSSigner(
            name, conf.region, endpoint_url=conf.endpoint_url, ssm_prefix=conf.ssm_prefix
        ),
    )


def kms_manager() -> AlgorandKMSManager:
    """The AlgorandKMSManager for the configured region, endpoint and prefix."""
    conf = kms_settings()
    key = ("manager", conf.region, conf.endpoint_url, conf.ssm_prefix)
    return _once(
        key,
        lambda: AlgorandKMSManager(
            conf.region, endpoint_url=conf.endpoint_url, ssm_prefix=conf.ssm_prefix
        ),
    )


def reset_clients() -> None:
    """Forget the built signers and managers (after changing credentials, in tests)."""
    with _built_lock:
        _built.clear()


def algorand_chain(fund: str | None = None) -> Chain:
    """The network to submit to: algod from ``ALGOD_ADDRESS``/``ALGOD_TOKEN``, or on the
    sandbox (``CONFIO_SANDBOX``) a fresh local ledger, with ``fund`` given 10 ALGO."""
    if kms_settings().sandbox:
        from .sandbox import LedgerChain, LocalLedger

        ledger = LocalLedger()
        if fund:
            ledger.fund(fund, 10_000_000)
        return LedgerChain(ledger)
    address = setting("ALGOD_ADDRESS", "", str)
    if not address:
        raise ConfigurationError(
            "Submitting needs an algod node and ALGOD_ADDRESS is not set.",
            fix=f"Set ALGOD_ADDRESS (and ALGOD_TOKEN) in {places('ALGOD_ADDRESS')}.",
        )
    return AlgodChain(address, setting("ALGOD_TOKEN", "", str))


def configured_sponsor_address() -> str:
    """``ALGORAND_SPONSOR_ADDRESS`` as configured by hand, ignoring ``sponsor_address``."""
    from django.conf import settings

    value = getattr(settings, "ALGORAND_SPONSOR_ADDRESS", None) if settings.configured else None
    if value is not None and not isinstance(value, Promise):
        return str(value)
    return str(_autoconfig(_search_path())("ALGORAND_SPONSOR_ADDRESS", default=""))


def _resolve_sponsor_address(fallback: str) -> str:
    if kms_settings().use_kms_signing:
        return kms_signer().address
    if not fallback:
        raise ConfigurationError(
            "USE_KMS_SIGNING is off and no ALGORAND_SPONSOR_ADDRESS is configured.",
            fix="Turn USE_KMS_SIGNING on, or set ALGORAND_SPONSOR_ADDRESS in "
            f"{places('ALGORAND_SPONSOR_ADDRESS')}.",
        )
    return fallback


_lazy_address = lazy(_resolve_sponsor_address, str)


def sponsor_address(fallback: str = "") -> str:
    """A lazy string for settings.py: the active KMS address on first use, else ``fallback``.

    ``ALGORAND_SPONSOR_ADDRESS = sponsor_address(config("ALGORAND_SPONSOR_ADDRESS", ""))``
    makes no AWS request when settings.py is imported.
    """
    return _lazy_address(fallback)
