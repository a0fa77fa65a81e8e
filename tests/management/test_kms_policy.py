"""kms_policy: each document alone is exactly what the AWS CLI reads from a file, the
commands it prints apply it (run against the local endpoint), --json holds both, and
a bad account id is one line and exit status 1."""

from __future__ import annotations

import io
import json
import re
import shlex
from pathlib import Path
from typing import Any

import boto3
import jmespath
import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from confio_kms.lifecycle import policies as iam
from confio_kms.settings import DEFAULT_REGION

ACCOUNT = "123456789012"  # moto's account, too
PREFIX = "/confio/algorand"
NAMES = ["confio-testnet-sponsor", "confio-mainnet-sponsor"]
SUBSTITUTION = re.compile(r"\$\((.*)\)")


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("kms_policy", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def commands(stderr: str) -> list[str]:
    """The command lines kms_policy printed on stderr (indented under its header)."""
    return [line.strip() for line in stderr.splitlines() if line.startswith("  ")]


def aws_cli(command: str, cwd: Path) -> str:
    """Run an `aws ...` command line as the AWS CLI would, through boto3 against the
    local endpoint: `file://` arguments read, `$(...)` substituted, --query applied."""
    command = SUBSTITUTION.sub(lambda m: aws_cli(m.group(1), cwd), command)
    argv = shlex.split(command)
    assert argv[:1] == ["aws"], command
    service, operation, rest = argv[1], argv[2], argv[3:]
    params: dict[str, Any] = {}
    region, query = None, None
    for flag, value in zip(rest[::2], rest[1::2], strict=True):
        if value.startswith("file://"):
            value = (cwd / value.removeprefix("file://")).read_text()
        if flag == "--region":
            region = value
        elif flag == "--query":
            query = value
        elif flag != "--output":  # --policy-name: PolicyName
            params["".join(part.title() for part in flag[2:].split("-"))] = value
    client = boto3.client(service, region_name=region)
    response = getattr(client, operation.replace("-", "_"))(**params)
    return str(jmespath.search(query, response)) if query else json.dumps(response, default=str)


# --- each document alone ------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "name"), [("--runtime", "runtime"), ("--admin", "administration")]
)
def test_an_iam_policy_alone_is_the_document(flag: str, name: str) -> None:
    out, _ = run(flag, "--account-id", ACCOUNT)
    assert json.loads(out) == iam.policies(NAMES, DEFAULT_REGION, PREFIX, ACCOUNT)[name]
    wildcard, _ = run(flag)
    assert json.loads(wildcard) == iam.policies(NAMES, DEFAULT_REGION, PREFIX, "*")[name]


def test_the_key_policy_alone_is_the_document() -> None:
    out, _ = run("--key-policy", "--account-id", ACCOUNT)
    assert json.loads(out) == iam.key_policy(ACCOUNT)


def test_without_a_flag_both_iam_policies_as_before() -> None:
    out, _ = run("--account-id", ACCOUNT)
    assert json.loads(out) == iam.policies(NAMES, DEFAULT_REGION, PREFIX, ACCOUNT)
    # keyword arguments, as callers of call_command passed them, still work
    keyword = io.StringIO()
    call_command("kms_policy", key_policy=True, account_id=ACCOUNT, stdout=keyword)
    assert json.loads(keyword.getvalue()) == iam.key_policy(ACCOUNT)


def test_one_document_at_a_time() -> None:
    with pytest.raises(CommandError, match="not allowed with"):
        run("--runtime", "--admin")


# --- the commands that apply them ---------------------------------------------------


def test_the_iam_commands_name_the_policy_and_its_file() -> None:
    _, err = run("--runtime", "--account-id", ACCOUNT)
    assert commands(err) == [
        f"manage.py kms_policy --runtime --account-id {ACCOUNT} > confio-kms-runtime.json",
        "aws iam create-policy --policy-name confio-kms-runtime "
        "--policy-document file://confio-kms-runtime.json",
    ]
    _, both = run("--alias", "a", "--alias", "b")
    assert commands(both) == [
        "manage.py kms_policy --runtime --alias a --alias b > confio-kms-runtime.json",
        "aws iam create-policy --policy-name confio-kms-runtime "
        "--policy-document file://confio-kms-runtime.json",
        "manage.py kms_policy --admin --alias a --alias b > confio-kms-administration.json",
        "aws iam create-policy --policy-name confio-kms-administration "
        "--policy-document file://confio-kms-administration.json",
    ]


@override_settings(
    KMS_KEY_ALIAS_TESTNET="acme-testnet",
    KMS_KEY_ALIAS_MAINNET="acme-mainnet",
    KMS_REGION="eu-west-1",
)
def test_the_key_policy_is_put_on_each_covered_alias() -> None:
    _, err = run("--key-policy", "--account-id", ACCOUNT)
    lines = commands(err)
    assert lines[0] == (
        f"manage.py kms_policy --key-policy --account-id {ACCOUNT} > confio-kms-key-policy.json"
    )
    for line, alias in zip(lines[1:], ["acme-testnet", "acme-mainnet"], strict=True):
        assert line == (
            "aws kms put-key-policy --region eu-west-1 --key-id "
            f'"$(aws kms describe-key --region eu-west-1 --key-id alias/{alias} '
            '--query KeyMetadata.KeyId --output text)" '
            "--policy-name default --policy file://confio-kms-key-policy.json"
        )
    _, chosen = run("--key-policy", "--account-id", ACCOUNT, "--alias", "one", "--alias", "one")
    assert [c.count("alias/one") for c in commands(chosen)] == [0, 1]


def test_quiet_prints_the_document_only() -> None:
    out, err = run("--key-policy", "--account-id", ACCOUNT, "--verbosity", "0")
    assert json.loads(out) == iam.key_policy(ACCOUNT)
    assert err == ""


def test_the_printed_commands_apply_the_documents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Save each document as the printed manage.py line says, then run the aws lines."""
    kms = boto3.client("kms")
    keys = [kms.create_key()["KeyMetadata"]["KeyId"] for _ in NAMES]
    for name, key in zip(NAMES, keys, strict=True):
        kms.create_alias(AliasName=f"alias/{name}", TargetKeyId=key)
    # PutKeyPolicy takes no alias (AWS's API and moto agree): hence describe-key
    with pytest.raises(kms.exceptions.NotFoundException):
        kms.put_key_policy(KeyId=f"alias/{NAMES[0]}", PolicyName="default", Policy="{}")
    for flag in ("--runtime", "--admin", "--key-policy"):
        _, err = run(flag, "--account-id", ACCOUNT)
        save, *applies = commands(err)
        args, file = save.split(" > ")
        out, _ = run(*shlex.split(args)[2:])
        (tmp_path / file).write_text(out)
        for apply in applies:
            aws_cli(apply, tmp_path)
    iam_client = boto3.client("iam")
    created = {p["PolicyName"]: p for p in iam_client.list_policies(Scope="Local")["Policies"]}
    assert set(created) == {"confio-kms-runtime", "confio-kms-administration"}
    document = iam_client.get_policy_version(
        PolicyArn=created["confio-kms-runtime"]["Arn"], VersionId="v1"
    )["PolicyVersion"]["Document"]
    if isinstance(document, str):
        document = json.loads(document)
    assert document == iam.policies(NAMES, DEFAULT_REGION, PREFIX, ACCOUNT)["runtime"]
    for key in keys:
        policy = kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"]
        assert json.loads(policy) == iam.key_policy(ACCOUNT)


# --- --json -------------------------------------------------------------------------


def test_json_holds_the_documents_and_the_commands() -> None:
    out, err = run("--json", "--account-id", ACCOUNT)
    data = json.loads(out)
    assert err == ""
    assert data["documents"] == iam.policies(NAMES, DEFAULT_REGION, PREFIX, ACCOUNT)
    assert data["account_id"] == ACCOUNT and data["aliases"] == NAMES
    assert [(c["document"], c["file"], c["alias"]) for c in data["commands"]] == [
        ("runtime", "confio-kms-runtime.json", None),
        ("administration", "confio-kms-administration.json", None),
    ]
    _, text = run("--account-id", ACCOUNT)
    assert [line for c in data["commands"] for line in (c["save"], c["apply"])] == commands(text)
    assert data["warnings"] == []

    key = json.loads(run("--key-policy", "--json", "--account-id", ACCOUNT)[0])
    assert key["documents"] == {"key_policy": iam.key_policy(ACCOUNT)}
    assert [c["alias"] for c in key["commands"]] == NAMES
    assert all("put-key-policy" in c["apply"] for c in key["commands"])
    runtime = json.loads(run("--runtime", "--json")[0])
    assert list(runtime["documents"]) == ["runtime"] and runtime["account_id"] == "*"


def test_a_policy_over_iams_size_limit_is_warned_about() -> None:
    many = [arg for i in range(8) for arg in ("--alias", f"confio-testnet-sponsor-{i}")]
    out, err = run("--admin", "--account-id", ACCOUNT, *many)
    assert json.loads(out)["Statement"]
    assert "Warning: The administration policy has" in err and "6,144" in err
    data = json.loads(run("--json", "--account-id", ACCOUNT, *many)[0])
    assert len(data["warnings"]) == 1 and "administration" in data["warnings"][0]


# --- refusals -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--key-policy"], "--key-policy needs --account-id"),
        (["--key-policy", "--account-id", "*"], "--key-policy needs --account-id"),
        (["--key-policy", "--account-id", "12345678901"], "'12345678901' is not an AWS account id"),
        (["--runtime", "--account-id", "1234567890123"], "(12 digits, or * for any account)"),
        (["--admin", "--account-id", "12345678901a"], "is not an AWS account id"),
        (["--account-id", " 123456789012"], "is not an AWS account id"),
        (["--account-id", "١٢٣٤٥٦٧٨٩٠١٢"], "is not an AWS account id"),  # not ASCII digits
    ],
)
def test_a_bad_account_id_is_refused(args: list[str], needle: str) -> None:
    with pytest.raises(CommandError) as refused:
        run(*args)
    message = str(refused.value)
    assert needle in message and "Fix: Pass" in message and "\n" not in message


@pytest.mark.parametrize("args", [["--key-policy"], ["--runtime", "--account-id", "my-account"]])
def test_a_bad_account_id_is_one_line_and_exit_1(manage_py, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    result = manage_py("kms_policy", *args)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("CommandError: ")
    assert "account" in result.stderr and "Fix:" in result.stderr
