"""Signers, managers and chains built from the settings (the factory).

``kms_signer()``, ``kms_manager()``, ``algorand_chain()`` and ``sponsor_address()``
are what a Django project calls; the settings themselves are looked up in
``confio_kms.settings`` (re-exported here). Nothing in the signing core imports this
module: it sits on top, beside the sponsor service, the checks and the commands.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from django.utils.functional import lazy

from confio_kms.algorand import validation
from confio_kms.algorand.chain import AlgodChain, Chain
from confio_kms.common.exceptions import ConfigurationError
from confio_kms.core import cache, kinds
from confio_kms.core.policy import SigningPolicy
from confio_kms.core.signer import KMSSigner
from confio_kms.lifecycle.manager import AlgorandKMSManager
from confio_kms.settings import (
    KMSSettings,
    as_bool,
    as_int,
    configured_sponsor_address,
    kms_settings,
    places,
    setting,
)

__all__ = [
    "KMSSettings",
    "algorand_chain",
    "as_bool",
    "as_int",
    "configured_sponsor_address",
    "kms_manager",
    "kms_settings",
    "kms_signer",
    "places",
    "reset",
    "reset_clients",
    "setting",
    "sponsor_address",
]

T = TypeVar("T")

# Signers and managers hold boto3 clients: build one per configuration and reuse it.
_built: dict[tuple[Any, ...], Any] = {}
_built_lock = threading.Lock()


def _once(key: tuple[Any, ...], build: Callable[[], T]) -> T:
    with _built_lock:
        if key not in _built:
            _built[key] = build()
        return _built[key]  # type: ignore[no-any-return]


def kms_signer(alias: str | None = None) -> KMSSigner:
    """The KMSSigner for ``alias`` (default: the active network's) from settings.

    One signer is built per alias, region, endpoint, prefix and signing policy, so a
    changed policy setting (``CONFIO_KMS_MAX_FEE``, ``override_settings``) is in force
    from the next call.
    """
    conf = kms_settings()
    name = validation.alias_name(alias) if alias else conf.active_alias
    policy = SigningPolicy.from_settings()
    key = ("signer", name, conf.region, conf.endpoint_url, conf.ssm_prefix, policy)
    return _once(
        key,
        lambda: KMSSigner(
            name,
            conf.region,
            endpoint_url=conf.endpoint_url,
            ssm_prefix=conf.ssm_prefix,
            policy=policy,
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


def reset() -> None:
    """Put this process back as it starts: no built clients, no cached lookups, no
    checked native keys. Django's shared cache is left alone."""
    reset_clients()
    cache.clear_process_cache()
    kinds.reset()


def algorand_chain(fund: str | None = None) -> Chain:
    """The network to submit to: algod from ``ALGOD_ADDRESS``/``ALGOD_TOKEN``, or on the
    sandbox (``CONFIO_SANDBOX``) a fresh local ledger, with ``fund`` given 10 ALGO."""
    if kms_settings().sandbox:
        from confio_kms.sandbox import LedgerChain, LocalLedger

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
