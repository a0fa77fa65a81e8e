"""The settings as values: the frozen snapshots ``confio_kms.settings`` builds from
what it reads (nothing here reads a setting)."""

from __future__ import annotations

from dataclasses import dataclass

from confio_kms.core import options as core_options

# The setting that names each deployment network's alias.
ALIAS_SETTING = {"testnet": "KMS_KEY_ALIAS_TESTNET", "mainnet": "KMS_KEY_ALIAS_MAINNET"}


@dataclass(frozen=True)
class KMSSettings:
    """A snapshot of the confio_kms settings, read by ``kms_settings``.

    ``kms_region`` is ``KMS_REGION`` (None when set nowhere); ``region`` is the
    region signers and managers built from these settings use (the region rule,
    ``confio_kms.core.options.region``).
    """

    use_kms_signing: bool
    confio_env: str
    alias_testnet: str
    alias_mainnet: str
    kms_region: str | None
    ssm_prefix: str
    endpoint_url: str | None
    sandbox: bool

    @property
    def region(self) -> str:
        return core_options.region(None, self.kms_region, None)

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


@dataclass(frozen=True)
class LegacySettings:
    """The original ``kms_manager.py``'s own settings, for ``confio_kms.compat``."""

    key_alias: str  # KMS_KEY_ALIAS
    admin_key_alias: str  # KMS_ADMIN_KEY_ALIAS
    native_signing: bool | None  # KMS_NATIVE_SIGNING (None: unset)
    admin_address: str  # ALGORAND_ADMIN_ADDRESS
