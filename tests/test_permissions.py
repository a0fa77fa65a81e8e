"""confio_kms.permissions on hand-made input (no AWS): caller ARNs mapped to IAM
principals, and what the reading of identity policies decides and leaves open.

Against real IAM policies (moto), and with an injected simulator answer, the module is
exercised through the doctor: tests/test_doctor.py, "the identity's permissions".
"""

from __future__ import annotations

from typing import Any

from confio_kms.permissions import Probe, Who, evaluate

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
