"""AWS client setup: built once, retries and timeouts set, the standard
configuration sources honoured, and failures translated."""

from __future__ import annotations

import socket
from pathlib import Path

import boto3
import pytest
from algosdk import transaction

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.common import exceptions
from confio_kms.core.aws import AWSClients
from confio_kms.sandbox import LocalAWS, LocalLedger


def test_clients_are_built_once_and_configured(
    session: boto3.Session, manager: AlgorandKMSManager
) -> None:
    manager.create_algorand_key("k")
    built: list[str] = []
    session.events.register("creating-client-class", lambda **kw: built.append("client"))

    signer = KMSSigner("k", session=session)
    txn = transaction.PaymentTxn(signer.address, LocalLedger.suggested_params(), signer.address, 0)
    for _ in range(5):
        signer.sign_transaction(txn)

    assert built == ["client", "client"]  # KMS and SSM, once each
    config = AWSClients(session=session).kms.meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 4}
    assert (config.connect_timeout, config.read_timeout) == (2, 5)  # web-request defaults


def test_endpoint_from_environment_and_argument(aws_env: LocalAWS) -> None:
    assert AWSClients().kms.meta.endpoint_url == aws_env.url
    other = "http://127.0.0.1:9"
    assert AWSClients(endpoint_url=other).ssm.meta.endpoint_url == other


def test_profile_supplies_credentials_not_the_keys_region(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    config.write_text(
        "[profile ops]\nregion = eu-west-3\n"
        "aws_access_key_id = from-profile\naws_secret_access_key = x\n"
    )
    for name in ("AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "ops")

    clients = AWSClients()

    # The region rule: the profile's region is where the operator works, not where the
    # keys are (KMS_REGION, else eu-central-2, as the original kms_manager.py).
    assert clients.region == "eu-central-2"
    assert AWSClients(session=boto3.Session()).region == "eu-west-3"  # a session passed
    assert clients.session.get_credentials().access_key == "from-profile"
    clients.call("kms", "ListAliases", "aliases")  # reaches the endpoint with them


def test_no_region_anywhere_is_the_guides_region(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the original kms_manager.py: eu-central-2 when nothing names a region.
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    assert KMSSigner("k").region_name == "eu-central-2"


def test_missing_credentials_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    with pytest.raises(exceptions.CredentialsError, match="AWS_PROFILE") as raised:
        _ = KMSSigner("k").address
    assert isinstance(raised.value, PermissionError)


def test_unreachable_endpoint_is_a_connection_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    counted: list[str] = []
    session = boto3.Session()
    session.events.register("before-send", lambda **kw: counted.append("try"))

    with pytest.raises(exceptions.AWSConnectionError, match=f"127.0.0.1:{port}") as raised:
        _ = KMSSigner("k", endpoint_url=f"http://127.0.0.1:{port}", session=session).address

    assert isinstance(raised.value, ConnectionError)
    assert len(counted) == 4  # botocore's standard retries: 4 attempts in all
    assert "KMS_ENDPOINT_URL" in str(raised.value.fix)  # the project's own setting


def test_a_missing_profile_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_PROFILE", "nonexistent")

    with pytest.raises(exceptions.ConfigurationError) as raised:
        KMSSigner("k")

    error = raised.value
    assert f"The AWS profile 'nonexistent' (AWS_PROFILE) is not defined in {tmp_path}" in str(error)
    assert error.fix and "aws configure --profile nonexistent" in error.fix
    assert "unset AWS_PROFILE" in error.fix
    assert error.__cause__ is None and error.__suppress_context__  # botocore's kept out


def test_more_services_share_the_endpoint_retries_and_error_translation(
    aws_env: LocalAWS,
) -> None:
    clients = AWSClients(services=("sts", "iam", "cloudtrail"))

    assert sorted(clients.clients) == ["cloudtrail", "iam", "kms", "ssm", "sts"]
    for client in clients.clients.values():
        assert client.meta.endpoint_url == aws_env.url
        assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 4}
    assert clients.call("sts", "GetCallerIdentity", "me")["Account"] == "123456789012"
    with pytest.raises(exceptions.AWSError) as raised:
        clients.call("iam", "GetUser", "nobody", UserName="nobody")
    assert str(raised.value.cause).startswith("NoSuchEntity")


def test_an_answer_that_is_not_an_aws_response_is_an_aws_error() -> None:
    """moto answers SimulatePrincipalPolicy with an HTML error page: botocore's parser
    error is not a BotoCoreError, and used to escape untranslated."""
    clients = AWSClients(services=("iam",))
    with pytest.raises(exceptions.AWSError) as raised:
        clients.call(
            "iam",
            "SimulatePrincipalPolicy",
            "user/x",
            PolicySourceArn="arn:aws:iam::123456789012:user/x",
            ActionNames=["kms:Sign"],
        )
    assert raised.value.cause == "ResponseParserError"
    assert "not an AWS response" in str(raised.value) and "<html" not in str(raised.value)
