"""kms_doctor's checks (confio_kms.ops.doctor), each passing and failing against moto's
KMS, SSM, IAM, STS and CloudTrail.

The runtime identity is a real IAM user: moto maps an access key made with
iam:CreateAccessKey to its user for sts:GetCallerIdentity, so the doctor reads that
user's real policies. moto does not implement iam:SimulatePrincipalPolicy (it answers
HTTP 500), so those runs go through the doctor's own reading of the identity policies;
the simulator's answer is covered by one test that injects it (marked below).
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
import pytest
from algosdk import mnemonic
from botocore.awsrequest import AWSResponse
from django.core.management import call_command
from django.test import override_settings

from confio_kms import AlgorandKMSManager
from confio_kms.common import exceptions
from confio_kms.lifecycle import policies as iam
from confio_kms.management.commands.kms_doctor import diagnose
from confio_kms.ops.doctor import Finding, Report, Status, key_checks
from confio_kms.ops.doctor.trail import _Trail, _trails_finding

from .helpers import RequestCounter, inject_error, new_account

ACCOUNT = "123456789012"  # moto's account
REGION = "eu-central-2"
PREFIX = "/confio/algorand"
ALIAS = "confio-testnet-sponsor"
MAINNET_ALIAS = "confio-mainnet-sponsor"
ADMIN_EVERYTHING = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}],
}


# --- building a deployment in moto ---------------------------------------------------


def identity(
    name: str = "confio-web",
    *,
    managed: tuple[dict[str, Any], ...] = (),
    inline: tuple[dict[str, Any], ...] = (),
    group: tuple[dict[str, Any], ...] = (),
) -> boto3.Session:
    """An IAM user with these policies, and a session signed with its access key."""
    client = boto3.client("iam")
    client.create_user(UserName=name)
    for index, document in enumerate(managed):
        arn = client.create_policy(
            PolicyName=f"{name}-managed-{index}", PolicyDocument=json.dumps(document)
        )["Policy"]["Arn"]
        client.attach_user_policy(UserName=name, PolicyArn=arn)
    for index, document in enumerate(inline):
        client.put_user_policy(
            UserName=name, PolicyName=f"inline-{index}", PolicyDocument=json.dumps(document)
        )
    if group:
        client.create_group(GroupName=f"{name}-group")
        client.add_user_to_group(GroupName=f"{name}-group", UserName=name)
        for index, document in enumerate(group):
            client.put_group_policy(
                GroupName=f"{name}-group",
                PolicyName=f"group-{index}",
                PolicyDocument=json.dumps(document),
            )
    key = client.create_access_key(UserName=name)["AccessKey"]
    return boto3.Session(
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"]
    )


def runtime_policy(*names: str) -> dict[str, Any]:
    return iam.policies(names or (ALIAS,), REGION, PREFIX, ACCOUNT)["runtime"]


def administration_policy() -> dict[str, Any]:
    return iam.policies((ALIAS,), REGION, PREFIX, ACCOUNT)["administration"]


def trail(
    name: str = "confio-audit",
    *,
    region: str = REGION,
    multi_region: bool = True,
    logging: bool = True,
    **selectors: Any,
) -> None:
    """A real trail (with its bucket): logging unless told, with these event selectors."""
    bucket = f"{name}-logs"
    s3 = boto3.client("s3", region_name=region)
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    cloudtrail = boto3.client("cloudtrail", region_name=region)
    cloudtrail.create_trail(Name=name, S3BucketName=bucket, IsMultiRegionTrail=multi_region)
    if logging:
        cloudtrail.start_logging(Name=name)
    if selectors:
        cloudtrail.put_event_selectors(TrailName=name, **selectors)


def mfa_key_policy(key_id: str) -> None:
    """confio's key policy (`kms_policy --key-policy`), with the break-glass role it names."""
    boto3.client("iam").create_role(
        RoleName=iam.BREAK_GLASS_ROLE, AssumeRolePolicyDocument=json.dumps({"Statement": []})
    )
    put_key_policy(key_id, iam.key_policy(ACCOUNT))


def put_key_policy(key_id: str, policy: dict[str, Any]) -> None:
    boto3.client("kms").put_key_policy(
        KeyId=key_id, PolicyName="default", Policy=json.dumps(policy)
    )


@dataclass
class Deployment:
    key_id: str
    address: str
    session: boto3.Session  # signed as the runtime identity
    counter: RequestCounter


def deploy(*, native: bool = False, runtime: bool = True) -> Deployment:
    """Everything the checklist asks for: the key, confio's key policy, a runtime user
    with the runtime policy (managed), a logging multi-region trail."""
    key_id, address, _ = AlgorandKMSManager().create_algorand_key(ALIAS, native=native)
    mfa_key_policy(key_id)
    session = identity(managed=(runtime_policy(),)) if runtime else boto3.Session()
    trail()
    counter = RequestCounter()
    counter.attach(session)
    return Deployment(key_id, address, session, counter)


def by_check(report: Report) -> dict[str, Finding]:
    """The findings by check id (for checks that appear once)."""
    return {f.check: f for f in report.findings}


def statuses(report: Report) -> dict[str, str]:
    return {f.check: f.status.value for f in report.findings if f.status is not Status.REMINDER}


@pytest.fixture
def use_kms() -> Iterator[None]:
    with override_settings(USE_KMS_SIGNING=True):
        yield


# --- the whole run -------------------------------------------------------------------


HEALTHY = {
    "settings.kms_signing": "pass",
    "settings.mnemonic": "pass",
    "key.exists": "pass",
    "key.state": "pass",
    "key.network": "pass",
    "key.address": "pass",
    "key.mfa": "pass",
    "key.unfinished": "pass",
    "iam.identity": "pass",
    "iam.signing": "pass",
    "iam.least_privilege": "pass",
    "cloudtrail": "pass",
    "signature": "pass",
}


def test_a_deployment_that_follows_the_checklist_passes_and_its_requests_are_counted(
    use_kms: None,
) -> None:
    setup = deploy()
    with override_settings(ALGORAND_SPONSOR_ADDRESS=setup.address):
        report = diagnose(session=setup.session)

    assert statuses(report) == HEALTHY
    assert report.failed == []
    found = by_check(report)
    assert "as ALGORAND_SPONSOR_ADDRESS says" in found["key.address"].message
    assert "arn:aws:iam::123456789012:user/confio-web" in found["iam.identity"].message
    # The fallback says what it is.
    assert "not a full simulation" in found["iam.signing"].message
    assert "kms:Decrypt (through SSM) on the key of alias/confio-testnet-sponsor" in (
        found["iam.signing"].message
    )
    assert [f.check for f in report.findings if f.status is Status.REMINDER] == [
        "reminder.backups",
        "reminder.old_copies",
        "reminder.break_glass",
        "reminder.alerts",
        "reminder.team",
    ]
    # The PASS texts say what was checked.
    assert "holds an Algorand mnemonic or base64 private key" in found["settings.mnemonic"].message
    assert (
        "may not: kms:ScheduleKeyDeletion, kms:CancelKeyDeletion, kms:DisableKey, "
        "kms:PutKeyPolicy, kms:CreateGrant, kms:UpdateAlias, kms:DeleteAlias on the key of "
        "alias/confio-testnet-sponsor; ssm:PutParameter, ssm:DeleteParameter on "
        "/confio/algorand/confio-testnet-sponsor/private-key; kms:CreateKey; kms:Decrypt, "
        "kms:Sign on another application's key; ssm:GetParameter on another application's "
        "parameter (read from its IAM policies"
    ) in found["iam.least_privilege"].message
    assert (
        ", and the key policy's statements that name the identity or everyone; not a full "
        "simulation: no SCPs"
    ) in found["iam.least_privilege"].message
    # Stated in docs/doctor.md: 22 requests for this deployment (one envelope key, a
    # runtime user with one managed policy and no group, one trail).
    assert setup.counter.by_operation() == {
        "kms.DescribeKey": 3,  # active alias, the mainnet alias (not found), the signer
        "kms.ListResourceTags": 3,  # the key's tags: its checks, the signer, key.unfinished
        "kms.GetKeyPolicy": 1,
        "kms.ListAliases": 2,  # the active key's aliases (kms:ResourceAliases), key.unfinished
        "kms.ListKeys": 1,  # key.unfinished
        "sts.GetCallerIdentity": 1,
        "iam.SimulatePrincipalPolicy": 1,  # moto: HTTP 500, then the policies are read
        "iam.GetUser": 1,
        "iam.ListGroupsForUser": 1,
        "iam.ListAttachedUserPolicies": 1,
        "iam.GetPolicy": 1,
        "iam.GetPolicyVersion": 1,
        "iam.ListUserPolicies": 1,
        "cloudtrail.DescribeTrails": 1,
        "cloudtrail.GetTrailStatus": 1,
        "cloudtrail.GetEventSelectors": 1,
        "ssm.GetParameter": 1,  # the test signature: the ciphertext, then one Decrypt
        "kms.Decrypt": 1,
    }
    assert setup.counter.total == 23


def test_the_report_is_plain_data_with_real_json_types(use_kms: None) -> None:
    setup = deploy()
    data = json.loads(json.dumps(diagnose(session=setup.session).as_dict()))
    assert data["region"] == REGION and data["failed"] == []
    assert all(isinstance(v, int) for v in data["counts"].values())
    first = data["findings"][0]
    assert set(first) == {"check", "subject", "status", "message", "fix"}
    assert first["fix"] is None and first["status"] == "pass"


def test_one_failing_request_makes_only_its_own_check_unknown(use_kms: None) -> None:
    setup = deploy()
    inject_error(setup.session, "kms", "GetKeyPolicy", "KMSInternalException", status=500)
    inject_error(setup.session, "cloudtrail", "DescribeTrails", "AccessDeniedException")

    found = by_check(diagnose(session=setup.session))

    assert found["key.mfa"].status is Status.UNKNOWN
    assert "KMSInternalException" in found["key.mfa"].message
    assert found["cloudtrail"].status is Status.UNKNOWN
    assert "AWS denied cloudtrail:DescribeTrails" in found["cloudtrail"].message
    assert all(
        found[check].status is Status.PASS
        for check in ("key.state", "key.address", "iam.signing", "signature")
    )


# --- settings ------------------------------------------------------------------------


def test_kms_signing_off_fails() -> None:
    setup = deploy()
    with override_settings(USE_KMS_SIGNING=False):
        found = by_check(diagnose(session=setup.session))
    assert found["settings.kms_signing"].status is Status.FAIL
    assert "USE_KMS_SIGNING=true" in found["settings.kms_signing"].fix


SECRET = "abandon " * 24 + "art"


def test_a_mnemonic_in_the_environment_or_settings_fails_and_is_never_shown(
    use_kms: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = deploy()
    monkeypatch.setenv("ALGORAND_ADMIN_MNEMONIC", SECRET)
    with override_settings(BACKUP_SEED_PHRASE=SECRET):
        report = diagnose(session=setup.session)
    found = by_check(report)
    assert found["settings.mnemonic"].status is Status.FAIL
    assert "ALGORAND_ADMIN_MNEMONIC (environment)" in found["settings.mnemonic"].message
    assert "BACKUP_SEED_PHRASE" in found["settings.mnemonic"].message
    assert "abandon" not in json.dumps(report.as_dict())


def test_only_real_algorand_secrets_are_flagged_by_value(
    use_kms: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """25 words with a wrong checksum word, and base64 of 32 bytes, are not secrets by
    value; a real mnemonic or private key is, whatever the name."""
    private_key, _ = new_account()
    words = mnemonic.from_private_key(private_key).split()
    wrong = " ".join([*words[:24], "abandon" if words[24] != "abandon" else "ability"])
    monkeypatch.setenv("GREETING", wrong)
    monkeypatch.setenv("TOKEN_32", base64.b64encode(bytes(32)).decode())
    with override_settings(WELCOME_TEXT=wrong):
        assert by_check(diagnose())["settings.mnemonic"].status is Status.PASS
    monkeypatch.setenv("GREETING", private_key)
    with override_settings(WELCOME_TEXT=" ".join(words)):
        finding = by_check(diagnose())["settings.mnemonic"]
    assert finding.status is Status.FAIL
    assert finding.message.endswith("configured: WELCOME_TEXT, GREETING (environment).")


def test_a_mnemonic_in_a_dotenv_file_is_found(
    use_kms: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(f"ALGORAND_ADMIN_MNEMONIC={SECRET}\n")
    with override_settings(BASE_DIR=tmp_path):
        found = by_check(diagnose())
    assert found["settings.mnemonic"].status is Status.FAIL
    assert "ALGORAND_ADMIN_MNEMONIC (.env or settings.ini)" in found["settings.mnemonic"].message


def test_invalid_settings_are_one_failure(use_kms: None) -> None:
    with override_settings(KMS_REGION="mars-1"):
        report = diagnose()
    assert [(f.check, f.status) for f in report.findings] == [("settings.valid", Status.FAIL)]
    assert "KMS_REGION" in report.findings[0].message


# --- the keys -------------------------------------------------------------------------


def test_a_missing_alias_fails_and_no_signature_is_tried(use_kms: None) -> None:
    found = by_check(diagnose())
    assert found["key.exists"].status is Status.FAIL
    assert "KMS_KEY_ALIAS_TESTNET names alias/confio-testnet-sponsor" in found["key.exists"].message
    assert found["signature"].status is Status.UNKNOWN
    assert found["iam.signing"].status is Status.UNKNOWN


def test_a_key_pending_deletion_fails(use_kms: None) -> None:
    setup = deploy()
    boto3.client("kms").schedule_key_deletion(KeyId=setup.key_id, PendingWindowInDays=7)
    found = by_check(diagnose(session=setup.session))
    assert found["key.state"].status is Status.FAIL
    assert "pending deletion (deleted on " in found["key.state"].message
    assert f"aws kms cancel-key-deletion --key-id {setup.key_id}" in found["key.state"].fix


def test_a_primary_key_pending_replica_deletion_fails_with_the_cancel_command() -> None:
    """moto has no multi-Region deletion state: the decision on DescribeKey's metadata
    as AWS returns it for a primary key scheduled for deletion with replicas left."""
    metadata = {
        "KeyId": "mrk-1234abcd12ab34cd56ef1234567890ab",
        "KeyState": "PendingReplicaDeletion",
        "MultiRegion": True,
        "PendingDeletionWindowInDays": 7,
        "CreationDate": datetime(2025, 1, 1),
    }
    finding = key_checks._state("alias/confio-testnet-sponsor", metadata)
    assert finding.status is Status.FAIL
    assert "PendingReplicaDeletion" in finding.message
    assert "waiting period of 7 days starts when its last replica key is deleted" in (
        finding.message
    )
    assert "Wait" not in finding.fix
    assert (
        "aws kms cancel-key-deletion --key-id mrk-1234abcd12ab34cd56ef1234567890ab" in finding.fix
    )
    assert "aws kms enable-key --key-id mrk-1234abcd12ab34cd56ef1234567890ab" in finding.fix


def test_a_disabled_key_fails(use_kms: None) -> None:
    setup = deploy()
    boto3.client("kms").disable_key(KeyId=setup.key_id)
    found = by_check(diagnose(session=setup.session))
    assert found["key.state"].status is Status.FAIL
    assert "is Disabled" in found["key.state"].message
    assert "aws kms enable-key" in found["key.state"].fix


def test_a_key_tagged_for_another_network_fails(use_kms: None) -> None:
    setup = deploy()
    boto3.client("kms").tag_resource(
        KeyId=setup.key_id, Tags=[{"TagKey": "AlgorandNetwork", "TagValue": "mainnet"}]
    )
    found = by_check(diagnose(session=setup.session))
    assert found["key.network"].status is Status.FAIL
    assert "tagged AlgorandNetwork=mainnet" in found["key.network"].message


def test_a_key_without_network_tag_warns_and_a_bad_tag_fails(use_kms: None) -> None:
    setup = deploy()
    kms = boto3.client("kms")
    kms.untag_resource(KeyId=setup.key_id, TagKeys=["AlgorandNetwork"])
    found = by_check(diagnose(session=setup.session))
    assert found["key.network"].status is Status.WARN  # the old scripts' keys
    assert "comes from the alias name" in found["key.network"].message
    assert "TagKey=AlgorandNetwork,TagValue=testnet" in found["key.network"].fix

    kms.tag_resource(KeyId=setup.key_id, Tags=[{"TagKey": "AlgorandNetwork", "TagValue": "moon"}])
    found = by_check(diagnose(session=setup.session))
    assert found["key.network"].status is Status.FAIL


def test_an_address_setting_that_names_another_account_fails(use_kms: None) -> None:
    setup = deploy()
    other = new_account()[1]
    with override_settings(ALGORAND_SPONSOR_ADDRESS=other):
        found = by_check(diagnose(session=setup.session))
    assert found["key.address"].status is Status.FAIL
    assert f"ALGORAND_SPONSOR_ADDRESS is {other} but" in found["key.address"].message


def test_the_old_scripts_aliases_are_checked_with_their_addresses(use_kms: None) -> None:
    setup = deploy()
    AlgorandKMSManager().create_algorand_key("confio-testnet-admin")
    wrong = new_account()[1]
    with override_settings(
        KMS_ADMIN_KEY_ALIAS="confio-testnet-admin", ALGORAND_ADMIN_ADDRESS=wrong
    ):
        report = diagnose(session=setup.session)
    admin = [f for f in report.findings if f.subject == "alias/confio-testnet-admin"]
    assert {f.check: f.status for f in admin}["key.address"] is Status.FAIL
    assert any(f"ALGORAND_ADMIN_ADDRESS is {wrong}" in f.message for f in admin)


def test_the_other_networks_alias_is_checked_when_configured_or_present(use_kms: None) -> None:
    setup = deploy()
    with override_settings(KMS_KEY_ALIAS_MAINNET="prod-sponsor"):
        report = diagnose(session=setup.session)
    missing = [f for f in report.findings if f.subject == "alias/prod-sponsor"]
    assert [(f.check, f.status) for f in missing] == [("key.exists", Status.FAIL)]
    assert "KMS_KEY_ALIAS_MAINNET names alias/prod-sponsor" in missing[0].message

    AlgorandKMSManager().create_algorand_key(MAINNET_ALIAS, network="mainnet")
    report = diagnose(session=setup.session)
    mainnet = {f.check: f for f in report.findings if f.subject == f"alias/{MAINNET_ALIAS}"}
    assert mainnet["key.exists"].status is Status.PASS
    assert mainnet["key.network"].status is Status.PASS
    assert mainnet["key.mfa"].status is Status.FAIL  # KMS's default key policy


def test_the_key_policy_must_deny_deletion_without_mfa(use_kms: None) -> None:
    key_id, _, _ = AlgorandKMSManager().create_algorand_key(ALIAS)
    found = by_check(diagnose())
    assert found["key.mfa"].status is Status.FAIL  # KMS's default key policy
    # The fix is kms_policy's own save and apply commands, with the key's id.
    err = io.StringIO()
    call_command(
        "kms_policy", "--key-policy", "--account-id", ACCOUNT, stdout=io.StringIO(), stderr=err
    )
    printed = [line.strip() for line in err.getvalue().splitlines()]
    save = next(line for line in printed if line.startswith("manage.py kms_policy"))
    put = next(line for line in printed if line.startswith("aws kms put-key-policy"))
    put = re.sub(r'"\$\(aws kms describe-key [^)]*\)"', key_id, put)
    assert save == (
        "manage.py kms_policy --key-policy --account-id 123456789012 > confio-kms-key-policy.json"
    )
    assert f"--region {REGION} --key-id {key_id} " in put
    assert f"`{save}`" in found["key.mfa"].fix and f"`{put}`" in found["key.mfa"].fix

    mfa_key_policy(key_id)
    assert by_check(diagnose())["key.mfa"].status is Status.PASS


def test_a_key_policy_that_requires_mfa_only_in_part_warns(use_kms: None) -> None:
    key_id, _, _ = AlgorandKMSManager().create_algorand_key(ALIAS)
    policy = iam.key_policy(ACCOUNT)
    boto3.client("iam").create_role(RoleName=iam.BREAK_GLASS_ROLE, AssumeRolePolicyDocument="{}")
    statements = policy["Statement"]
    # Bool instead of BoolIfExists, and no MFA for PutKeyPolicy.
    for statement in statements:
        if statement["Sid"] == "DeleteOrDisableOnlyWithMFA":
            statement["Condition"] = {"Bool": {"aws:MultiFactorAuthPresent": "false"}}
    policy["Statement"] = [s for s in statements if s["Sid"] != "ChangeKeyPolicyOnlyWithMFA"]
    put_key_policy(key_id, policy)

    found = by_check(diagnose())["key.mfa"]

    assert found.status is Status.WARN
    assert "long-term access keys" in found.message and "use BoolIfExists" in found.message
    assert "kms:PutKeyPolicy is not denied without MFA" in found.message


# --- the identity's permissions --------------------------------------------------------


def test_a_runtime_identity_granted_kms_star_fails_least_privilege(use_kms: None) -> None:
    deploy(runtime=False)
    session = identity(inline=(runtime_policy(), ADMIN_EVERYTHING))
    found = by_check(diagnose(session=session))
    assert found["iam.signing"].status is Status.PASS
    failure = found["iam.least_privilege"]
    assert failure.status is Status.FAIL
    for action in ("kms:ScheduleKeyDeletion", "kms:PutKeyPolicy", "kms:CreateKey"):
        assert action in failure.message
    assert "kms:Decrypt on another application's key (allowed by confio-web/inline-1)" in (
        failure.message
    )
    assert "ssm:PutParameter" not in failure.message  # kms:* grants no SSM action


def test_grants_alias_changes_other_parameters_and_other_keys_are_probed(use_kms: None) -> None:
    deploy(runtime=False)
    broad = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "TooMuch",
                "Effect": "Allow",
                "Action": [
                    "kms:CreateGrant",
                    "kms:UpdateAlias",
                    "kms:DeleteAlias",
                    "kms:CancelKeyDeletion",
                    "kms:Sign",
                    "ssm:GetParameter",
                ],
                "Resource": "*",
            }
        ],
    }
    failure = by_check(diagnose(session=identity(inline=(runtime_policy(), broad))))[
        "iam.least_privilege"
    ]
    assert failure.status is Status.FAIL
    probed = ("kms:CreateGrant", "kms:UpdateAlias", "kms:DeleteAlias", "kms:CancelKeyDeletion")
    for action in probed:
        assert (
            f"{action} on the key of alias/confio-testnet-sponsor (allowed by confio-web/inline-1/"
            "TooMuch)" in failure.message
        )
    assert "kms:Sign on another application's key (allowed by" in failure.message
    assert "ssm:GetParameter on another application's parameter (allowed by" in failure.message
    assert "kms:ScheduleKeyDeletion" not in failure.message


def test_every_alias_of_the_key_counts_in_its_conditions(use_kms: None) -> None:
    """kms:ResourceAliases holds every alias of the key (ListAliases), such as an old
    KMS_KEY_ALIAS that still points at it, not only the configured one."""
    setup = deploy(runtime=False)
    boto3.client("kms").create_alias(AliasName="alias/old-sponsor", TargetKeyId=setup.key_id)
    by_old_alias = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DeleteOldKeys",
                "Effect": "Allow",
                "Action": "kms:ScheduleKeyDeletion",
                "Resource": "*",
                "Condition": {
                    "ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/old-sponsor"}
                },
            }
        ],
    }
    failure = by_check(diagnose(session=identity(inline=(runtime_policy(), by_old_alias))))[
        "iam.least_privilege"
    ]
    assert failure.status is Status.FAIL
    assert "kms:ScheduleKeyDeletion on the key of alias/confio-testnet-sponsor (allowed by " in (
        failure.message
    )


def test_a_key_policy_statement_for_the_runtime_user_counts(use_kms: None) -> None:
    """A key policy that grants the identity itself is as good as an IAM policy: an
    excess action there fails least privilege. The account's statement (root) is not the
    identity's: confio's key policy (deploy) leaves the runtime user passing."""
    setup = deploy()
    user = f"arn:aws:iam::{ACCOUNT}:user/confio-web"
    policy = iam.key_policy(ACCOUNT)
    policy["Statement"].append(
        {
            "Sid": "RuntimeEverything",
            "Effect": "Allow",
            "Principal": {"AWS": [user]},
            "Action": "kms:*",
            "Resource": "*",
        }
    )
    put_key_policy(setup.key_id, policy)
    found = by_check(diagnose(session=setup.session))
    assert found["iam.signing"].status is Status.PASS
    failure = found["iam.least_privilege"]
    assert failure.status is Status.FAIL
    for action in ("kms:ScheduleKeyDeletion", "kms:PutKeyPolicy", "kms:CreateGrant"):
        assert (
            f"{action} on the key of alias/confio-testnet-sponsor (allowed by "
            "key policy/RuntimeEverything)" in failure.message
        )
    # Not on other keys or parameters: the key policy covers its own key only.
    assert "another application's" not in failure.message


def test_a_key_policy_that_grants_the_role_directly_allows_signing(use_kms: None) -> None:
    """A role whose IAM policies grant only the metadata and the parameter, and whose
    kms:Decrypt comes from the key policy naming the role (with its path), may sign. A
    Deny to everyone in the key policy wins over the IAM policies."""
    setup = deploy(runtime=False)
    client = boto3.client("iam")
    client.create_role(RoleName="confio-web", Path="/apps/", AssumeRolePolicyDocument="{}")
    runtime = runtime_policy()
    runtime["Statement"] = [
        s for s in runtime["Statement"] if s["Sid"] in ("KeyMetadata", "EnvelopeKeyParameters")
    ]
    client.put_role_policy(
        RoleName="confio-web", PolicyName="runtime", PolicyDocument=json.dumps(runtime)
    )
    role = f"arn:aws:iam::{ACCOUNT}:role/apps/confio-web"
    policy = iam.key_policy(ACCOUNT)
    policy["Statement"].append(
        {
            "Sid": "AppDecryptsViaSSM",
            "Effect": "Allow",
            "Principal": {"AWS": role},
            "Action": "kms:Decrypt",
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": f"ssm.{REGION}.amazonaws.com"}},
        }
    )
    put_key_policy(setup.key_id, policy)
    credentials = boto3.client("sts").assume_role(RoleArn=role, RoleSessionName="web-1")[
        "Credentials"
    ]
    session = boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    found = by_check(diagnose(session=session))
    # Signing decrypts the ciphertext directly, which a through-SSM-only grant refuses
    # (moto enforces no IAM, so the test signature with these credentials passed: the
    # failure is reported as contradicted; asked for the role alone, it fails).
    assert found["iam.signing"].status is Status.UNKNOWN
    assert "kms:Decrypt (direct, with the parameter's" in found["iam.signing"].message
    assert found["iam.least_privilege"].status is Status.PASS
    signing = by_check(diagnose(principal=role))["iam.signing"]
    assert signing.status is Status.FAIL
    assert "kms:Decrypt (direct, with the parameter's encryption context)" in signing.message
    assert "manage.py kms_policy --runtime" in str(signing.fix)

    policy["Statement"].append(
        {
            "Sid": "NoDecrypt",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "kms:Decrypt",
            "Resource": "*",
        }
    )
    put_key_policy(setup.key_id, policy)
    failure = by_check(diagnose(principal=role))["iam.signing"]
    assert failure.status is Status.FAIL
    assert "kms:Decrypt (through SSM) on the key of alias/confio-testnet-sponsor (explicitly " in (
        failure.message
    )
    assert "denied by key policy/NoDecrypt)" in failure.message


def test_the_administration_policy_on_the_runtime_identity_fails(use_kms: None) -> None:
    deploy(runtime=False)
    session = identity(managed=(runtime_policy(), administration_policy()))
    failure = by_check(diagnose(session=session))["iam.least_privilege"]
    assert failure.status is Status.FAIL
    # Allowed with an MFA session: the Deny without MFA does not save a runtime role.
    assert "kms:ScheduleKeyDeletion on the key of alias/confio-testnet-sponsor" in failure.message
    assert "ssm:PutParameter" in failure.message
    assert "ssm:DeleteParameter" not in failure.message  # not in any policy


def test_policies_of_the_users_groups_count(use_kms: None) -> None:
    deploy(runtime=False)
    session = identity(inline=(runtime_policy(),), group=(ADMIN_EVERYTHING,))
    failure = by_check(diagnose(session=session))["iam.least_privilege"]
    assert failure.status is Status.FAIL and "group confio-web-group" in failure.message


def test_an_identity_missing_what_signing_needs_fails(use_kms: None) -> None:
    deploy(runtime=False)
    only_metadata = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["kms:DescribeKey", "kms:ListResourceTags"],
                "Resource": "*",
            }
        ],
    }
    session = identity(inline=(only_metadata,))
    user = f"arn:aws:iam::{ACCOUNT}:user/confio-web"
    # Checked by an operator (--principal): the test signature is not the user's.
    found = by_check(diagnose(principal=user))
    failure = found["iam.signing"]
    assert failure.status is Status.FAIL
    assert "ssm:GetParameter on /confio/algorand/confio-testnet-sponsor/private-key" in (
        failure.message
    )
    assert "kms:DescribeKey" not in failure.message.split("needs:")[1].split("(read")[0]
    assert "Attach the runtime policy" in failure.fix
    assert found["iam.least_privilege"].status is Status.PASS

    # Run as the user itself, the test signature it made contradicts the failure (moto
    # enforces no policy; on AWS a grant could allow it): not a certain fail.
    found = by_check(diagnose(session=session))
    assert found["signature"].status is Status.PASS
    contradicted = found["iam.signing"]
    assert contradicted.status is Status.UNKNOWN
    assert contradicted.message.startswith("Contradicted by the test signature")
    assert "ssm:GetParameter on /confio/algorand/" in contradicted.message
    assert "aws kms list-grants" in contradicted.fix


def test_an_explicit_deny_wins(use_kms: None) -> None:
    deploy(runtime=False)
    deny = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "NoParameters", "Effect": "Deny", "Action": "ssm:*", "Resource": "*"}
        ],
    }
    identity(inline=(runtime_policy(), deny))
    failure = by_check(diagnose(principal=f"arn:aws:iam::{ACCOUNT}:user/confio-web"))
    assert failure["iam.signing"].status is Status.FAIL
    assert "explicitly denied by confio-web/inline-1/NoParameters" in failure["iam.signing"].message


def test_conditions_the_doctor_cannot_decide_are_not_a_pass(use_kms: None) -> None:
    deploy(runtime=False)
    from_office = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "kms:*",
                "Resource": "*",
                "Condition": {"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}},
            }
        ],
    }
    found = by_check(diagnose(session=identity(inline=(runtime_policy(), from_office))))
    assert found["iam.signing"].status is Status.PASS  # the runtime policy allows it
    assert found["iam.least_privilege"].status is Status.WARN
    assert "if its condition holds" in found["iam.least_privilege"].message


def test_credentials_iam_does_not_know_are_cannot_tell(use_kms: None) -> None:
    deploy(runtime=False)  # the suite's dummy credentials: moto's "user/moto"
    found = by_check(diagnose())
    for check in ("iam.signing", "iam.least_privilege"):
        assert found[check].status is Status.UNKNOWN
        assert "Cannot tell" in found[check].message and "NoSuchEntity" in found[check].message


def test_an_identity_that_may_not_read_its_iam_is_cannot_tell(use_kms: None) -> None:
    setup = deploy()
    inject_query_error(setup.session, "iam", "ListAttachedUserPolicies", "AccessDenied")
    found = by_check(diagnose(session=setup.session))
    for check in ("iam.signing", "iam.least_privilege"):
        assert found[check].status is Status.UNKNOWN
        assert "may not read IAM (iam:ListAttachedUserPolicies denied)" in found[check].message
        assert "--principal" in found[check].fix


def test_credentials_sts_cannot_identify_leave_the_other_checks_alone(use_kms: None) -> None:
    setup = deploy()
    inject_query_error(setup.session, "sts", "GetCallerIdentity", "ExpiredToken")
    found = by_check(diagnose(session=setup.session))
    assert found["iam.identity"].status is Status.UNKNOWN
    assert "ExpiredToken" in found["iam.identity"].message
    for check in ("iam.signing", "iam.least_privilege"):
        assert found[check].status is Status.UNKNOWN
    for check in ("key.state", "key.mfa", "cloudtrail", "signature"):
        assert found[check].status is Status.PASS


def test_an_assumed_role_is_read_as_its_role(use_kms: None) -> None:
    deploy(runtime=False)
    client = boto3.client("iam")
    client.create_role(RoleName="confio-web", Path="/apps/", AssumeRolePolicyDocument="{}")
    client.put_role_policy(
        RoleName="confio-web", PolicyName="runtime", PolicyDocument=json.dumps(runtime_policy())
    )
    credentials = boto3.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/apps/confio-web", RoleSessionName="web-1"
    )["Credentials"]
    session = boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    found = by_check(diagnose(session=session))
    assert "assumed-role/confio-web/web-1" in found["iam.identity"].message
    assert found["iam.signing"].status is Status.PASS
    assert "confio-web/runtime" in found["iam.signing"].message
    assert found["iam.least_privilege"].status is Status.PASS


def test_an_operator_checks_the_apps_role_with_principal(use_kms: None) -> None:
    deploy(runtime=False)
    client = boto3.client("iam")
    client.create_role(RoleName="confio-web", AssumeRolePolicyDocument="{}")
    client.put_role_policy(
        RoleName="confio-web", PolicyName="all", PolicyDocument=json.dumps(ADMIN_EVERYTHING)
    )
    role = f"arn:aws:iam::{ACCOUNT}:role/confio-web"
    found = by_check(diagnose(principal=role))
    assert f"checking the permissions of {role}" in found["iam.identity"].message
    assert found["iam.least_privilege"].status is Status.FAIL
    assert found["iam.least_privilege"].subject == role

    with pytest.raises(exceptions.ConfigurationError, match="not the ARN of an IAM user or role"):
        diagnose(principal="confio-web")


def test_a_native_key_needs_sign_and_has_no_backup_reminder(use_kms: None) -> None:
    setup = deploy(native=True)
    report = diagnose(session=setup.session)
    found = by_check(report)
    assert statuses(report) == HEALTHY
    assert "kms:Sign, kms:GetPublicKey on the key of alias/" in found["iam.signing"].message
    assert "ssm:GetParameter" not in found["iam.signing"].message
    assert found["reminder.recovery"].status is Status.REMINDER
    assert "reminder.backups" not in found
    # docs/doctor.md: 22 requests, kms:Sign in place of ssm:GetParameter and kms:Decrypt.
    assert setup.counter.total == 22
    assert setup.counter.by_operation()["kms.Sign"] == 1
    assert "ssm.GetParameter" not in setup.counter.calls


class _Body:
    def __init__(self, text: str) -> None:
        self._text = text

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._text.encode()


def inject_query_error(session: boto3.Session, service: str, operation: str, code: str) -> None:
    """Make ``service.operation`` fail with ``code``: IAM and STS answer in XML (the
    query protocol), not JSON as helpers.inject_error writes."""
    xml = (
        "<ErrorResponse><Error>"
        f"<Type>Sender</Type><Code>{code}</Code><Message>injected fault</Message></Error>"
        "<RequestId>injected</RequestId></ErrorResponse>"
    )
    session.events.register(
        f"before-send.{service}.{operation}",
        lambda **kwargs: AWSResponse(f"https://{service}.injected/", 403, {}, _Body(xml)),
    )


def simulator_answer(
    decisions: dict[str, str], per_resource: dict[str, tuple[str, list[str]]] | None = None
) -> Any:
    """IAM's XML answer to SimulatePrincipalPolicy: ``decisions`` by action, or by
    "action resource-ARN" for one resource only; the rest implicitDeny.
    ``per_resource``: by action, the resource's decision and the context keys it reports
    missing, in ResourceSpecificResults as AWS answers when ResourceArns names a
    resource (the top level then lists none). Injected: moto does not implement the
    simulator."""
    per_resource = per_resource or {}

    def respond(request: Any, **kwargs: Any) -> AWSResponse:
        from urllib.parse import parse_qs

        body = parse_qs(request.body.decode() if isinstance(request.body, bytes) else request.body)
        actions = [v[0] for k, v in sorted(body.items()) if k.startswith("ActionNames.member.")]
        resource = body["ResourceArns.member.1"][0]

        def specific(action: str) -> str:
            if action not in per_resource:
                return ""
            decision, missing = per_resource[action]
            keys = "".join(f"<member>{key}</member>" for key in missing)
            return (
                f"<ResourceSpecificResults><member><EvalResourceName>{resource}"
                f"</EvalResourceName><EvalResourceDecision>{decision}</EvalResourceDecision>"
                "<MatchedStatements/>"
                f"<MissingContextValues>{keys}</MissingContextValues>"
                "</member></ResourceSpecificResults>"
            )

        members = "".join(
            f"<member><EvalActionName>{a}</EvalActionName><EvalResourceName>{resource}"
            f"</EvalResourceName><EvalDecision>"
            f"{decisions.get(f'{a} {resource}', decisions.get(a, 'implicitDeny'))}"
            f"</EvalDecision><MissingContextValues/>{specific(a)}</member>"
            for a in actions
        )
        xml = (
            '<SimulatePrincipalPolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
            f"<SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated><EvaluationResults>"
            f"{members}</EvaluationResults></SimulatePrincipalPolicyResult>"
            "<ResponseMetadata><RequestId>injected</RequestId></ResponseMetadata>"
            "</SimulatePrincipalPolicyResponse>"
        )

        return AWSResponse("https://iam.injected/", 200, {"Content-Type": "text/xml"}, _Body(xml))

    return respond


# The runtime policy of earlier releases: kms:Decrypt only through SSM.
VIA_SSM_ONLY = {
    "Sid": "EnvelopeKeyDecryptViaSSM",
    "Effect": "Allow",
    "Action": ["kms:Decrypt"],
    "Resource": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/*",
    "Condition": {
        "ForAnyValue:StringEquals": {"kms:ResourceAliases": [f"alias/{ALIAS}"]},
        "StringEquals": {"kms:ViaService": f"ssm.{REGION}.amazonaws.com"},
    },
}


@pytest.mark.parametrize("earlier", [True, False], ids=["ViaService policy", "current policy"])
def test_a_runtime_policy_that_decrypts_only_through_ssm_fails(
    use_kms: None, earlier: bool
) -> None:
    """The earlier runtime policy refuses decrypting the parameter's ciphertext
    directly, which signing does: a failure naming the fix. The current one allows
    it, by the parameter's encryption context."""
    key_id, _, _ = AlgorandKMSManager().create_algorand_key(ALIAS)
    mfa_key_policy(key_id)
    runtime = runtime_policy()
    if earlier:
        runtime["Statement"] = [
            VIA_SSM_ONLY if s["Action"] == ["kms:Decrypt"] else s for s in runtime["Statement"]
        ]
    session = identity(managed=(runtime,))
    trail()

    signing = by_check(diagnose(session=session))["iam.signing"]

    if earlier:
        # moto enforces no IAM: the test signature passed, so ask for the user alone.
        assert signing.status is Status.UNKNOWN
        signing = by_check(diagnose(principal=f"arn:aws:iam::{ACCOUNT}:user/confio-web"))[
            "iam.signing"
        ]
        assert signing.status is Status.FAIL
        assert signing.message.startswith(
            f"arn:aws:iam::{ACCOUNT}:user/confio-web may not make requests signing needs: "
        )
        assert (
            "kms:Decrypt (direct, with the parameter's encryption context) on the key "
            f"of alias/{ALIAS} (no statement allows it)" in signing.message
        )
        assert "kms:PARAMETER_ARN" not in signing.message
        assert "kms:EncryptionContext:PARAMETER_ARN" in str(signing.fix)
    else:
        assert signing.status is Status.PASS
        assert "EnvelopeKeyDecrypt1" in signing.message


def test_the_simulators_answer_is_used_when_aws_gives_one(use_kms: None) -> None:
    """The one test that injects an answer instead of a fault: moto has no simulator."""
    setup = deploy()
    setup.session.events.register(
        "before-send.iam.SimulatePrincipalPolicy",
        simulator_answer(
            {
                "kms:DescribeKey": "allowed",
                "kms:ListResourceTags": "allowed",
                "ssm:GetParameter": "allowed",
                "kms:Decrypt": "allowed",  # also on another key: too much
            }
        ),
    )
    report = diagnose(session=setup.session)
    found = by_check(report)
    assert found["iam.signing"].status is Status.PASS
    assert "IAM's policy simulator" in found["iam.signing"].message
    failure = found["iam.least_privilege"]
    assert failure.status is Status.FAIL
    assert "kms:Decrypt on another application's key (allowed)" in failure.message
    # Simulated, so no policy was read: one request per resource and context (the
    # direct decrypt, without kms:ViaService, is a context of its own).
    assert "iam.GetUser" not in setup.counter.calls
    assert setup.counter.by_operation()["iam.SimulatePrincipalPolicy"] == 10


def test_the_simulators_missing_keys_per_resource_leave_the_answer_open(
    use_kms: None,
) -> None:
    """With ResourceArns, AWS lists missing condition keys per resource: a Deny or an
    Allow that depends on a key the doctor did not send is not certain, either way.
    Keys the request is known not to carry (kms:ViaService outside SSM, other tags) are
    not missing. Injected answers (moto has no simulator)."""
    setup = deploy()
    setup.session.events.register(
        "before-send.iam.SimulatePrincipalPolicy",
        simulator_answer(
            {
                "kms:DescribeKey": "allowed",
                "kms:ListResourceTags": "allowed",
                f"ssm:GetParameter arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{PREFIX}/{ALIAS}"
                "/private-key": "allowed",
                "kms:Decrypt": "explicitDeny",
            },
            {
                # Known to be absent from these requests: the answers stand.
                "kms:DescribeKey": ("allowed", ["kms:ViaService", "aws:ResourceTag/Team"]),
                "kms:ScheduleKeyDeletion": ("implicitDeny", ["kms:ViaService"]),
                # Keys the doctor did not send.
                "kms:Decrypt": ("explicitDeny", ["aws:SourceVpce"]),
                "kms:DisableKey": ("implicitDeny", ["aws:SourceIp"]),
            },
        ),
    )
    found = by_check(diagnose(session=setup.session))
    signing = found["iam.signing"]
    assert signing.status is Status.UNKNOWN
    assert not signing.message.startswith("Contradicted")  # open, not failed
    assert (
        "kms:Decrypt (through SSM) on the key of alias/confio-testnet-sponsor (explicitDeny, "
        "but depends on aws:SourceVpce)" in signing.message
    )
    assert "kms:DescribeKey" not in signing.message.split("needs:")[1].split("(by IAM")[0]
    excess = found["iam.least_privilege"]
    assert excess.status is Status.WARN
    assert (
        "kms:DisableKey on the key of alias/confio-testnet-sponsor (implicitDeny, but depends "
        "on aws:SourceIp)" in excess.message
    )
    assert "kms:ScheduleKeyDeletion" not in excess.message


def test_a_simulator_refused_falls_back_to_reading_the_policies(use_kms: None) -> None:
    setup = deploy()
    inject_query_error(setup.session, "iam", "SimulatePrincipalPolicy", "AccessDenied")
    found = by_check(diagnose(session=setup.session))
    assert found["iam.signing"].status is Status.PASS
    assert "simulator was unavailable (AccessDenied" in found["iam.signing"].message


# --- CloudTrail ------------------------------------------------------------------------


def cloudtrail_after(*, none: bool = False, **trail_options: Any) -> Finding:
    """The cloudtrail finding once a trail made with ``trail_options`` exists (or none)."""
    AlgorandKMSManager().create_algorand_key(ALIAS)
    if not none:
        trail(**trail_options)
    return by_check(diagnose())["cloudtrail"]


def test_no_trail_fails(use_kms: None) -> None:
    finding = cloudtrail_after(none=True)
    assert finding.status is Status.FAIL
    assert "No CloudTrail trail covers eu-central-2" in finding.message
    assert "create-trail" in finding.fix


def test_a_trail_that_stopped_logging_fails(use_kms: None) -> None:
    finding = cloudtrail_after(logging=False)
    assert finding.status is Status.FAIL
    assert "confio-audit is not logging" in finding.message
    assert "create-trail" in finding.fix


def test_a_trail_excluding_kms_events_fails(use_kms: None) -> None:
    finding = cloudtrail_after(
        EventSelectors=[
            {
                "ReadWriteType": "All",
                "IncludeManagementEvents": True,
                "ExcludeManagementEventSources": ["kms.amazonaws.com"],
            }
        ]
    )
    assert finding.status is Status.FAIL
    assert "excluding kms.amazonaws.com" in finding.message
    assert "put-event-selectors" in finding.fix


def test_a_write_only_trail_misses_every_signature(use_kms: None) -> None:
    finding = cloudtrail_after(
        EventSelectors=[{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}]
    )
    assert finding.status is Status.WARN
    assert "not recorded: Sign, Decrypt" in finding.message
    assert "read-only management events" in finding.message


def test_advanced_selectors_are_read(use_kms: None) -> None:
    excluded = cloudtrail_after(
        AdvancedEventSelectors=[
            {
                "Name": "management without KMS",
                "FieldSelectors": [
                    {"Field": "eventCategory", "Equals": ["Management"]},
                    {"Field": "eventSource", "NotEquals": ["kms.amazonaws.com"]},
                ],
            }
        ]
    )
    assert excluded.status is Status.FAIL


def test_advanced_selectors_for_all_management_events_pass(use_kms: None) -> None:
    finding = cloudtrail_after(
        AdvancedEventSelectors=[
            {
                "Name": "management",
                "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}],
            }
        ]
    )
    assert finding.status is Status.PASS


def test_a_multi_region_trail_from_another_region_counts(use_kms: None) -> None:
    finding = cloudtrail_after(
        region="us-east-1",
        EventSelectors=[{"ReadWriteType": "All", "IncludeManagementEvents": True}],
    )
    assert finding.status is Status.PASS
    assert "confio-audit is logging (All management events)" in finding.message


def test_a_single_region_trail_elsewhere_does_not_count(use_kms: None) -> None:
    finding = cloudtrail_after(region="us-east-1", multi_region=False)
    assert finding.status is Status.FAIL


def test_a_trail_whose_logs_are_not_delivered_warns(use_kms: None) -> None:
    """moto never reports a delivery error, so the decision is tested on its own, with
    moto's real answers for a logging trail (DescribeTrails, GetTrailStatus,
    GetEventSelectors) and the LatestDeliveryError AWS adds when S3 or KMS refuses the
    delivery."""
    trail()
    cloudtrail = boto3.client("cloudtrail")
    (described,) = cloudtrail.describe_trails()["trailList"]
    status = cloudtrail.get_trail_status(Name="confio-audit")
    selectors = cloudtrail.get_event_selectors(TrailName="confio-audit")
    create = "create a trail"
    healthy = _trails_finding(REGION, [_Trail(described, status, selectors)], create)
    assert healthy.status is Status.PASS

    status["LatestDeliveryError"] = "AccessDenied"
    finding = _trails_finding(REGION, [_Trail(described, status, selectors)], create)
    assert finding.status is Status.WARN
    assert "could not deliver log files to the bucket of confio-audit" in finding.message
    assert "confio-audit reports a log delivery error (AccessDenied)" in finding.message
    assert "policy of bucket confio-audit-logs must allow" in finding.fix
    assert "cloudtrail.amazonaws.com s3:GetBucketAcl" in finding.fix and "s3:PutObject" in (
        finding.fix
    )
    assert "KMS key" not in finding.fix

    encrypted = {**described, "KmsKeyId": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/trail-key"}
    finding = _trails_finding(REGION, [_Trail(encrypted, status, selectors)], create)
    assert finding.status is Status.WARN
    assert f"the key policy of the trail's KMS key (arn:aws:kms:{REGION}:" in finding.fix
    assert "kms:GenerateDataKey*" in finding.fix


# --- the test signature -----------------------------------------------------------------


def test_a_signature_that_does_not_verify_fails(use_kms: None) -> None:
    setup = deploy()
    boto3.client("kms").tag_resource(
        KeyId=setup.key_id, Tags=[{"TagKey": "AlgorandAddress", "TagValue": new_account()[1]}]
    )
    found = by_check(diagnose(session=setup.session))
    assert found["signature"].status is Status.FAIL
    assert "nothing was signed" in found["signature"].message


def test_the_signature_uses_the_configured_signer_without_a_session(use_kms: None) -> None:
    deploy(runtime=False)
    found = by_check(diagnose())
    assert found["signature"].status is Status.PASS
    assert "Nothing was submitted" in found["signature"].message
