"""The settings shim: Django settings first, then the environment / .env; errors
that name every place looked in; a lazy sponsor address."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from django.test import override_settings

from confio_kms import AlgorandKMSManager
from confio_kms import factory as conf
from confio_kms.common import exceptions

ROOT = Path(__file__).resolve().parents[1]


def test_defaults() -> None:
    s = conf.kms_settings()
    assert (s.use_kms_signing, s.confio_env, s.region) == (False, "testnet", "eu-central-2")
    assert (s.alias_testnet, s.alias_mainnet) == (
        "confio-testnet-sponsor",
        "confio-mainnet-sponsor",
    )
    assert (s.ssm_prefix, s.endpoint_url, s.sandbox) == ("/confio/algorand", None, False)
    assert s.active_alias == "confio-testnet-sponsor"


def test_django_settings_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMS_REGION", "us-east-1")
    monkeypatch.setenv("CONFIO_ENV", "mainnet")
    monkeypatch.setenv("USE_KMS_SIGNING", "yes")
    assert conf.kms_settings().region == "us-east-1"
    assert conf.kms_settings().active_alias == "confio-mainnet-sponsor"
    assert conf.kms_settings().use_kms_signing is True
    with override_settings(KMS_REGION="eu-west-1", USE_KMS_SIGNING=False):
        assert conf.kms_settings().region == "eu-west-1"
        assert conf.kms_settings().use_kms_signing is False


def test_dotenv_file_is_read_from_base_dir(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("KMS_KEY_ALIAS_TESTNET=from-dotenv\n")
    with override_settings(BASE_DIR=tmp_path):
        assert conf.kms_settings().alias_testnet == "from-dotenv"


@pytest.mark.parametrize(
    "name, value, needle",
    [
        ("USE_KMS_SIGNING", "maybe", "not a boolean"),
        ("KMS_REGION", "Frankfurt", "not an AWS region"),
        ("CONFIO_ENV", "prod", "not one of testnet, mainnet"),
        ("KMS_KEY_ALIAS_TESTNET", "bad/alias", "not a valid key alias"),
        ("KMS_ENDPOINT_URL", "localhost:4566", "not an http(s) URL"),
    ],
)
def test_invalid_values_name_every_place(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(exceptions.ConfigurationError) as raised:
        conf.kms_settings()
    text = str(raised.value)
    assert needle in text and f"environment variable or .env entry {name}" in text
    assert f"settings.{name}, the environment variable {name}" in text
    assert ".env or" in text and "settings.ini" in text


def test_missing_required_setting_names_every_place() -> None:
    with pytest.raises(exceptions.ConfigurationError, match="is missing") as raised:
        conf.setting("ALGOD_ADDRESS")
    assert "settings.ALGOD_ADDRESS, the environment variable ALGOD_ADDRESS" in str(raised.value)


def test_signers_are_built_once_per_configuration() -> None:
    assert conf.kms_signer() is conf.kms_signer("alias/confio-testnet-sponsor")
    assert conf.kms_signer("other") is not conf.kms_signer()
    assert conf.kms_manager() is conf.kms_manager()


def test_sponsor_address_is_lazy(session: boto3.Session) -> None:
    counted: list[str] = []
    with override_settings(USE_KMS_SIGNING=True):
        value = conf.sponsor_address("FALLBACK")  # as settings.py does at import
        _, address, _ = AlgorandKMSManager(session=session).create_algorand_key(
            "confio-testnet-sponsor"
        )
        signer = conf.kms_signer()
        signer.clients.kms.meta.events.register("before-send", lambda **kw: counted.append("x"))
        assert str(value) == address
    assert counted == ["x", "x"]  # DescribeKey + ListResourceTags, on first use only
    with override_settings(USE_KMS_SIGNING=False):
        assert str(value) == "FALLBACK"
        with pytest.raises(exceptions.ConfigurationError, match="ALGORAND_SPONSOR_ADDRESS"):
            str(conf.sponsor_address(""))


def test_example_settings_import_and_check_without_aws() -> None:
    """`manage.py help` and `check` work with no credentials, endpoint or network."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(ROOT),
        "USE_KMS_SIGNING": "true",
        "AWS_EC2_METADATA_DISABLED": "true",
        "DEBUG": "true",
    }
    manage = [sys.executable, str(ROOT / "example_project" / "manage.py")]
    for args in (["help"], ["check"]):
        out = subprocess.run([*manage, *args], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    assert "System check identified no issues" in out.stdout


def test_a_changed_policy_setting_is_in_force_from_the_next_call() -> None:
    # The factory used to key signers without the policy, so the first policy stuck.
    with override_settings(CONFIO_KMS_MAX_FEE=1_000):
        assert conf.kms_signer("sponsor").policy.max_fee == 1_000
    with override_settings(CONFIO_KMS_MAX_FEE=2_000):
        assert conf.kms_signer("sponsor").policy.max_fee == 2_000
    assert conf.kms_signer("sponsor") is conf.kms_signer("sponsor")  # still built once
