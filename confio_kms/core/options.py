"""Options: everything the signing core and the key lifecycle are configured by.

One immutable object, handed to ``AWSClients``, ``KMSSigner``, ``AlgorandKMSManager``
and rotation (``options=``); whatever they build from it (cache lookups, key kinds,
the signing policy, the audit trail) reads it from there. Every field has a plain
Python default, so the core works in a worker or script without Django:

    from confio_kms.core.options import Options
    from confio_kms.core.signer import KMSSigner

    signer = KMSSigner("confio-testnet-sponsor", options=Options(region="eu-central-2"))

In a Django project the options are built from the settings by
``confio_kms.settings.options()`` (the one module that reads settings), and the
package's top-level ``KMSSigner`` / ``AlgorandKMSManager`` use them by default. Each
field's setting is named in its comment; docs/settings.md lists them all.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from confio_kms.algorand import networks, validation
from confio_kms.common.exceptions import ConfigurationError
from confio_kms.core.limits import Guard, Limits

# The setup guide's region: the last step of the region rule (``region``).
DEFAULT_REGION = "eu-central-2"
DEFAULT_ALIAS = {"testnet": "confio-testnet-sponsor", "mainnet": "confio-mainnet-sponsor"}
# Entries expire so that a rotation made by another process is picked up: within this
# many seconds a worker stops signing with the retired key.
DEFAULT_CACHE_TIMEOUT = 300
DEFAULT_MAX_FEE = 50_000
# AWS request limits, for a web request: a request that gets no answer is abandoned
# after the read timeout, and a signing call starts nothing new once its deadline passed.
DEFAULT_CONNECT_TIMEOUT = 2.0
DEFAULT_READ_TIMEOUT = 5.0
DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_CALL_DEADLINE = 10.0
DEFAULT_THROTTLE_WAIT = 5.0
DEFAULT_COALESCE_MAX_CALLS = 16
DEFAULT_COALESCE_MAX_WAIT = 5.0
# A healthy decrypt answers in tens of milliseconds; one still in flight after this is
# throttled or stuck, so later calls start their own (at most one more GetParameter per
# second per key and process, 2.5% of Parameter Store's default 40/s).
DEFAULT_COALESCE_JOIN_WINDOW = 1.0
# One Sign request per transaction of the largest group.
DEFAULT_NATIVE_CONCURRENCY = networks.MAX_GROUP_SIZE

_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
_ACCOUNT_ID = re.compile(r"\d{12}")

# The setup guide's alias convention: confio-<network>-<role>.
ALIAS_CONVENTION = {f"confio-{network}-": network for network in networks.DEPLOYMENT_NETWORKS}


class SharedCache(Protocol):
    """A cache shared by processes, such as a Django cache: ``get_many`` is used when
    the object has it (one round trip), ``get`` otherwise."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any, timeout: int | None = None) -> Any: ...

    def delete(self, key: str) -> Any: ...


# Receives each audit record's fields (see ``confio_kms.core.audit``) after it is logged.
AuditSink = Callable[[Mapping[str, Any]], None]


@dataclass(frozen=True)
class Coalescing:
    """How concurrent signing calls for one envelope key share its decrypt
    (``CONFIO_KMS_COALESCE``, ``_MAX_CALLS``, ``_MAX_WAIT``, ``_JOIN_WINDOW``)."""

    enabled: bool = True
    max_calls: int = DEFAULT_COALESCE_MAX_CALLS
    max_wait: float = DEFAULT_COALESCE_MAX_WAIT
    join_window: float = DEFAULT_COALESCE_JOIN_WINDOW


def region(explicit: str | None, configured: str | None, session_region: str | None) -> str:
    """The region rule, the only one: the ``region_name`` passed, else the options'
    region (``KMS_REGION`` in Django), else the region of a session the caller passed,
    else the guide's ``eu-central-2``. The process's own default region
    (``AWS_DEFAULT_REGION``, a profile's) is not where the keys live, so it is not used."""
    return explicit or configured or session_region or DEFAULT_REGION


def network_of_alias(name: str, testnet_alias: str, mainnet_alias: str) -> str:
    """The network an alias name stands for, or "" when it names none: the configured
    testnet and mainnet aliases first, then the guide's convention (``confio-mainnet-*``,
    ``confio-testnet-*``). A rotation's staging alias stands for its alias's network."""
    name = name.removesuffix(validation.RESERVED_SUFFIX)
    for network, alias in (("testnet", testnet_alias), ("mainnet", mainnet_alias)):
        if alias == name:
            return network
    return next((net for prefix, net in ALIAS_CONVENTION.items() if name.startswith(prefix)), "")


def _secret(value: object) -> str:
    """What an error may say of a secret option: its size or type, never its value."""
    return f"<{len(value)} bytes>" if isinstance(value, bytes) else f"<{type(value).__name__}>"


# The only consent to logic-signature delegation: it names the reach, as what is signed
# carries no genesis hash (a delegation signed for testnet is valid on mainnet too).
EVERY_NETWORK: Final = "every-network"
DelegationConsent = Literal[False, "every-network"]


def delegation_consent(value: object, name: str) -> DelegationConsent:
    """``value`` as a delegation consent: False (refused) or ``EVERY_NETWORK``. Anything
    else, ``True`` alone included, raises ``ConfigurationError``; ``name`` is where it
    was given (a setting or an argument), for the message."""
    if value is False:
        return False
    if value == EVERY_NETWORK:
        return EVERY_NETWORK
    said = "True, which no longer consents to" if value is True else f"{value!r}, not a consent to"
    raise ConfigurationError(
        f"{name} is {said} logic-signature delegation: a delegated logic signature names "
        "no genesis hash, so it is valid on every network (a delegation signed for "
        "testnet is valid on mainnet if the address exists there).",
        fix=f'Set {name} to "{EVERY_NETWORK}" to consent to exactly that, or to False '
        "(delegation refused).",
    )


@dataclass(frozen=True)
class Options:
    """The options of the signing core and the key lifecycle; the defaults are the
    settings' defaults. ``Options()`` is what a class given no options uses.

    ``cache``: an object shared by processes (a Django cache; any object with
    ``get``/``set``/``delete``) for alias lookups; None keeps them in this process
    only. ``audit_sink``: called with each audit record's fields after it is logged
    (the Django app's stores ``SigningRecord`` rows); None: the log only.
    """

    region: str | None = None  # KMS_REGION; None: see ``region``
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT  # CONFIO_KMS_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT  # CONFIO_KMS_READ_TIMEOUT
    max_attempts: int = DEFAULT_MAX_ATTEMPTS  # CONFIO_KMS_MAX_ATTEMPTS
    call_deadline: float = DEFAULT_CALL_DEADLINE  # CONFIO_KMS_CALL_DEADLINE
    throttle_wait: float = DEFAULT_THROTTLE_WAIT  # CONFIO_KMS_THROTTLE_WAIT
    coalescing: Coalescing = field(default_factory=Coalescing)  # CONFIO_KMS_COALESCE*
    native_concurrency: int = DEFAULT_NATIVE_CONCURRENCY  # CONFIO_KMS_NATIVE_CONCURRENCY
    pacing: bool = True  # CONFIO_KMS_PACING: confio_kms.core.pacing
    # CONFIO_KMS_PACING_DIR: the host's shared pacers; None: pacing.default_directory()
    pacing_dir: str | None = None
    cache: SharedCache | None = None  # CONFIO_KMS_CACHE (a Django cache alias)
    cache_timeout: float = float(DEFAULT_CACHE_TIMEOUT)  # CONFIO_KMS_CACHE_TIMEOUT; inf: never
    # Authenticates shared cache entries (Django: derived from SECRET_KEY); None: the
    # shared cache holds no entries for this process. A secret: kept out of the repr.
    cache_mac_key: bytes | None = field(default=None, repr=False)
    audit_sink: AuditSink | None = None  # CONFIO_KMS_AUDIT_DB (SigningRecord rows)
    testnet_alias: str = DEFAULT_ALIAS["testnet"]  # KMS_KEY_ALIAS_TESTNET
    mainnet_alias: str = DEFAULT_ALIAS["mainnet"]  # KMS_KEY_ALIAS_MAINNET
    max_fee: int = DEFAULT_MAX_FEE  # CONFIO_KMS_MAX_FEE
    # CONFIO_KMS_TRUSTED_GENESIS (base64), plus the sandbox ledger's with CONFIO_SANDBOX
    trusted_genesis: frozenset[str] = frozenset()
    allow_delegation: DelegationConsent = False  # CONFIO_KMS_ALLOW_DELEGATION; "every-network"
    key_policy_account: str = ""  # CONFIO_KMS_KEY_POLICY_ACCOUNT
    # CONFIO_KMS_LIMITS: alias name -> Limits (or a mapping of them); enforced by ``guard``.
    limits: Mapping[str, Limits] = field(default_factory=dict)
    # Where pauses and limit counters live (Django: the database, CONFIO_KMS_GUARD);
    # None: no pause, and no limits may be set.
    guard: Guard | None = None

    def __post_init__(self) -> None:
        # Any iterable of hashes is accepted; a frozenset keeps the options hashable.
        object.__setattr__(self, "trusted_genesis", frozenset(self.trusted_genesis))
        object.__setattr__(self, "limits", _limits(self.limits, self.guard))
        delegation_consent(self.allow_delegation, "Options.allow_delegation")
        problems = [
            f"{name}={value!r} ({rule})" for name, value, ok, rule in self._checks() if not ok
        ]
        if problems:
            raise ConfigurationError(
                f"Invalid Options: {'; '.join(problems)}.",
                fix="Correct them (docs/settings.md lists each option and its setting).",
            )

    def _checks(self) -> list[tuple[str, object, bool, str]]:
        """(field, value, whether it is valid, the rule) for the fields with limits."""

        def number(value: object) -> bool:
            return isinstance(value, int | float) and not isinstance(value, bool)

        def seconds(value: object) -> bool:
            return number(value) and 0 < value < math.inf  # type: ignore[operator]

        def whole(value: object, low: int, high: int) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

        return [
            ("region", self.region, self.region is None or bool(
                isinstance(self.region, str) and _REGION.fullmatch(self.region)
            ), "an AWS region name such as eu-central-2, or None"),
            ("connect_timeout", self.connect_timeout, seconds(self.connect_timeout), "seconds > 0"),
            ("read_timeout", self.read_timeout, seconds(self.read_timeout), "seconds > 0"),
            ("call_deadline", self.call_deadline, seconds(self.call_deadline), "seconds > 0"),
            ("max_attempts", self.max_attempts, whole(self.max_attempts, 1, 10), "1 to 10"),
            ("throttle_wait", self.throttle_wait, number(self.throttle_wait)
             and self.throttle_wait >= 0, "seconds >= 0"),
            ("coalescing.max_calls", self.coalescing.max_calls,
             whole(self.coalescing.max_calls, 1, 2**31), "1 or more"),
            ("coalescing.max_wait", self.coalescing.max_wait, seconds(self.coalescing.max_wait),
             "seconds > 0"),
            ("coalescing.join_window", self.coalescing.join_window,
             seconds(self.coalescing.join_window), "seconds > 0"),
            ("native_concurrency", self.native_concurrency,
             whole(self.native_concurrency, 1, 64), "1 to 64"),
            ("pacing", self.pacing, isinstance(self.pacing, bool), "True or False"),
            ("pacing_dir", self.pacing_dir, self.pacing_dir is None or (
                isinstance(self.pacing_dir, str) and os.path.isabs(self.pacing_dir)
                and "\0" not in self.pacing_dir), "an absolute directory path, or None"),
            ("cache_timeout", self.cache_timeout, number(self.cache_timeout)
             and self.cache_timeout >= 0, "seconds >= 0, or math.inf"),
            ("cache_mac_key", _secret(self.cache_mac_key), self.cache_mac_key is None
             or (isinstance(self.cache_mac_key, bytes) and len(self.cache_mac_key) >= 16),
             "bytes, at least 16 of them and secret, or None"),
            ("max_fee", self.max_fee, whole(self.max_fee, 0, 2**64 - 1), "microalgos >= 0"),
            ("key_policy_account", self.key_policy_account, self.key_policy_account == ""
             or bool(_ACCOUNT_ID.fullmatch(str(self.key_policy_account))),
             "a 12-digit AWS account id, or empty"),
        ]  # fmt: skip

    def limits_for(self, name: str) -> Limits | None:
        """The limits of the key ``name`` (an alias name, without ``alias/``), or None."""
        return self.limits.get(name.removeprefix("alias/")) if self.limits else None

    def region_for(self, explicit: str | None, session_region: str | None) -> str:
        """The region of a client given ``explicit`` and its session's region."""
        return region(explicit, self.region, session_region)

    def network_of_alias(self, name: str) -> str:
        """The network ``name`` stands for under these options' aliases ("" for none)."""
        return network_of_alias(name, self.testnet_alias, self.mainnet_alias)


class _LimitsByName(dict[str, Limits]):
    """A hashable dict of limits by alias name (Options stay hashable)."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))


def _limits(value: object, guard: object) -> _LimitsByName:
    """``Options.limits`` checked: alias names to ``Limits``, and a guard to keep them."""
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"Options.limits is a {type(value).__name__}, not a mapping of alias names to limits.",
            fix="Pass {alias name: Limits(...)} (docs/limits.md).",
        )
    limits = _LimitsByName(
        (validation.alias_name(str(name)), Limits.of(one, f"limits[{name!r}]"))
        for name, one in value.items()
    )
    if limits and guard is None:
        raise ConfigurationError(
            f"Limits are set for {', '.join(sorted(limits))} but there is no guard to count "
            "them, so they would not be enforced.",
            fix="Pass Options(guard=...) (Django: CONFIO_KMS_GUARD on, the default), or no limits.",
        )
    return limits


DEFAULTS = Options()
