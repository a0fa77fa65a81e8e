"""kms_doctor as operators run it: one line per check, --json with real JSON types, exit
status 1 only when a check fails, progress on stderr unless -v 0."""

from __future__ import annotations

import io
import json
import logging

import boto3
import pytest
from algosdk import mnemonic
from django.core.management import CommandError, call_command
from django.test import override_settings

from ..helpers import new_account
from ..test_doctor import HEALTHY, deploy

STATUS_WORDS = {"PASS", "WARN", "FAIL", "UNKNOWN", "REMINDER"}


def as_runtime_user(session: boto3.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the command with the runtime user's access key, as the app would."""
    credentials = session.get_credentials()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials.secret_key)


def run(*args: str, **options: object) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("kms_doctor", *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


@override_settings(USE_KMS_SIGNING=True)
def test_a_healthy_deployment_prints_one_line_per_check_and_exits_0(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    setup = deploy()
    as_runtime_user(setup.session, monkeypatch)

    out, err = run()

    lines = out.splitlines()
    checks = [line.split()[1] for line in lines[:-1]]
    assert [line.split()[0] for line in lines[:-1]] == [
        "PASS" if c in HEALTHY else "REMINDER" for c in checks
    ]
    assert set(HEALTHY) <= set(checks)
    assert lines[-1] == "13 pass, 0 warn, 0 fail, 0 unknown, 5 reminder (region eu-central-2)"
    assert "Fix:" not in out  # nothing to fix
    assert "... checking alias/confio-testnet-sponsor" in err  # progress, on stderr


@override_settings(USE_KMS_SIGNING=True)
def test_warnings_alone_exit_0(monkeypatch: pytest.MonkeyPatch) -> None:
    setup = deploy()
    boto3.client("kms").untag_resource(KeyId=setup.key_id, TagKeys=["AlgorandNetwork"])
    as_runtime_user(setup.session, monkeypatch)

    out, _ = run()

    (warning,) = [line for line in out.splitlines() if line.startswith("WARN")]
    assert warning.split()[1] == "key.network" and " Fix: Tag the key:" in warning


def test_failures_exit_1_with_one_line_naming_them(monkeypatch: pytest.MonkeyPatch) -> None:
    setup = deploy()
    boto3.client("kms").schedule_key_deletion(KeyId=setup.key_id, PendingWindowInDays=7)
    as_runtime_user(setup.session, monkeypatch)
    out = io.StringIO()

    with override_settings(USE_KMS_SIGNING=False), pytest.raises(CommandError) as raised:
        call_command("kms_doctor", stdout=out, stderr=io.StringIO())

    # The test signature fails too: the sandbox's SSM refuses to decrypt with a key
    # pending deletion, as AWS does (confio_kms/sandbox/parameter_store.py).
    assert str(raised.value) == (
        "3 checks failed: settings.kms_signing, key.state (alias/confio-testnet-sponsor), "
        "signature (alias/confio-testnet-sponsor)"
    )
    report = out.getvalue().splitlines()
    assert all(line.split()[0] in STATUS_WORDS for line in report[:-1])
    (state,) = [line for line in report if line.split()[1] == "key.state"]
    assert state.startswith("FAIL ") and "Fix: Cancel the deletion" in state
    (signature,) = [line for line in report if line.split()[1] == "signature"]
    assert signature.startswith("FAIL ") and "pending deletion" in signature


@override_settings(USE_KMS_SIGNING=True)
def test_json_has_real_types_and_the_same_exit_status(monkeypatch: pytest.MonkeyPatch) -> None:
    setup = deploy()
    as_runtime_user(setup.session, monkeypatch)
    out, _ = run("--json")

    data = json.loads(out)
    assert data["failed"] == [] and data["region"] == "eu-central-2"
    assert data["counts"] == {"pass": 13, "warn": 0, "fail": 0, "unknown": 0, "reminder": 5}
    for finding in data["findings"]:
        assert finding["status"] in {"pass", "warn", "fail", "unknown", "reminder"}
        assert finding["fix"] is None or isinstance(finding["fix"], str)
        assert finding["subject"] is None or isinstance(finding["subject"], str)
    by_check = {f["check"]: f for f in data["findings"]}
    assert by_check["key.state"]["subject"] == "alias/confio-testnet-sponsor"
    assert by_check["settings.kms_signing"]["subject"] is None

    boto3.client("kms").disable_key(KeyId=setup.key_id)
    out = io.StringIO()
    # A disabled key cannot sign either (the sandbox refuses it as AWS does).
    with pytest.raises(CommandError, match=r"^2 checks failed: key\.state \(alias/"):
        call_command("kms_doctor", "--json", stdout=out, stderr=io.StringIO())
    assert json.loads(out.getvalue())["failed"] == ["key.state", "signature"]


@override_settings(USE_KMS_SIGNING=True)
def test_verbosity_0_prints_no_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    setup = deploy()
    as_runtime_user(setup.session, monkeypatch)
    out, err = run(verbosity=0)
    assert err == "" and out.splitlines()[-1].startswith("13 pass")


@override_settings(USE_KMS_SIGNING=True)
def test_principal_checks_another_identity() -> None:
    deploy(runtime=False)
    client = boto3.client("iam")
    client.create_role(RoleName="confio-web", AssumeRolePolicyDocument="{}")
    role = "arn:aws:iam::123456789012:role/confio-web"
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"iam\.signing \(arn:aws:iam::123456789012:role/"):
        call_command("kms_doctor", "--principal", role, stdout=out, stderr=io.StringIO())
    assert f"checking the permissions of {role}" in out.getvalue()
    with pytest.raises(CommandError, match="is not the ARN of an IAM user or role"):
        call_command("kms_doctor", "--principal", "confio-web", stdout=io.StringIO())


def test_as_a_process_the_report_is_on_stdout_and_the_failure_one_line(manage_py) -> None:  # type: ignore[no-untyped-def]
    result = manage_py("kms_doctor", "--json")  # no key, no trail, dummy credentials

    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert {"key.exists", "cloudtrail"} <= set(data["failed"])
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("CommandError: ") and "checks failed: " in lines[-1]
    assert all(line.startswith("... ") for line in lines[:-1])  # progress lines
    assert "Traceback" not in result.stderr


def test_a_missing_aws_profile_is_one_line(manage_py) -> None:  # type: ignore[no-untyped-def]
    result = manage_py("kms_doctor", "-v", "0", AWS_PROFILE="nonexistent")

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("CommandError: The AWS profile 'nonexistent' (AWS_PROFILE)")
    assert "aws configure --profile nonexistent" in lines[0] and "unset AWS_PROFILE" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@override_settings(USE_KMS_SIGNING=True)
def test_secrets_found_by_name_or_value_are_named_and_never_shown(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A 25-word mnemonic in a setting named like a key, and private keys in environment
    variables named SEED or PRIVATE, or named like nothing at all: settings.mnemonic
    fails naming each; no value reaches the text, the JSON or a log record."""
    setup = deploy()
    as_runtime_user(setup.session, monkeypatch)
    words = mnemonic.from_private_key(new_account()[0])
    seed, private, anonymous = (new_account()[0] for _ in range(3))
    monkeypatch.setenv("SPONSOR_SEED", seed)
    monkeypatch.setenv("ALGORAND_SPONSOR_PRIVATE_KEY", private)
    monkeypatch.setenv("BACKUP_BLOB", anonymous)
    secrets = [words, " ".join(words.split()[:3]), seed, private, anonymous]
    caplog.set_level(logging.DEBUG)

    outputs = []
    with override_settings(ALGORAND_SPONSOR_KEY=words):
        for args in (("-v", "2"), ("--json",)):
            out, err = io.StringIO(), io.StringIO()
            with pytest.raises(CommandError, match=r"settings\.mnemonic"):
                call_command("kms_doctor", *args, stdout=out, stderr=err)
            outputs += [out.getvalue(), err.getvalue()]

    text, _, document, _ = outputs
    (line,) = [line for line in text.splitlines() if line.split()[1] == "settings.mnemonic"]
    assert line.startswith("FAIL ")
    names = (
        "ALGORAND_SPONSOR_KEY, ALGORAND_SPONSOR_PRIVATE_KEY (environment), "
        "BACKUP_BLOB (environment), SPONSOR_SEED (environment)."
    )
    assert names in line
    assert (
        names
        in {f["check"]: f for f in json.loads(document)["findings"]}["settings.mnemonic"]["message"]
    )
    assert caplog.records  # botocore's DEBUG records, among others
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    for secret in secrets:
        for output in (*outputs, logged):
            assert secret not in output
