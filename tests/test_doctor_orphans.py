"""kms_doctor's ``key.unfinished``: orphan keys and stuck aliases that a killed
``kms_setup`` really left (SIGKILLed after an AWS write, tests/management/crashhook),
each reported with the command that fixes it, and a pass once the rerun converged.
The old scripts' keys (NOTES.md, "Legacy layout") and other applications' keys are
never reported."""

from __future__ import annotations

import signal
from pathlib import Path

import boto3
import pytest
from django.test import override_settings

from confio_kms import AlgorandKMSManager
from confio_kms.core.aws import AWSClients
from confio_kms.management.commands.kms_doctor import configuration, diagnose
from confio_kms.ops.doctor import Finding, Status
from confio_kms.ops.doctor.leftovers import check_unfinished
from confio_kms.ops.doctor.state import Checkup
from confio_kms.sandbox import LocalAWS, LocalLedger

from .helpers import RequestCounter, new_account
from .management.test_kms_setup_crash import ALIAS, assert_converged, backup, run

RERUN = f"manage.py kms_setup --create-new --alias {ALIAS} --network testnet --mnemonic-out FILE"


@pytest.fixture(autouse=True)
def use_kms() -> object:
    with override_settings(USE_KMS_SIGNING=True):
        yield


def unfinished(session: boto3.Session | None = None) -> list[Finding]:
    """The ``key.unfinished`` findings of a whole doctor run."""
    report = diagnose(session=session)
    return [f for f in report.findings if f.check == "key.unfinished"]


def killed_setup(aws: LocalAWS, path: Path, kill_after: int) -> dict[str, str]:
    made = run(aws, "--create-new", "--no-input", f"--mnemonic-out={path}", kill_after=kill_after)
    assert made.returncode == -signal.SIGKILL
    fields = backup(path)
    assert fields is not None
    return fields


def test_an_orphan_key_warns_with_the_rerun_and_passes_after_it(
    aws_env: LocalAWS, tmp_path: Path, ledger: LocalLedger
) -> None:
    path = tmp_path / "backup.txt"
    fields = killed_setup(aws_env, path, kill_after=1)  # after CreateKey: no alias

    (finding,) = unfinished()

    assert finding.status is Status.WARN and finding.subject == f"alias/{ALIAS}"
    assert finding.message.startswith("Orphan key: KMS key ")
    assert "with no alias" in finding.message and "billed" in finding.message
    assert f"`{RERUN}`" in finding.fix
    assert fields["mnemonic"] not in finding.message + finding.fix
    rerun = run(aws_env, "--create-new", "--no-input", f"--mnemonic-out={path}")
    assert rerun.returncode == 0, rerun.stderr
    (after,) = unfinished()
    assert after.status is Status.PASS, after
    assert_converged(ledger, fields["address"])


@pytest.mark.parametrize("kill_after", [2, 3])  # after CreateAlias; after PutParameter
def test_a_stuck_alias_fails_with_the_rerun_and_passes_after_it(
    aws_env: LocalAWS, tmp_path: Path, ledger: LocalLedger, kill_after: int
) -> None:
    path = tmp_path / "backup.txt"
    fields = killed_setup(aws_env, path, kill_after)

    (finding,) = unfinished()

    assert finding.status is Status.FAIL and finding.subject == f"alias/{ALIAS}"
    assert finding.message.startswith(f"Stuck alias: alias/{ALIAS} points at KMS key ")
    stored = "stored" if kill_after == 3 else "missing"
    assert f"its SSM parameter {stored}" in finding.message
    assert f"`{RERUN}`" in finding.fix
    rerun = run(aws_env, "--create-new", "--no-input", f"--mnemonic-out={path}")
    assert rerun.returncode == 0, rerun.stderr
    (after,) = unfinished()
    assert after.status is Status.PASS, after
    assert_converged(ledger, fields["address"])


def test_an_orphan_whose_alias_another_key_holds_says_to_delete_it(
    aws_env: LocalAWS, tmp_path: Path, ledger: LocalLedger
) -> None:
    killed_setup(aws_env, tmp_path / "backup.txt", kill_after=1)
    orphan = boto3.client("kms").list_keys()["Keys"][0]["KeyId"]
    AlgorandKMSManager().create_algorand_key(ALIAS)  # the library: no rerun, no clean-up

    (finding,) = unfinished()

    assert finding.status is Status.WARN and orphan in finding.message
    assert "a kms_setup rerun would refuse it" in finding.fix
    assert (
        f"`aws kms schedule-key-deletion --region {configuration().region} --key-id {orphan} "
        "--pending-window-in-days 7`"
    ) in finding.fix


def test_legacy_and_other_keys_are_never_reported_and_the_requests_are_counted(
    aws_env: LocalAWS,
) -> None:
    kms, ssm = boto3.client("kms"), boto3.client("ssm")
    # The old scripts' layout: an untagged key, its alias, its parameter deleted.
    legacy = kms.create_key(Description="old setup script")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/confio-legacy", TargetKeyId=legacy)
    private_key, _ = new_account()
    ssm.put_parameter(
        Name="/confio/algorand/confio-legacy/private-key", Value=private_key,
        Type="SecureString", KeyId=legacy,
    )  # fmt: skip
    ssm.delete_parameter(Name="/confio/algorand/confio-legacy/private-key")
    kms.create_key(Description="another application's, no alias")
    # A complete key of this library whose alias was later removed by hand.
    made = AlgorandKMSManager().create_algorand_key(ALIAS)
    kms.delete_alias(AliasName=f"alias/{ALIAS}")
    counter = RequestCounter()
    session = boto3.Session()
    counter.attach(session)
    conf = configuration()
    aws = AWSClients(conf.region, endpoint_url=conf.endpoint_url, session=session)

    (finding,) = check_unfinished(Checkup(conf, aws, session))

    assert finding.status is Status.PASS and finding.fix == "", finding
    assert made.key_id not in finding.message and legacy not in finding.message
    # docs/doctor.md: ListAliases, ListKeys, one ListResourceTags per customer key.
    assert counter.by_operation() == {
        "kms.ListAliases": 1,
        "kms.ListKeys": 1,
        "kms.ListResourceTags": 3,
    }


def test_the_requests_of_an_unfinished_key_are_counted(aws_env: LocalAWS, tmp_path: Path) -> None:
    killed_setup(aws_env, tmp_path / "backup.txt", kill_after=2)
    counter = RequestCounter()
    session = boto3.Session()
    counter.attach(session)
    conf = configuration()
    aws = AWSClients(conf.region, endpoint_url=conf.endpoint_url, session=session)

    (finding,) = check_unfinished(Checkup(conf, aws, session))

    assert finding.status is Status.FAIL
    # + DescribeKey and the parameter's read per unfinished envelope key.
    assert counter.by_operation() == {
        "kms.ListAliases": 1,
        "kms.ListKeys": 1,
        "kms.ListResourceTags": 1,
        "kms.DescribeKey": 1,
        "ssm.DescribeParameters": 1,
    }
