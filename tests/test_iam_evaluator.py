"""The test policy evaluator itself, on hand-written policies whose AWS outcome is
documented (IAM User Guide: policy evaluation logic, condition operators, multivalued
context keys; KMS: key policies and the default key policy)."""

from __future__ import annotations

from typing import Any

import pytest

from .iam_evaluator import (
    ALLOW,
    EXPLICIT_DENY,
    IMPLICIT_DENY,
    Request,
    allowed,
    condition_holds,
    decide,
    default_key_policy,
)

ACCOUNT = "111122223333"
ALICE = f"arn:aws:iam::{ACCOUNT}:role/alice"
KEY = f"arn:aws:kms:eu-central-2:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any = "*", **condition: Any) -> dict[str, Any]:
    statement = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


def deny(action: Any, resource: Any = "*", **condition: Any) -> dict[str, Any]:
    return {**allow(action, resource, **condition), "Effect": "Deny"}


def request(action: str = "kms:DescribeKey", resource: str = KEY, **context: Any) -> Request:
    return Request(action, resource, ALICE, {k.replace("__", ":"): v for k, v in context.items()})


def holds(condition: dict[str, Any], **context: Any) -> bool:
    return condition_holds(condition, request(**context))


# --- effects ------------------------------------------------------------------------


def test_nothing_allows_by_default() -> None:
    assert decide(request(), []) == IMPLICIT_DENY
    assert decide(request(), [policy(allow("kms:Sign"))]) == IMPLICIT_DENY


def test_an_explicit_deny_wins_over_any_allow_in_any_policy() -> None:
    assert decide(request(), [policy(allow("kms:*"))]) == ALLOW
    assert decide(request(), [policy(allow("kms:*")), policy(deny("kms:Describe*"))]) == (
        EXPLICIT_DENY
    )


def test_action_and_resource_wildcards() -> None:
    assert allowed(request("kms:DescribeKey"), [policy(allow("KMS:describe*"))])  # any case
    assert allowed(request("kms:GetPublicKey"), [policy(allow("kms:Get?ublicKey"))])
    assert not allowed(request("kms:GetPublicKey"), [policy(allow("kms:Get?Key"))])
    keys = f"arn:aws:kms:eu-central-2:{ACCOUNT}:key/*"
    assert allowed(request(), [policy(allow("kms:DescribeKey", keys))])
    assert not allowed(request(), [policy(allow("kms:DescribeKey", keys.upper()))])
    assert not allowed(
        request(resource=f"arn:aws:kms:eu-west-1:{ACCOUNT}:alias/x"),
        [policy(allow("kms:DescribeKey", keys))],
    )
    assert allowed(request(resource="*"), [policy(allow(["kms:ListAliases", "kms:Describe*"]))])


# --- conditions ---------------------------------------------------------------------


def test_string_operators_and_a_missing_key() -> None:
    equals = {"StringEquals": {"aws:ResourceTag/Team": ["red", "blue"]}}
    context = {"aws:ResourceTag/Team": "blue"}
    assert condition_holds(equals, Request("a:b", "*", ALICE, context))
    assert not condition_holds(equals, Request("a:b", "*", ALICE, {"aws:ResourceTag/Team": "BLUE"}))
    assert not condition_holds(equals, Request("a:b", "*", ALICE, {}))  # missing: false
    # Key names are case-insensitive, tag keys inside them included.
    assert condition_holds(equals, Request("a:b", "*", ALICE, {"AWS:resourcetag/team": "red"}))
    not_equals = {"StringNotEquals": {"aws:ResourceTag/Team": ["red", "blue"]}}
    assert condition_holds(not_equals, Request("a:b", "*", ALICE, {"aws:ResourceTag/Team": "x"}))
    assert not condition_holds(
        not_equals, Request("a:b", "*", ALICE, {"aws:ResourceTag/Team": "red"})
    )
    # AWS: a negated operator holds when the key is absent.
    assert condition_holds(not_equals, Request("a:b", "*", ALICE, {}))
    ignore_case = {"StringEqualsIgnoreCase": {"aws:ResourceTag/Team": "RED"}}
    assert condition_holds(ignore_case, Request("a:b", "*", ALICE, {"aws:ResourceTag/Team": "red"}))
    like = {"StringLike": {"kms:ViaService": "ssm.*.amazonaws.com"}}
    assert condition_holds(
        like, Request("a:b", "*", ALICE, {"kms:ViaService": "ssm.eu-central-2.amazonaws.com"})
    )
    assert not condition_holds(
        like, Request("a:b", "*", ALICE, {"kms:ViaService": "s3.eu-central-2.amazonaws.com"})
    )


def test_if_exists_holds_when_the_key_is_absent() -> None:
    no_mfa = {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}
    assert holds(no_mfa)  # long-term access keys: no such key
    assert holds(no_mfa, aws__MultiFactorAuthPresent=False)
    assert not holds(no_mfa, aws__MultiFactorAuthPresent=True)
    assert not holds(no_mfa, aws__MultiFactorAuthPresent="TRUE")  # Bool ignores case
    # Without IfExists a Deny on "false" misses long-term keys: AWS's warning.
    assert not holds({"Bool": {"aws:MultiFactorAuthPresent": "false"}})
    assert not holds({"Bool": {"aws:MultiFactorAuthPresent": "true"}})
    overwrite = {"StringEqualsIfExists": {"ssm:Overwrite": "false"}}
    assert holds(overwrite) and holds(overwrite, ssm__Overwrite="false")
    assert not holds(overwrite, ssm__Overwrite="true")


def test_null_tests_presence() -> None:
    absent = {"Null": {"aws:ResourceTag/ManagedBy": "true"}}
    present = {"Null": {"aws:ResourceTag/ManagedBy": "false"}}
    assert holds(absent) and not holds(present)
    context = {"aws:ResourceTag/ManagedBy": "x"}
    assert condition_holds(present, Request("a:b", "*", ALICE, context))
    assert not condition_holds(absent, Request("a:b", "*", ALICE, context))
    assert holds({"Null": {"aws:TagKeys": "true"}}, aws__TagKeys=[])  # empty set: null


def test_set_operators() -> None:
    any_managed = {"ForAnyValue:StringEquals": {"aws:TagKeys": ["ManagedBy"]}}
    assert holds(any_managed, aws__TagKeys=["Owner", "ManagedBy"])
    assert not holds(any_managed, aws__TagKeys=["Owner"])
    assert not holds(any_managed, aws__TagKeys=[])  # ForAnyValue: empty is false
    assert not holds(any_managed)  # and missing too
    only_these = {"ForAllValues:StringEquals": {"aws:TagKeys": ["Owner", "Team"]}}
    assert holds(only_these, aws__TagKeys=["Owner"])
    assert not holds(only_these, aws__TagKeys=["Owner", "ManagedBy"])
    assert holds(only_these, aws__TagKeys=[])  # ForAllValues: empty is true
    assert holds(only_these)  # and missing too
    none_of = {"ForAllValues:StringNotEquals": {"aws:TagKeys": ["ManagedBy"]}}
    assert holds(none_of, aws__TagKeys=["Owner"])
    assert not holds(none_of, aws__TagKeys=["Owner", "ManagedBy"])
    ours = {"ForAnyValue:StringEquals": {"kms:ResourceAliases": ["alias/a", "alias/b"]}}
    assert holds(ours, kms__ResourceAliases=["alias/other", "alias/b"])
    assert not holds(ours, kms__ResourceAliases=["alias/other"])


def test_arn_operators_match_each_part() -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/break-glass"
    assert holds({"ArnEquals": {"aws:PrincipalArn": ALICE}})
    assert not holds({"ArnNotEquals": {"aws:PrincipalArn": ALICE}})
    assert holds({"ArnNotEquals": {"aws:PrincipalArn": role}})
    assert holds({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/ali*"}})
    assert not holds({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/*"}})


def test_every_operator_and_key_must_hold() -> None:
    both = {
        "StringEquals": {"kms:ViaService": "ssm.x.amazonaws.com", "kms:KeySpec": "SYMMETRIC"},
        "Bool": {"aws:MultiFactorAuthPresent": "true"},
    }
    full = {"kms__ViaService": "ssm.x.amazonaws.com", "kms__KeySpec": "SYMMETRIC"}
    assert holds(both, **full, aws__MultiFactorAuthPresent=True)
    assert not holds(both, **full)
    assert not holds(both, kms__ViaService="ssm.x.amazonaws.com", aws__MultiFactorAuthPresent=True)


def test_what_it_does_not_implement_is_refused() -> None:
    with pytest.raises(ValueError, match="multivalued"):
        holds({"StringEquals": {"aws:TagKeys": "ManagedBy"}}, aws__TagKeys=["ManagedBy"])
    with pytest.raises(ValueError, match="multivalued"):
        holds({"StringEquals": {"kms:ResourceAliases": "alias/a"}})
    with pytest.raises(ValueError, match="unsupported condition operator"):
        holds({"NumericLessThan": {"kms:ScheduleKeyDeletionPendingWindowInDays": "7"}})
    with pytest.raises(ValueError, match="unsupported policy element"):
        decide(request(), [policy({"Effect": "Allow", "NotAction": "kms:*", "Resource": "*"})])
    with pytest.raises(ValueError, match="not valid in an identity policy"):
        decide(request(), [policy({**allow("kms:*"), "Principal": "*"})])


# --- key policies -------------------------------------------------------------------


def test_a_key_policy_that_names_the_account_delegates_to_iam() -> None:
    default = default_key_policy(ACCOUNT)
    assert decide(request(), [], default) == IMPLICIT_DENY
    assert decide(request(), [policy(allow("kms:DescribeKey"))], default) == ALLOW
    other_account = default_key_policy("444455556666")
    assert decide(request(), [policy(allow("kms:DescribeKey"))], other_account) == IMPLICIT_DENY


def test_a_key_policy_that_names_the_principal_allows_without_iam() -> None:
    named = policy({**allow("kms:DescribeKey"), "Principal": {"AWS": ALICE}})
    assert decide(request(), [], named) == ALLOW
    someone_else = policy(
        {**allow("kms:DescribeKey"), "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/bob"}}
    )
    assert decide(request(), [], someone_else) == IMPLICIT_DENY


def test_a_key_policy_deny_wins_over_iam() -> None:
    key_policy = policy(
        {**allow("kms:*"), "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}},
        {**deny("kms:DescribeKey"), "Principal": "*"},
    )
    assert decide(request(), [policy(allow("kms:*"))], key_policy) == EXPLICIT_DENY
    assert decide(request("kms:Sign"), [policy(allow("kms:*"))], key_policy) == ALLOW
