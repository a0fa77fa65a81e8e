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

from confio_kms.algorand import networks, validation
from confio_kms.algorand.chain import AlgodChain, Chain
from confio_kms.casts import as_bool, as_int
from confio_kms.common.exceptions import ConfigurationError
from confio_kms.core import cache, kinds, pacing
from confio_kms.settings import (
    KMSSettings,
    algod,
    aws_endpoints,
    configured_sponsor_address,
    kms_settings,
    options,
    places,
    sandbox_endpoint,
    setting,
)
from confio_kms.signers import AlgorandKMSManager, KMSSigner

__all__ = [
    "KMSSettings",
    "algorand_chain",
    "as_bool",
    "as_int",
    "configured_sponsor_address",
    "kms_manager",
    "kms_settings",
    "kms_signer",
    "options",
    "places",
    "reset",
    "reset_clients",
    "sandbox_guard",
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

    One signer is built per alias, endpoint, prefix and ``Options`` (the settings'
    ``options()``, read on each call), so a changed setting (``CONFIO_KMS_MAX_FEE``,
    ``override_settings``) is in force from the next call. Its region follows the
    region rule (``confio_kms.core.options.region``), as a signer built in code.
    """
    conf = kms_settings()
    name = validation.alias_name(alias) if alias else conf.active_alias
    opts = options(conf)
    key = ("signer", name, conf.endpoint_url, conf.ssm_prefix, opts)
    return _once(
        key,
        lambda: KMSSigner(
            name, endpoint_url=conf.endpoint_url, ssm_prefix=conf.ssm_prefix, options=opts
        ),
    )


def kms_manager() -> AlgorandKMSManager:
    """The AlgorandKMSManager for the configured endpoint, prefix and options (region:
    the region rule, as for ``kms_signer``)."""
    conf = kms_settings()
    opts = options(conf)
    key = ("manager", conf.endpoint_url, conf.ssm_prefix, opts)
    return _once(
        key,
        lambda: AlgorandKMSManager(
            endpoint_url=conf.endpoint_url, ssm_prefix=conf.ssm_prefix, options=opts
        ),
    )


def reset_clients() -> None:
    """Forget the built signers and managers (after changing credentials, in tests)."""
    with _built_lock:
        _built.clear()


def reset() -> None:
    """Put this process back as it starts: no built clients, no cached lookups, no
    checked native keys, no pacing. Django's shared cache is left alone."""
    reset_clients()
    cache.clear_process_cache()
    kinds.reset()
    pacing.reset()


# The networks whose keys never use the sandbox ledger, whatever the endpoint: a
# "confirmed" rekey there would switch the alias of a key that holds real money.
# (The sandbox's own run uses testnet keys on the loopback endpoint.)
SANDBOX_REFUSED_NETWORKS = frozenset({networks.MAINNET})


def sandbox_guard(network: str | None = None, *, for_chain: bool = False) -> None:
    """Refuse ``CONFIO_SANDBOX`` outside the sandbox, before anything is created or
    switched: its in-memory ledger "confirms" what no real network saw.

    With the flag on: every AWS endpoint must be on loopback (``sandbox_endpoint``),
    and the key's ``network`` must not be mainnet; ``for_chain`` (building the chain)
    requires the network to be named. With the flag off, nothing is checked.
    Raises ``ConfigurationError``.
    """
    conf = kms_settings()
    if not conf.sandbox:
        return
    if not sandbox_endpoint(conf):
        where = ", ".join(aws_endpoints(conf)) or "an AWS endpoint boto3 could not resolve"
        raise ConfigurationError(
            f"CONFIO_SANDBOX is on but the AWS endpoint is {where}, not the local sandbox "
            "(loopback): the sandbox ledger would confirm what no real network saw; "
            "nothing was created, submitted or switched.",
            fix="Turn CONFIO_SANDBOX off outside the sandbox (submissions then go to "
            "ALGOD_ADDRESS), or point KMS_ENDPOINT_URL at the local sandbox "
            "(confio_kms.sandbox.LocalAWS, on 127.0.0.1).",
        )
    if network is None and for_chain:
        raise ConfigurationError(
            "CONFIO_SANDBOX is on and algorand_chain() was not told the key's network; "
            "nothing was created.",
            fix="Pass network= (the signer's or key record's .network): mainnet keys never "
            "use the sandbox ledger.",
        )
    if network in SANDBOX_REFUSED_NETWORKS:
        raise ConfigurationError(
            f"CONFIO_SANDBOX is on and the key is a {network} key: the sandbox ledger would "
            f"confirm what {network} never saw; nothing was created, submitted or switched.",
            fix=f"Turn CONFIO_SANDBOX off to use {network} (through ALGOD_ADDRESS); on the "
            "sandbox use testnet or localnet keys.",
        )


def algorand_chain(fund: str | None = None, *, network: str | None = None) -> Chain:
    """The network to submit to: algod from ``ALGOD_ADDRESS``/``ALGOD_TOKEN``, or on the
    sandbox (``CONFIO_SANDBOX``) a fresh local ledger, with ``fund`` given 10 ALGO.

    On the sandbox, ``network`` (the key's) is required and ``sandbox_guard`` must pass:
    a mainnet key, or an endpoint that is not loopback, raises ``ConfigurationError``.
    """
    if kms_settings().sandbox:
        sandbox_guard(network, for_chain=True)
        from confio_kms.sandbox import LedgerChain, LocalLedger

        ledger = LocalLedger()
        if fund:
            ledger.fund(fund, 10_000_000)
        return LedgerChain(ledger)
    address, token = algod()
    if not address:
        raise ConfigurationError(
            "Submitting needs an algod node and ALGOD_ADDRESS is not set.",
            fix=f"Set ALGOD_ADDRESS (and ALGOD_TOKEN) in {places('ALGOD_ADDRESS')}.",
        )
    return AlgodChain(address, token)


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
