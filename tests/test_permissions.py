"""confio_kms.ops.permissions on hand-made input (no AWS): caller ARNs mapped to IAM
principals, and what the reading of identity policies decides and leaves open.

Against real IAM policies (moto), and with an injected simulator answer, the module is
exercised through the doctor: tests/test_doctor.py, "the identity's permissions".
"""

from __future__ import annotations

from typing import Any

from confio_kms.ops.permissions import Decision, Probe, Who, _simulated, evaluate, with_key_policy

ACCOUNT = "123456789012"  # moto's account


def test_caller_arns_are_mapped_to_iam_principals() -> None:
    cases = {
        f"arn:aws:iam::{ACCOUNT}:user/ops/alice": ("user", "alice"),
        f"arn:aws:sts::{ACCOUNT}:assumed-role/confio-web/i-0abc": ("role", "confio-web"),
        f"arn:aws:iam::{ACCOUNT}:role/apps/confio-web": ("role", "confio-web"),
        f"arn:aws:iam::{ACCOUNT}:root": ("root", "root"),
        f"arn:aws:sts::{ACCOUNT}:federated-user/bob": ("", ""),
        "not an arn": ("", ""),
    }
    for arn, (kind, name) in cases.items():
        who = Who.from_arn(arn)
        assert (who.kind, who.name) == (kind, name), arn


def test_the_policy_reading_decides_only_what_it_knows() -> None:
    """The fallback evaluator on hand-made requests (no AWS): what it decides and what it
    leaves open."""
    key = "arn:aws:kms:eu-central-2:123456789012:key/k1"
    probe = Probe(
        "kms:Sign",
        key,
        "the key",
        {"kms:ResourceAliases": ("alias/a",), "aws:MultiFactorAuthPresent": ()},
        ("aws:resourcetag/",),
    )

    def decide(*statements: dict[str, Any]) -> str:
        document = {"Version": "2012-10-17", "Statement": list(statements)}
        return evaluate([("p", document)], probe).result

    allow = {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}
    assert decide(allow) == "allowed"
    assert decide({**allow, "Action": "KMS:sign"}) == "allowed"  # actions ignore case
    assert decide({"Effect": "Allow", "NotAction": "kms:Sign", "Resource": "*"}) == "denied"
    assert decide({"Effect": "Allow", "Action": "*", "NotResource": key}) == "denied"
    assert decide(allow, {"Effect": "Deny", "Action": "kms:Sign", "Resource": key}) == "denied"
    # Conditions on keys it knows: aliases, the absent MFA key, absent tags.
    assert decide(
        {**allow, "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/b"}}}
    ) == ("denied")
    assert decide(
        {**allow, "Condition": {"ForAllValues:StringLike": {"kms:ResourceAliases": "alias/*"}}}
    ) == ("allowed")
    assert decide({**allow, "Condition": {"Null": {"aws:MultiFactorAuthPresent": "true"}}}) == (
        "allowed"
    )
    assert decide(
        {**allow, "Condition": {"StringEquals": {"aws:ResourceTag/ManagedBy": "confio-kms"}}}
    ) == ("denied")
    # What it cannot decide stays open, in both directions.
    assert decide({**allow, "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01"}}}) == (
        "undetermined"
    )
    assert decide(
        {**allow, "Condition": {"StringEquals": {"aws:PrincipalTag/team": "${aws:username}"}}}
    ) == ("undetermined")
    unknown_deny = {
        "Effect": "Deny",
        "Action": "kms:Sign",
        "Resource": "*",
        "Condition": {"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}},
    }
    assert evaluate([("p", {"Statement": [allow, unknown_deny]})], probe).reason.startswith(
        "allowed by p unless the condition of p holds"
    )


def test_a_simulator_answer_is_read_per_resource() -> None:
    """SimulatePrincipalPolicy's EvaluationResults member (as botocore parses it) with
    ResourceSpecificResults: the resource's decision and missing keys are the answer."""
    key = "arn:aws:kms:eu-central-2:123456789012:key/k1"
    probe = Probe(
        "kms:PutKeyPolicy",
        key,
        "the key",
        {"kms:ViaService": (), "aws:MultiFactorAuthPresent": ("true",)},
        ("aws:resourcetag/",),
    )

    def result(decision: str, missing: list[str]) -> dict[str, Any]:
        return {
            "EvalActionName": "kms:PutKeyPolicy",
            "EvalResourceName": key,
            "EvalDecision": "implicitDeny",
            "MatchedStatements": [],
            "MissingContextValues": [],
            "ResourceSpecificResults": [
                {
                    "EvalResourceName": key,
                    "EvalResourceDecision": decision,
                    "MatchedStatements": [{"SourcePolicyId": "admin"}],
                    "MissingContextValues": missing,
                }
            ],
        }

    assert _simulated(probe, result("allowed", [])) == Decision(
        "allowed", "allowed by admin", True, False
    )
    # Keys the request is known not to carry are not missing.
    assert _simulated(probe, result("allowed", ["kms:ViaService", "aws:ResourceTag/x"])).result == (
        "allowed"
    )
    # A Deny that depends on a key the request did not carry is not certain.
    open_deny = _simulated(probe, result("explicitDeny", ["aws:SourceIp"]))
    assert open_deny.result == "undetermined"
    assert open_deny.reason == "explicitDeny by admin, but depends on aws:SourceIp"


def test_a_key_policy_is_weighed_with_the_identity_policies() -> None:
    """Statements naming the identity or everyone count, with Deny precedence; the
    account's (root) statement delegates to IAM and does not."""
    key = "arn:aws:kms:eu-central-2:123456789012:key/k1"
    user = f"arn:aws:iam::{ACCOUNT}:user/confio-web"
    probe = Probe("kms:Sign", key, "the key", {"aws:MultiFactorAuthPresent": ()}, ())
    allowed = Decision("allowed", "allowed by runtime", True, False)
    denied = Decision("denied", "no statement allows it")

    def policy(*statements: dict[str, Any]) -> dict[str, Any]:
        return {"Version": "2012-10-17", "Statement": list(statements)}

    def weigh(decision: Decision, *statements: dict[str, Any]) -> Decision:
        return with_key_policy(decision, policy(*statements), probe, {user}, user)

    root = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    grant = {**root, "Sid": "App", "Principal": {"AWS": [user]}}
    everyone_deny = {
        "Sid": "Nobody",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "kms:Sign",
        "Resource": "*",
    }
    assert weigh(denied, root) == denied
    assert weigh(denied, grant).reason == "allowed by key policy/App"
    assert weigh(allowed, everyone_deny).reason == "explicitly denied by key policy/Nobody"
    assert weigh(denied, grant, {**everyone_deny, "Principal": {"AWS": "*"}}).result == "denied"
    # A Deny whose condition is decided on aws:PrincipalArn: the identity's own ARN.
    others = {**everyone_deny, "Condition": {"ArnNotEquals": {"aws:PrincipalArn": user}}}
    assert weigh(allowed, others) == allowed
    # An explicit Deny of the identity policies stands; an open one leaves it open.
    explicit = Decision("denied", "explicitly denied by p", False, True)
    assert weigh(explicit, grant) == explicit
    maybe = {**everyone_deny, "Condition": {"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}}
    opened = weigh(allowed, maybe)
    assert opened.result == "undetermined"
    assert opened.reason == "allowed by runtime; denied by key policy/Nobody if its condition holds"
    # NotPrincipal: everyone but those listed.
    not_principal = {k: v for k, v in grant.items() if k != "Principal"}
    assert weigh(denied, {**not_principal, "NotPrincipal": {"AWS": "x"}}).result == "allowed"
    assert weigh(denied, {**not_principal, "NotPrincipal": {"AWS": user}}) == denied
