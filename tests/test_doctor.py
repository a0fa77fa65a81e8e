"""kms_doctor's checks (confio_kms.doctor), each passing and failing against moto's
KMS, SSM, IAM, STS and CloudTrail.

The runtime identity is a real IAM user: moto maps an access key made with
iam:CreateAccessKey to its user for sts:GetCallerIdentity, so the doctor reads that
user's real policies. moto does not implement iam:SimulatePrincipalPolicy (it answers
HTTP 500), so those runs go through the doctor's own reading of the identity policies;
the simulator's answer is covered by one test that injects it (marked below).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from django.test import override_settings

from confio_kms import AlgorandKMSManager, doctor, exceptions, iam
from confio_kms.doctor import Finding, Report, Status

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
        report = doctor.run(session=setup.session)

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
    # Stated in docs/doctor.md: 24 requests for this deployment (one envelope key, a
    # runtime user with one managed policy and no group, one trail).
    assert setup.counter.by_operation() == {
        "kms.DescribeKey": 3,  # active alias, the mainnet alias (not found), the signer
        "kms.ListResourceTags": 2,
        "kms.GetKeyPolicy": 1,
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
        "ssm.GetParameter": 1,
    }
    assert setup.counter.total == 18


def test_the_report_is_plain_data_with_real_json_types(use_kms: None) -> None:
    setup = deploy()
    data = json.loads(json.dumps(doctor.run(session=setup.session).as_dict()))
    assert data["region"] == REGION and data["failed"] == []
    assert all(isinstance(v, int) for v in data["counts"].values())
    first = data["findings"][0]
    assert set(first) == {"check", "subject", "status", "message", "fix"}
    assert first["fix"] is None and first["status"] == "pass"


def test_one_failing_request_makes_only_its_own_check_unknown(use_kms: None) -> None:
    setup = deploy()
    inject_error(setup.session, "kms", "GetKeyPolicy", "KMSInternalException", status=500)
    inject_error(setup.session, "cloudtrail", "DescribeTrails", "AccessDeniedException")

    found = by_check(doctor.run(session=setup.session))

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
        found = by_check(doctor.run(session=setup.session))
    assert found["settings.kms_signing"].status is Status.FAIL
    assert "USE_KMS_SIGNING=true" in found["settings.kms_signing"].fix


SECRET = "abandon " * 24 + "art"


def test_a_mnemonic_in_the_environment_or_settings_fails_and_is_never_shown(
    use_kms: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = deploy()
    monkeypatch.setenv("ALGORAND_ADMIN_MNEMONIC", SECRET)
    with override_settings(BACKUP_SEED_PHRASE=SECRET):
        report = doctor.run(session=setup.session)
    found = by_check(report)
    assert found["settings.mnemonic"].status is Status.FAIL
    assert "ALGORAND_ADMIN_MNEMONIC (environment)" in found["settings.mnemonic"].message
    assert "BACKUP_SEED_PHRASE" in found["settings.mnemonic"].message
    assert "abandon" not in json.dumps(report.as_dict())


def test_a_mnemonic_in_a_dotenv_file_is_found(
    use_kms: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(f"ALGORAND_ADMIN_MNEMONIC={SECRET}\n")
    with override_settings(BASE_DIR=tmp_path):
        found = by_check(doctor.run())
    assert found["settings.mnemonic"].status is Status.FAIL
    assert "ALGORAND_ADMIN_MNEMONIC (.env or settings.ini)" in found["settings.mnemonic"].message


def test_invalid_settings_are_one_failure(use_kms: None) -> None:
    with override_settings(KMS_REGION="mars-1"):
        report = doctor.run()
    assert [(f.check, f.status) for f in report.findings] == [("settings.valid", Status.FAIL)]
    assert "KMS_REGION" in report.findings[0].message


# --- the keys -------------------------------------------------------------------------


def test_a_missing_alias_fails_and_no_signature_is_tried(use_kms: None) -> None:
    found = by_check(doctor.run())
    assert found["key.exists"].status is Status.FAIL
    assert "KMS_KEY_ALIAS_TESTNET names alias/confio-testnet-sponsor" in found["key.exists"].message
    assert found["signature"].status is Status.UNKNOWN
    assert found["iam.signing"].status is Status.UNKNOWN


def test_a_key_pending_deletion_fails(use_kms: None) -> None:
    setup = deploy()
    boto3.client("kms").schedule_key_deletion(KeyId=setup.key_id, PendingWindowInDays=7)
    found = by_check(doctor.run(session=setup.session))
    assert found["key.state"].status is Status.FAIL
    assert "pending deletion (deleted on " in found["key.state"].message
    assert f"aws kms cancel-key-deletion --key-id {setup.key_id}" in found["key.state"].fix


def test_a_disabled_key_fails(use_kms: None) -> None:
    setup = deploy()
    boto3.client("kms").disable_key(KeyId=setup.key_id)
    found = by_check(doctor.run(session=setup.session))
    assert found["key.state"].status is Status.FAIL
    assert "is Disabled" in found["key.state"].message
    assert "aws kms enable-key" in found["key.state"].fix


def test_a_key_tagged_for_another_network_fails(use_kms: None) -> None:
    setup = deploy()
    boto3.client("kms").tag_resource(
        KeyId=setup.key_id, Tags=[{"TagKey": "AlgorandNetwork", "TagValue": "mainnet"}]
    )
    found = by_check(doctor.run(session=setup.session))
    assert found["key.network"].status is Status.FAIL
    assert "tagged AlgorandNetwork=mainnet" in found["key.network"].message


def test_a_key_without_network_tag_warns_and_a_bad_tag_fails(use_kms: None) -> None:
    setup = deploy()
    kms = boto3.client("kms")
    kms.untag_resource(KeyId=setup.key_id, TagKeys=["AlgorandNetwork"])
    found = by_check(doctor.run(session=setup.session))
    assert found["key.network"].status is Status.WARN  # the old scripts' keys
    assert "comes from the alias name" in found["key.network"].message
    assert "TagKey=AlgorandNetwork,TagValue=testnet" in found["key.network"].fix

    kms.tag_resource(KeyId=setup.key_id, Tags=[{"TagKey": "AlgorandNetwork", "TagValue": "moon"}])
    found = by_check(doctor.run(session=setup.session))
    assert found["key.network"].status is Status.FAIL


def test_an_address_setting_that_names_another_account_fails(use_kms: None) -> None:
    setup = deploy()
    other = new_account()[1]
    with override_settings(ALGORAND_SPONSOR_ADDRESS=other):
        found = by_check(doctor.run(session=setup.session))
    assert found["key.address"].status is Status.FAIL
    assert f"ALGORAND_SPONSOR_ADDRESS is {other} but" in found["key.address"].message


def test_the_old_scripts_aliases_are_checked_with_their_addresses(use_kms: None) -> None:
    setup = deploy()
    AlgorandKMSManager().create_algorand_key("confio-testnet-admin")
    wrong = new_account()[1]
    with override_settings(
        KMS_ADMIN_KEY_ALIAS="confio-testnet-admin", ALGORAND_ADMIN_ADDRESS=wrong
    ):
        report = doctor.run(session=setup.session)
    admin = [f for f in report.findings if f.subject == "alias/confio-testnet-admin"]
    assert {f.check: f.status for f in admin}["key.address"] is Status.FAIL
    assert any(f"ALGORAND_ADMIN_ADDRESS is {wrong}" in f.message for f in admin)


def test_the_other_networks_alias_is_checked_when_configured_or_present(use_kms: None) -> None:
    setup = deploy()
    with override_settings(KMS_KEY_ALIAS_MAINNET="prod-sponsor"):
        report = doctor.run(session=setup.session)
    missing = [f for f in report.findings if f.subject == "alias/prod-sponsor"]
    assert [(f.check, f.status) for f in missing] == [("key.exists", Status.FAIL)]
    assert "KMS_KEY_ALIAS_MAINNET names alias/prod-sponsor" in missing[0].message

    AlgorandKMSManager().create_algorand_key(MAINNET_ALIAS, network="mainnet")
    report = doctor.run(session=setup.session)
    mainnet = {f.check: f for f in report.findings if f.subject == f"alias/{MAINNET_ALIAS}"}
    assert mainnet["key.exists"].status is Status.PASS
    assert mainnet["key.network"].status is Status.PASS
    assert mainnet["key.mfa"].status is Status.FAIL  # KMS's default key policy


def test_the_key_policy_must_deny_deletion_without_mfa(use_kms: None) -> None:
    key_id, _, _ = AlgorandKMSManager().create_algorand_key(ALIAS)
    found = by_check(doctor.run())
    assert found["key.mfa"].status is Status.FAIL  # KMS's default key policy
    assert "kms_policy --key-policy --account-id 123456789012" in found["key.mfa"].fix

    mfa_key_policy(key_id)
    assert by_check(doctor.run())["key.mfa"].status is Status.PASS


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

    found = by_check(doctor.run())["key.mfa"]

    assert found.status is Status.WARN
    assert "long-term access keys" in found.message and "use BoolIfExists" in found.message
    assert "kms:PutKeyPolicy is not denied without MFA" in found.message


# --- the identity's permissions --------------------------------------------------------


def test_a_runtime_identity_granted_kms_star_fails_least_privilege(use_kms: None) -> None:
    deploy(runtime=False)
    session = identity(inline=(runtime_policy(), ADMIN_EVERYTHING))
    found = by_check(doctor.run(session=session))
    assert found["iam.signing"].status is Status.PASS
    failure = found["iam.least_privilege"]
    assert failure.status is Status.FAIL
    for action in ("kms:ScheduleKeyDeletion", "kms:PutKeyPolicy", "kms:CreateKey"):
        assert action in failure.message
    assert "kms:Decrypt on another application's key (allowed by confio-web/inline-1)" in (
        failure.message
    )
    assert "ssm:PutParameter" not in failure.message  # kms:* grants no SSM action


def test_the_administration_policy_on_the_runtime_identity_fails(use_kms: None) -> None:
    deploy(runtime=False)
    session = identity(managed=(runtime_policy(), administration_policy()))
    failure = by_check(doctor.run(session=session))["iam.least_privilege"]
    assert failure.status is Status.FAIL
    # Allowed with an MFA session: the Deny without MFA does not save a runtime role.
    assert "kms:ScheduleKeyDeletion on the key of alias/confio-testnet-sponsor" in failure.message
    assert "ssm:PutParameter" in failure.message
    assert "ssm:DeleteParameter" not in failure.message  # not in any policy


def test_policies_of_the_users_groups_count(use_kms: None) -> None:
    deploy(runtime=False)
    session = identity(inline=(runtime_policy(),), group=(ADMIN_EVERYTHING,))
    failure = by_check(doctor.run(session=session))["iam.least_privilege"]
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
    found = by_check(doctor.run(session=identity(inline=(only_metadata,))))
    failure = found["iam.signing"]
    assert failure.status is Status.FAIL
    assert "ssm:GetParameter on /confio/algorand/confio-testnet-sponsor/private-key" in (
        failure.message
    )
    assert "kms:DescribeKey" not in failure.message.split("needs:")[1].split("(read")[0]
    assert "Attach the runtime policy" in failure.fix
    assert found["iam.least_privilege"].status is Status.PASS


def test_an_explicit_deny_wins(use_kms: None) -> None:
    deploy(runtime=False)
    deny = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "NoParameters", "Effect": "Deny", "Action": "ssm:*", "Resource": "*"}
        ],
    }
    failure = by_check(doctor.run(session=identity(inline=(runtime_policy(), deny))))
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
    found = by_check(doctor.run(session=identity(inline=(runtime_policy(), from_office))))
    assert found["iam.signing"].status is Status.PASS  # the runtime policy allows it
    assert found["iam.least_privilege"].status is Status.WARN
    assert "if its condition holds" in found["iam.least_privilege"].message


def test_credentials_iam_does_not_know_are_cannot_tell(use_kms: None) -> None:
    deploy(runtime=False)  # the suite's dummy credentials: moto's "user/moto"
    found = by_check(doctor.run())
    for check in ("iam.signing", "iam.least_privilege"):
        assert found[check].status is Status.UNKNOWN
        assert "Cannot tell" in found[check].message and "NoSuchEntity" in found[check].message


def test_an_identity_that_may_not_read_its_iam_is_cannot_tell(use_kms: None) -> None:
    setup = deploy()
    inject_query_error(setup.session, "iam", "ListAttachedUserPolicies", "AccessDenied")
    found = by_check(doctor.run(session=setup.session))
    for check in ("iam.signing", "iam.least_privilege"):
        assert found[check].status is Status.UNKNOWN
        assert "may not read IAM (iam:ListAttachedUserPolicies denied)" in found[check].message
        assert "--principal" in found[check].fix


def test_credentials_sts_cannot_identify_leave_the_other_checks_alone(use_kms: None) -> None:
    setup = deploy()
    inject_query_error(setup.session, "sts", "GetCallerIdentity", "ExpiredToken")
    found = by_check(doctor.run(session=setup.session))
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
    found = by_check(doctor.run(session=session))
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
    found = by_check(doctor.run(principal=role))
    assert f"checking the permissions of {role}" in found["iam.identity"].message
    assert found["iam.least_privilege"].status is Status.FAIL
    assert found["iam.least_privilege"].subject == role

    with pytest.raises(exceptions.ConfigurationError, match="not the ARN of an IAM user or role"):
        doctor.run(principal="confio-web")


def test_a_native_key_needs_sign_and_has_no_backup_reminder(use_kms: None) -> None:
    setup = deploy(native=True)
    report = doctor.run(session=setup.session)
    found = by_check(report)
    assert statuses(report) == HEALTHY
    assert "kms:Sign, kms:GetPublicKey on the key of alias/" in found["iam.signing"].message
    assert "ssm:GetParameter" not in found["iam.signing"].message
    assert found["reminder.recovery"].status is Status.REMINDER
    assert "reminder.backups" not in found
    # docs/doctor.md: the same 18 requests, kms:Sign in place of ssm:GetParameter.
    assert setup.counter.total == 18
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


def simulator_answer(decisions: dict[str, str]) -> Any:
    """IAM's XML answer to SimulatePrincipalPolicy: ``decisions`` by action, the rest
    implicitDeny. Injected: moto does not implement the simulator."""

    def respond(request: Any, **kwargs: Any) -> AWSResponse:
        from urllib.parse import parse_qs

        body = parse_qs(request.body.decode() if isinstance(request.body, bytes) else request.body)
        actions = [v[0] for k, v in sorted(body.items()) if k.startswith("ActionNames.member.")]
        members = "".join(
            f"<member><EvalActionName>{a}</EvalActionName><EvalResourceName>*"
            f"</EvalResourceName><EvalDecision>{decisions.get(a, 'implicitDeny')}"
            "</EvalDecision></member>"
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
    report = doctor.run(session=setup.session)
    found = by_check(report)
    assert found["iam.signing"].status is Status.PASS
    assert "IAM's policy simulator" in found["iam.signing"].message
    failure = found["iam.least_privilege"]
    assert failure.status is Status.FAIL
    assert "kms:Decrypt on another application's key (allowed)" in failure.message
    # Simulated, so no policy was read: one request per resource and context.
    assert "iam.GetUser" not in setup.counter.calls
    assert setup.counter.by_operation()["iam.SimulatePrincipalPolicy"] == 7


def test_a_simulator_refused_falls_back_to_reading_the_policies(use_kms: None) -> None:
    setup = deploy()
    inject_query_error(setup.session, "iam", "SimulatePrincipalPolicy", "AccessDenied")
    found = by_check(doctor.run(session=setup.session))
    assert found["iam.signing"].status is Status.PASS
    assert "simulator was unavailable (AccessDenied" in found["iam.signing"].message


# --- CloudTrail ------------------------------------------------------------------------


def cloudtrail_after(*, none: bool = False, **trail_options: Any) -> Finding:
    """The cloudtrail finding once a trail made with ``trail_options`` exists (or none)."""
    AlgorandKMSManager().create_algorand_key(ALIAS)
    if not none:
        trail(**trail_options)
    return by_check(doctor.run())["cloudtrail"]


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


# --- the test signature -----------------------------------------------------------------


def test_a_signature_that_does_not_verify_fails(use_kms: None) -> None:
    setup = deploy()
    boto3.client("kms").tag_resource(
        KeyId=setup.key_id, Tags=[{"TagKey": "AlgorandAddress", "TagValue": new_account()[1]}]
    )
    found = by_check(doctor.run(session=setup.session))
    assert found["signature"].status is Status.FAIL
    assert "nothing was signed" in found["signature"].message


def test_the_signature_uses_the_configured_signer_without_a_session(use_kms: None) -> None:
    deploy(runtime=False)
    found = by_check(doctor.run())
    assert found["signature"].status is Status.PASS
    assert "Nothing was submitted" in found["signature"].message
