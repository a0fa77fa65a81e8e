"""CONFIO_SANDBOX belongs to the local sandbox endpoint: with the flag on against real
AWS, or for a mainnet key, nothing is submitted to the in-memory ledger or switched."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from confio_kms import AlgorandKMSManager, casts, checks
from confio_kms import factory as conf
from confio_kms import settings as config
from confio_kms.common.exceptions import ConfigurationError
from confio_kms.sandbox import LedgerChain, LocalAWS, LocalLedger

from .helpers import RequestCounter
from .management.conftest import ROOT

ALIAS, MAINNET_ALIAS = "confio-testnet-sponsor", "confio-mainnet-sponsor"
SANDBOX_GENESIS = casts.text(LocalLedger.suggested_params().gh)
REAL_KMS = "https://kms.eu-central-2.amazonaws.com"
# What may be asked of AWS on the way to a refusal: reads, never a change.
READS = {"kms.DescribeKey", "kms.ListAliases", "kms.ListResourceTags", "kms.GetPublicKey"}


def state(aws: LocalAWS) -> tuple[list[str], list[str]]:
    """The endpoint's keys and aliases, read past the counted sessions."""
    kms = boto3.Session().client("kms", endpoint_url=aws.url)
    keys = sorted(k["KeyId"] for k in kms.list_keys()["Keys"])
    aliases = sorted(
        f"{a['AliasName']}={a.get('TargetKeyId')}" for a in kms.list_aliases()["Aliases"]
    )
    return keys, aliases


@pytest.fixture
def counted(
    aws_env: LocalAWS, counter: RequestCounter, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., None]:
    """Counts every request of the sessions built from now on. ``real_aws=True``: as in
    production, no endpoint is configured, so boto3 addresses AWS itself; each request
    is then served by the local endpoint instead, so nothing leaves the machine."""

    def start(*, real_aws: bool = False) -> None:
        local = urllib.parse.urlsplit(aws_env.url)

        def to_local(request: Any, **kwargs: Any) -> None:
            request.url = (
                urllib.parse.urlsplit(request.url)
                ._replace(scheme=local.scheme, netloc=local.netloc)
                .geturl()
            )

        class Session(boto3.Session):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                counter.attach(self)
                if real_aws:
                    self.events.register("before-send", to_local)

        if real_aws:
            monkeypatch.delenv("AWS_ENDPOINT_URL")
        monkeypatch.setattr(boto3, "Session", Session)
        conf.reset()

    return start


@override_settings(CONFIO_SANDBOX=True)
@pytest.mark.parametrize("how", ["--submit", "--dry-run"])
def test_rotation_against_real_aws_is_refused_before_any_request(
    how: str, counted: Callable[..., None], counter: RequestCounter, aws_env: LocalAWS
) -> None:
    AlgorandKMSManager().create_algorand_key(ALIAS)
    before = state(aws_env)
    counted(real_aws=True)

    with pytest.raises(CommandError, match=r"CONFIO_SANDBOX is on but the AWS endpoint is ht"):
        call_command("kms_rotate", "--native", how, "--no-input", stdout=io.StringIO())

    assert counter.total == 0
    assert state(aws_env) == before


@override_settings(CONFIO_SANDBOX=True)
def test_test_sign_submission_against_real_aws_is_refused_before_any_request(
    counted: Callable[..., None], counter: RequestCounter
) -> None:
    AlgorandKMSManager().create_algorand_key(ALIAS)
    counted(real_aws=True)
    out = io.StringIO()

    with pytest.raises(CommandError, match=r"the local sandbox \(loopback\).*KMS_ENDPOINT_URL"):
        call_command("kms_test_sign", "--submit", stdout=out)

    assert counter.total == 0 and out.getvalue() == ""


@override_settings(CONFIO_SANDBOX=True)
@pytest.mark.parametrize("how", ["--submit", "--sign-only"])
def test_a_mainnet_key_never_uses_the_sandbox_ledger(
    how: str,
    counted: Callable[..., None],
    counter: RequestCounter,
    aws_env: LocalAWS,
    tmp_path: Any,
) -> None:
    AlgorandKMSManager().create_algorand_key(MAINNET_ALIAS)
    before = state(aws_env)
    counted()  # the loopback endpoint: only the key's network is wrong

    with pytest.raises(CommandError, match="the key is a mainnet key"):
        call_command(
            "kms_rotate", how, "--alias", MAINNET_ALIAS, "--yes", "--no-input",
            f"--mnemonic-out={tmp_path}/new", stdout=io.StringIO(),
        )  # fmt: skip
    with pytest.raises(CommandError, match="the key is a mainnet key"):
        call_command("kms_test_sign", "--alias", MAINNET_ALIAS, "--submit", "--yes")

    assert set(counter.by_operation()) <= READS, counter.by_operation()
    assert state(aws_env) == before and not (tmp_path / "new").exists()


def test_the_command_exits_1_with_one_line(aws_env: LocalAWS) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(ROOT),
        "PYTHONPATH": str(ROOT),
        **aws_env.environ(),
        "USE_KMS_SIGNING": "true",
        "CONFIO_SANDBOX": "true",
        "KMS_ENDPOINT_URL": REAL_KMS,  # refused before any request is sent there
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "example_project" / "manage.py"), "kms_test_sign", "--submit"],
        env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert f"the AWS endpoint is {REAL_KMS}" in line and "Fix: Turn CONFIO_SANDBOX off" in line


def test_the_library_refuses_the_sandbox_chain_outside_the_sandbox(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with override_settings(CONFIO_SANDBOX=True):
        assert isinstance(conf.algorand_chain(network="testnet"), LedgerChain)
        with pytest.raises(ConfigurationError, match="not told the key's network"):
            conf.algorand_chain()
        with pytest.raises(ConfigurationError, match="mainnet key"):
            conf.algorand_chain(network="mainnet")
        for endpoint in ("http://10.0.0.5:4566", "https://localhost.example.com"):
            with (
                override_settings(KMS_ENDPOINT_URL=endpoint),
                pytest.raises(ConfigurationError, match="not the local sandbox"),
            ):
                conf.algorand_chain(network="testnet")
        monkeypatch.delenv("AWS_ENDPOINT_URL")  # real AWS
        with pytest.raises(ConfigurationError, match="not the local sandbox"):
            conf.algorand_chain(network="localnet")
    # Without the flag the chain is algod's, whatever the endpoint.
    with override_settings(ALGOD_ADDRESS="http://127.0.0.1:9"):
        assert not isinstance(conf.algorand_chain(network="mainnet"), LedgerChain)


@pytest.mark.parametrize(
    "url, loopback",
    [
        ("http://127.0.0.1:5000", True),
        ("http://127.8.0.1", True),
        ("http://localhost:4566", True),
        ("http://[::1]:4566", True),
        ("https://kms.eu-central-2.amazonaws.com", False),
        ("http://localhost.evil.example", False),
        ("http://10.0.0.1", False),
        ("http://0.0.0.0:5000", False),
        ("", False),
    ],
)
def test_what_loopback_means(url: str, loopback: bool) -> None:
    assert config.is_loopback(url) is loopback


@override_settings(CONFIO_SANDBOX=True, CONFIO_KMS_TRUSTED_GENESIS=[])
def test_the_sandbox_genesis_is_trusted_on_the_sandbox_endpoint_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert config.trusted_genesis() == {SANDBOX_GENESIS}
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    assert config.trusted_genesis() == frozenset()
    assert config.options().trusted_genesis == frozenset()


def test_check_reports_the_flag_against_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    with override_settings(CONFIO_SANDBOX=True):
        assert checks.check_sandbox() == []  # the suite's loopback endpoint
        with override_settings(KMS_ENDPOINT_URL=REAL_KMS):
            (error,) = checks.check_sandbox()
        assert error.id == "confio_kms.E020" and REAL_KMS in error.msg
        assert error.hint and "CONFIO_SANDBOX off" in error.hint
        monkeypatch.delenv("AWS_ENDPOINT_URL")
        (error,) = checks.check_sandbox()
        assert "https://kms.eu-central-2.amazonaws.com" in error.msg
    assert checks.check_sandbox() == []  # the flag off
