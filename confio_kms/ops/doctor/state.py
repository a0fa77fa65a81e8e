"""What the doctor is given and what one run learns as it goes.

``Configuration`` is what it reads of the settings, handed in by the Django shell
(``confio_kms.management.commands.kms_doctor.configuration``): values, and the two
functions that need the settings themselves (an alias's network, a signer). ``Checkup``
is one run's state, shared by the check areas in the order ``run`` calls them: the keys
found feed the permission probes, the test signature and the reminders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

from confio_kms.algorand import networks, validation
from confio_kms.common import exceptions as exc
from confio_kms.core import keys, kinds
from confio_kms.core.aws import AWSClients
from confio_kms.core.options import DEFAULTS, Options
from confio_kms.core.signer import KMSSigner


class DoctorClients(AWSClients):
    """The doctor's clients: once an endpoint has failed to answer one request (its
    deadline passed, or no connection), every later request of the run to that endpoint
    fails at once with that news, so each check ends at once instead of waiting out its
    own deadline (a run against an endpoint that never answers took five deadlines, 42 s)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # endpoint URL -> its first failure; shared by copies (``bounded``).
        self.outage: dict[str, exc.AWSConnectionError] = {}

    def call(self, service: str, operation: str, resource: str, **params: Any) -> dict[str, Any]:
        endpoint = str(self.clients[service].meta.endpoint_url)
        first = self.outage.get(endpoint)
        if first is not None:
            raise exc.AWSConnectionError(
                f"{service}:{operation} was not sent: the endpoint did not answer an earlier "
                f"request of this run ({first.message})",
                fix=first.fix,
            )
        try:
            return super().call(service, operation, resource, **params)
        except exc.AWSConnectionError as error:
            self.outage.setdefault(endpoint, error)
            raise


# Builds the signer of an alias, with the session given to ``run`` (None: the default).
SignerFactory = Callable[[str, boto3.Session | None], KMSSigner]


@dataclass(frozen=True)
class Configuration:
    """The settings the doctor checks, read by the Django shell (values only, no secret:
    ``secrets`` holds the names of the settings and environment variables found to
    hold a mnemonic or private key)."""

    use_kms_signing: bool
    network: str  # CONFIO_ENV
    aliases: Mapping[str, str]  # each deployment network's configured alias
    alias_settings: Mapping[str, str]  # the setting that names each network's alias
    explicit: frozenset[str]  # the networks whose alias setting is set, not defaulted
    region: str
    ssm_prefix: str
    endpoint_url: str | None
    network_of_alias: Callable[[str], str]
    signer: SignerFactory
    sponsor_address: str = ""  # ALGORAND_SPONSOR_ADDRESS, as set by hand
    legacy_alias: str = ""  # KMS_KEY_ALIAS
    admin_alias: str = ""  # KMS_ADMIN_KEY_ALIAS
    admin_address: str = ""  # ALGORAND_ADMIN_ADDRESS
    secrets: tuple[str, ...] = ()
    legacy_mnemonic: bool = False  # ALGORAND_ADMIN_MNEMONIC set anywhere
    options: Options = DEFAULTS  # the core's options the deployment signs with

    @property
    def active_alias(self) -> str:
        return self.aliases[self.network]

    @property
    def active_alias_setting(self) -> str:
        return self.alias_settings[self.network]


@dataclass
class Target:
    """A configured alias: the settings that name it, its network, the addresses the
    settings expect it to sign for, and whether it must exist."""

    name: str
    settings: list[str]
    network: str
    expected: list[tuple[str, str]] = field(default_factory=list)
    required: bool = True


@dataclass
class Key:
    target: Target
    metadata: dict[str, Any]
    tags: dict[str, str] | None = None
    info: keys.KeyInfo | None = None
    policy: dict[str, Any] | None = None  # its key policy, when readable

    @property
    def arn(self) -> str:
        return str(self.metadata.get("Arn", ""))

    @property
    def key_id(self) -> str:
        return str(self.metadata["KeyId"])


@dataclass
class Checkup:
    """One run: the configuration, the clients, and what the checks found so far."""

    conf: Configuration
    aws: AWSClients
    session: boto3.Session | None
    account: str = ""
    found: dict[str, Key] = field(default_factory=dict)
    regional: dict[str, AWSClients] = field(default_factory=dict)
    targets: list[Target] = field(init=False)

    def __post_init__(self) -> None:
        self.targets = targets(self.conf)

    def in_region(self, region: str) -> AWSClients:
        """Clients like ``self.aws`` in another region (the session, endpoint and settings
        are the same); built once per region, in this thread."""
        if region == self.aws.region:
            return self.aws
        if region not in self.regional:
            self.regional[region] = AWSClients(
                region,
                endpoint_url=self.conf.endpoint_url,
                session=self.aws.session,
                services=("cloudtrail",),
                options=self.conf.options,
            )
        return self.regional[region]


def targets(conf: Configuration) -> list[Target]:
    """The configured aliases: the active network's (it must exist), the other network's
    (when configured or present), and the old scripts' KMS_KEY_ALIAS and
    KMS_ADMIN_KEY_ALIAS (when set), with the address settings each must match."""
    sponsor = conf.sponsor_address
    expected_sponsor = [("ALGORAND_SPONSOR_ADDRESS", sponsor)] if sponsor else []
    active = conf.network
    found = [Target(conf.active_alias, [conf.active_alias_setting], active, expected_sponsor)]
    extra: list[tuple[str, str, list[tuple[str, str]]]] = []
    if conf.legacy_alias:
        extra.append((conf.legacy_alias, "KMS_KEY_ALIAS", expected_sponsor))
    if conf.admin_alias:
        admin_address = conf.admin_address
        expected = (
            [("ALGORAND_ADMIN_ADDRESS", admin_address)] if admin_address else expected_sponsor
        )
        extra.append((conf.admin_alias, "KMS_ADMIN_KEY_ALIAS", expected))
    for raw, setting_name, expected in extra:
        try:
            name = validation.alias_name(raw)
        except exc.InvalidAliasError:
            continue  # the compat layer reports it when it is used
        _merge(found, Target(name, [setting_name], active, list(expected)))
    for network in networks.DEPLOYMENT_NETWORKS:
        if network == active:
            continue
        setting_name = conf.alias_settings[network]
        explicit = network in conf.explicit
        _merge(found, Target(conf.aliases[network], [setting_name], network, required=explicit))
    return found


def _merge(targets: list[Target], new: Target) -> None:
    for target in targets:
        if target.name == new.name:
            target.settings += [s for s in new.settings if s not in target.settings]
            target.expected += [e for e in new.expected if e not in target.expected]
            target.required = target.required or new.required
            return
    targets.append(new)


def kind(metadata: Mapping[str, Any]) -> str:
    return kinds.for_spec(str(metadata.get("KeySpec", "SYMMETRIC_DEFAULT"))) or "unknown kind"


def arn_account(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 else ""
