"""System checks, including the --deploy checks that ask AWS."""

from __future__ import annotations

import boto3
import pytest
from algosdk import mnemonic
from django.core.checks import Error, Warning
from django.test import override_settings

from confio_kms import AlgorandKMSManager, checks

from .helpers import new_account

ALIAS = "confio-testnet-sponsor"
REPORTER_FILTER = "confio_kms.reporting.SafeExceptionReporterFilter"


def ids(messages: list[Error | Warning]) -> list[str]:
    return [m.id or "" for m in messages]


@override_settings(DEBUG=False, USE_KMS_SIGNING=False)
def test_production_without_kms_is_warned() -> None:
    (warning,) = checks.check_settings()
    assert warning.id == "confio_kms.W001" and "production" in warning.msg


@override_settings(DEBUG=True, USE_KMS_SIGNING=False)
def test_development_without_kms_is_fine() -> None:
    assert checks.check_settings() == []


@pytest.mark.parametrize(
    "overrides, needle",
    [
        ({"KMS_KEY_ALIAS_TESTNET": "no spaces allowed"}, "KMS_KEY_ALIAS_TESTNET"),
        ({"KMS_KEY_ALIAS_TESTNET": ""}, "KMS_KEY_ALIAS_TESTNET"),
        ({"KMS_REGION": "mars-1"}, "KMS_REGION"),
    ],
)
def test_unusable_alias_or_region_is_an_error(overrides: dict[str, str], needle: str) -> None:
    with override_settings(USE_KMS_SIGNING=True, **overrides):
        (error,) = checks.check_settings()
    assert error.id == "confio_kms.E001" and needle in error.msg
    assert error.hint and "settings." in error.hint


@override_settings(USE_KMS_SIGNING=True, ALGORAND_ADMIN_MNEMONIC="twenty five words ...")
def test_leftover_mnemonic_is_warned() -> None:
    (warning,) = checks.check_settings()
    assert warning.id == "confio_kms.W002"
    assert "twenty" not in warning.msg + (warning.hint or "")


def test_an_invalid_legacy_mnemonic_is_warned_without_showing_it() -> None:
    """Issue 25: with KMS signing off, ``check`` said nothing about a broken mnemonic."""
    words = mnemonic.from_private_key(new_account()[0]).split()
    broken = " ".join([*words[:24], "notaword"])
    with override_settings(USE_KMS_SIGNING=False, ALGORAND_ADMIN_MNEMONIC=broken):
        (warning,) = checks.check_legacy_mnemonic()
    assert warning.id == "confio_kms.W010" and "Word 25" in warning.msg
    shown = warning.msg + (warning.hint or "")
    pairs = (f"{a} {b}" for a, b in zip(words[:24], [*words[1:24], "notaword"], strict=True))
    assert "notaword" not in shown and not any(pair in shown for pair in pairs)
    for valid, kms in ((" ".join(words), False), (broken, True)):
        with override_settings(USE_KMS_SIGNING=kms, ALGORAND_ADMIN_MNEMONIC=valid):
            assert checks.check_legacy_mnemonic() == []


@override_settings(USE_KMS_SIGNING=True)
def test_deploy_check_passes_for_a_matching_enabled_key(manager: AlgorandKMSManager) -> None:
    _, address, _ = manager.create_algorand_key(ALIAS)
    assert checks.check_kms_key() == []
    with override_settings(ALGORAND_SPONSOR_ADDRESS=address):
        assert checks.check_kms_key() == []


@override_settings(USE_KMS_SIGNING=True)
def test_deploy_check_finds_mismatch_disabled_key_and_missing_alias(
    manager: AlgorandKMSManager,
) -> None:
    assert ids(checks.check_kms_key()) == ["confio_kms.E010"]  # no key yet

    key_id, _, _ = manager.create_algorand_key(ALIAS)
    other = "A" * 58
    with override_settings(ALGORAND_SPONSOR_ADDRESS=other):
        (mismatch,) = checks.check_kms_key()
    assert mismatch.id == "confio_kms.E012" and other in mismatch.msg

    boto3.client("kms").disable_key(KeyId=key_id)
    (disabled,) = checks.check_kms_key()
    assert disabled.id == "confio_kms.E011" and "Disabled" in disabled.msg


def test_deploy_checks_are_registered_for_deploy_only() -> None:
    from django.core.checks.registry import registry

    assert checks.check_kms_key in registry.get_checks(include_deployment_checks=True)
    assert checks.check_kms_key not in registry.get_checks(include_deployment_checks=False)
    assert checks.check_settings in registry.get_checks(include_deployment_checks=False)


def test_error_report_check_names_seed_variables_and_secrets_by_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """W003 names what Django's error pages would show: an environment variable named
    SEED (request.META under runserver), and a setting whose value is a mnemonic under
    a name no filter hides; never a value. Names Django hides (KEY) are left out."""
    private_key, _ = new_account()
    words = mnemonic.from_private_key(private_key)
    monkeypatch.setenv("SPONSOR_SEED", private_key)
    with override_settings(SPONSOR_WORDS=words, ALGORAND_SPONSOR_KEY=words):
        (warning,) = checks.check_error_reports()
        assert warning.id == "confio_kms.W003"
        assert warning.msg.startswith("SPONSOR_WORDS, SPONSOR_SEED (environment) would be shown")
        assert "ALGORAND_SPONSOR_KEY" not in warning.msg
        assert words not in warning.msg and private_key not in warning.msg
        # confio_kms's filter hides SEED; no filter hides a name that says nothing.
        with override_settings(DEFAULT_EXCEPTION_REPORTER_FILTER=REPORTER_FILTER):
            (warning,) = checks.check_error_reports()
        assert warning.msg.startswith("SPONSOR_WORDS would be shown")


def test_an_empty_secret_key_does_not_break_the_checks() -> None:
    # Django refuses to read an empty SECRET_KEY; W003's scan must not raise on it
    # (found by the packaging smoke, whose settings set none).
    from django.core import checks as django_checks

    with override_settings(SECRET_KEY=""):
        django_checks.run_checks(tags=["confio_kms"])
