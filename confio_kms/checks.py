"""System checks (``manage.py check``); the deploy checks (``--deploy``) may call AWS."""

from __future__ import annotations

import os
import re
from typing import Any

from django.core import checks
from django.utils.module_loading import import_string
from django.views.debug import SafeExceptionReporterFilter as DjangoFilter

from confio_kms import factory as conf
from confio_kms import settings as config
from confio_kms import sponsor_health
from confio_kms.algorand import validation
from confio_kms.algorand.validation import Alias
from confio_kms.common.exceptions import ConfigurationError, ConfioKMSError, InvalidMnemonicError
from confio_kms.ops import secrets
from confio_kms.reporting import SECRET_SETTING


def secret_names(
    hidden: re.Pattern[str] | None = None,
    named: re.Pattern[str] = SECRET_SETTING,
    *,
    shown_only: bool = False,
) -> list[str]:
    """``confio_kms.ops.secrets.secret_names`` over this process's Django settings and
    environment: names only, never a value."""
    return secrets.secret_names(
        config.named_values(SECRET_SETTING), os.environ, named, hidden, shown_only=shown_only
    )


@checks.register("confio_kms")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        kms = config.kms_settings()
    except ConfigurationError as error:
        return [checks.Error(error.message, hint=error.fix, id="confio_kms.E001")]
    found: list[checks.CheckMessage] = []
    if not kms.use_kms_signing:
        if not config.debug():
            found.append(
                checks.Warning(
                    "USE_KMS_SIGNING is off with DEBUG off: production is expected to sign "
                    "with KMS-held keys, not a mnemonic in the environment.",
                    hint="Create or import the key with `manage.py kms_setup`, then set "
                    "USE_KMS_SIGNING=True.",
                    id="confio_kms.W001",
                )
            )
        return found
    if config.legacy_mnemonic_configured():
        found.append(
            checks.Warning(
                "ALGORAND_ADMIN_MNEMONIC is still configured although USE_KMS_SIGNING is on; "
                "it is unused.",
                hint="Remove the mnemonic from settings, the environment and .env files "
                "(keep the offline backup).",
                id="confio_kms.W002",
            )
        )
    return found


@checks.register("confio_kms")
def check_sandbox(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``CONFIO_SANDBOX`` belongs to the local sandbox endpoint only (``factory.sandbox_guard``)."""
    try:
        config.kms_settings()
    except ConfigurationError:
        return []  # reported by check_settings
    try:
        conf.sandbox_guard()
    except ConfigurationError as error:
        return [checks.Error(error.message, hint=error.fix, id="confio_kms.E020")]
    return []


@checks.register("confio_kms")
def check_error_reports(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A mnemonic in settings must not reach Django's error pages and emails."""
    try:
        reporter = import_string(config.exception_reporter_filter())
        hidden = reporter.hidden_settings
    except (ImportError, AttributeError):
        hidden = DjangoFilter.hidden_settings
    # The environment too: the debug page lists request.META, which under runserver is a
    # copy of it, hiding the same names as the settings.
    exposed = secret_names(hidden, shown_only=True)
    if not exposed:
        return []
    return [
        checks.Warning(
            f"{', '.join(exposed)} would be shown in full on Django's error pages and in its "
            "error emails (Django hides only settings named like API, TOKEN, KEY, SECRET, "
            "PASS or SIGNATURE), as would any setting or environment variable that holds "
            "an Algorand mnemonic or private key, whatever its name.",
            hint='Set DEFAULT_EXCEPTION_REPORTER_FILTER = "confio_kms.reporting.'
            'SafeExceptionReporterFilter" (it hides names with MNEMONIC, SEED, PHRASE or '
            "PRIVATE too); better, move to KMS signing and remove the mnemonic from "
            "settings and the environment.",
            id="confio_kms.W003",
        )
    ]


@checks.register("confio_kms", deploy=True)
def check_kms_key(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """With KMS signing on: the key exists, is enabled, and matches the configured address."""
    try:
        kms = config.kms_settings()
    except ConfigurationError:
        return []  # reported by check_settings
    if not kms.use_kms_signing:
        return []
    try:
        record = conf.kms_manager().get_key(kms.active_alias)
    except ConfioKMSError as error:
        return [checks.Error(error.message, hint=error.fix, id="confio_kms.E010")]
    found: list[checks.CheckMessage] = []
    if record.key_state != "Enabled":
        found.append(
            checks.Error(
                f"The KMS key behind {Alias(record.name)} is {record.key_state}, not Enabled.",
                hint="Enable it (`aws kms enable-key`) or cancel its deletion.",
                id="confio_kms.E011",
            )
        )
    configured = config.configured_sponsor_address()
    if configured and configured != record.address:
        found.append(
            checks.Error(
                f"ALGORAND_SPONSOR_ADDRESS is {configured} but {Alias(record.name)} signs for "
                f"{record.address}.",
                hint="Remove ALGORAND_SPONSOR_ADDRESS (the address comes from KMS) or point "
                f"{kms.active_alias_setting} at the right key.",
                id="confio_kms.E012",
            )
        )
    return found


@checks.register("confio_kms", deploy=True)
def check_sponsor_balance(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The sponsor holds at least ``CONFIO_KMS_SPONSOR_MIN_BALANCE``. A deploy check
    (``check --deploy``) because it reads the balance from algod: plain ``check``, and
    the checks ``runserver`` and ``migrate`` run, make no network request for it."""
    try:
        floor = config.sponsor_min_balance()
        if not floor:
            return []
        account = sponsor_health.sponsor_account()
        source = sponsor_health.balances_from_settings(account.address, account.network)
        balance = sponsor_health.BalanceGuard(floor, source).read(account.address)
    except ConfioKMSError as error:
        return [
            checks.Warning(
                f"The sponsor's balance could not be checked against its floor: {error.message}",
                hint=error.fix,
                id="confio_kms.W031",
            )
        ]
    if balance.amount >= floor:
        return []
    return [
        checks.Warning(
            f"The sponsor account {balance.address} holds {balance.amount} microalgos, under "
            f"the floor of {floor} (CONFIO_KMS_SPONSOR_MIN_BALANCE): the sponsor service "
            "refuses to sponsor until it is funded.",
            hint=f"Fund the sponsor address {balance.address} with at least "
            f"{floor - balance.amount} microalgos (`manage.py kms_sponsor_status` shows "
            "its runway).",
            id="confio_kms.W030",
        )
    ]


@checks.register("confio_kms")
def check_legacy_mnemonic(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """With KMS signing off, signing uses ALGORAND_ADMIN_MNEMONIC: it must be one."""
    try:
        if config.kms_settings().use_kms_signing:
            return []
        phrase = config.admin_mnemonic()
    except ConfigurationError:
        return []  # check_settings reports it
    if not phrase:
        return []
    try:
        validation.private_key_from_mnemonic(phrase)
    except InvalidMnemonicError as error:  # its text names a position, never a word
        return [
            checks.Warning(
                f"ALGORAND_ADMIN_MNEMONIC is not a valid Algorand mnemonic: {error.message} "
                "USE_KMS_SIGNING is off, so every signing call will fail.",
                hint=f"{error.fix} Or sign with KMS: `manage.py kms_setup --import-existing`, "
                "then USE_KMS_SIGNING=True.",
                id="confio_kms.W010",
            )
        ]
    finally:
        del phrase
    return []
