"""The policy evaluator (confio_kms.ops.iam_evaluator), on hand-written policies whose
AWS outcome is documented (IAM User Guide: policy evaluation logic, condition
operators, multivalued context keys; KMS: key policies and the default key policy).

Each rule is a table: the inputs reach its different branches. How the doctor weighs
simulator answers and key policies with an identity's decision: tests/test_permissions.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from confio_kms.ops.iam_evaluator import (
    ALLOW,
    ALLOWED,
    DENIED,
    EXPLICIT_DENY,
    IMPLICIT_DENY,
    UNDETERMINED,
    Context,
    Query,
    Request,
    allowed,
    condition_holds,
    decide,
    default_key_policy,
    evaluate,
    principal_of,
    with_key_policy,
)

ACCOUNT = "111122223333"
ALICE = f"arn:aws:iam::{ACCOUNT}:role/alice"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
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


# --- effects, actions, resources ------------------------------------------------------


@pytest.mark.parametrize(
    ("policies", "want"),
    [
        ([], IMPLICIT_DENY),
        ([policy(allow("kms:Sign"))], IMPLICIT_DENY),
        ([policy(allow("kms:*"))], ALLOW),
        ([policy(allow("kms:*")), policy(deny("kms:Describe*"))], EXPLICIT_DENY),
        ([policy(deny("kms:Describe*"), allow("kms:*"))], EXPLICIT_DENY),  # in one policy
        ([policy({"Effect": "Allow", "Resource": "*"})], IMPLICIT_DENY),  # no Action: none
    ],
    ids=["nothing", "other action", "allowed", "deny wins", "deny first", "no action"],
)
def test_an_explicit_deny_wins_and_no_allow_is_a_denial(policies: list[Any], want: str) -> None:
    assert decide(request(), policies) == want


KEYS = f"arn:aws:kms:eu-central-2:{ACCOUNT}:key/*"


@pytest.mark.parametrize(
    ("statement", "action", "resource", "want"),
    [
        (allow("KMS:describe*"), "kms:DescribeKey", KEY, True),  # actions: any case
        (allow("kms:Get?ublicKey"), "kms:GetPublicKey", KEY, True),
        (allow("kms:Get?Key"), "kms:GetPublicKey", KEY, False),  # ? is one character
        (allow(["kms:ListAliases", "kms:Describe*"]), "kms:DescribeKey", "*", True),
        (allow("kms:DescribeKey", KEYS), "kms:DescribeKey", KEY, True),
        (allow("kms:DescribeKey", KEYS.upper()), "kms:DescribeKey", KEY, False),  # case
        (allow("kms:DescribeKey", KEYS), "kms:DescribeKey", KEY.replace("key/", "alias/"), False),
        ({"Effect": "Allow", "NotAction": "kms:Sign", "Resource": "*"}, "kms:Sign", KEY, False),
        ({"Effect": "Allow", "NotAction": "kms:Sign", "Resource": "*"}, "kms:Decrypt", KEY, True),
        ({"Effect": "Allow", "NotAction": ["KMS:S*"], "Resource": "*"}, "kms:Sign", KEY, False),
        ({"Effect": "Allow", "Action": "*", "NotResource": KEY}, "kms:Sign", KEY, False),
        ({"Effect": "Allow", "Action": "*", "NotResource": [KEYS]}, "kms:Sign", "*", True),
        ({"Effect": "Allow", "Action": "*"}, "kms:Sign", KEY, True),  # no Resource: all
    ],
)
def test_actions_and_resources(
    statement: dict[str, Any], action: str, resource: str, want: bool
) -> None:
    assert allowed(request(action, resource), [policy(statement)]) is want


# --- conditions -------------------------------------------------------------------------

TEAM = "aws:ResourceTag/Team"


@pytest.mark.parametrize(
    ("condition", "context", "want"),
    [
        ({"StringEquals": {TEAM: ["red", "blue"]}}, {TEAM: "blue"}, True),
        ({"StringEquals": {TEAM: ["red", "blue"]}}, {TEAM: "BLUE"}, False),  # values: case
        ({"StringEquals": {TEAM: ["red", "blue"]}}, {}, False),  # missing: false
        ({"StringEquals": {TEAM: "red"}}, {"AWS:resourcetag/team": "red"}, True),  # key: any case
        ({"StringNotEquals": {TEAM: ["red", "blue"]}}, {TEAM: "x"}, True),
        ({"StringNotEquals": {TEAM: ["red", "blue"]}}, {TEAM: "red"}, False),
        ({"StringNotEquals": {TEAM: ["red", "blue"]}}, {}, True),  # negated, missing: true
        ({"StringEqualsIgnoreCase": {TEAM: "RED"}}, {TEAM: "red"}, True),
        ({"StringNotEqualsIgnoreCase": {TEAM: "RED"}}, {TEAM: "red"}, False),
        ({"StringLike": {"kms:ViaService": "ssm.*.amazonaws.com"}},
         {"kms:ViaService": "ssm.eu-central-2.amazonaws.com"}, True),
        ({"StringLike": {"kms:ViaService": "ssm.*.amazonaws.com"}},
         {"kms:ViaService": "s3.eu-central-2.amazonaws.com"}, False),
        ({"StringNotLike": {"kms:ViaService": "ssm.*"}}, {"kms:ViaService": "s3.x"}, True),
        ({"StringEquals": {"ssm:Overwrite": True}}, {"ssm:Overwrite": "true"}, True),  # JSON true
        ({"StringEqualsIfExists": {"ssm:Overwrite": "false"}}, {}, True),
        ({"StringEqualsIfExists": {"ssm:Overwrite": "false"}}, {"ssm:Overwrite": "false"}, True),
        ({"StringEqualsIfExists": {"ssm:Overwrite": "false"}}, {"ssm:Overwrite": "true"}, False),
    ],
)  # fmt: skip
def test_string_operators(condition: dict[str, Any], context: dict[str, Any], want: bool) -> None:
    assert condition_holds(condition, Request("a:b", "*", ALICE, context)) is want


MFA = "aws:MultiFactorAuthPresent"
TAG = "aws:ResourceTag/ManagedBy"


@pytest.mark.parametrize(
    ("condition", "context", "want"),
    [
        ({"BoolIfExists": {MFA: "false"}}, {}, True),  # long-term access keys: no such key
        ({"BoolIfExists": {MFA: "false"}}, {MFA: False}, True),
        ({"BoolIfExists": {MFA: "false"}}, {MFA: True}, False),
        ({"BoolIfExists": {MFA: "false"}}, {MFA: "TRUE"}, False),  # Bool ignores case
        ({"Bool": {MFA: "false"}}, {}, False),  # AWS's warning: misses long-term keys
        ({"Bool": {MFA: "true"}}, {}, False),
        ({"Bool": {MFA: True}}, {MFA: True}, True),
        ({"Null": {TAG: "true"}}, {}, True),
        ({"Null": {TAG: "false"}}, {}, False),
        ({"Null": {TAG: "false"}}, {TAG: "x"}, True),
        ({"Null": {TAG: "true"}}, {TAG: "x"}, False),
        ({"Null": {"aws:TagKeys": "true"}}, {"aws:TagKeys": []}, True),  # empty set: null
        ({"Null": {MFA: True}}, {}, True),  # JSON true
    ],
)  # fmt: skip
def test_bool_null_and_if_exists(
    condition: dict[str, Any], context: dict[str, Any], want: bool
) -> None:
    assert condition_holds(condition, Request("a:b", "*", ALICE, context)) is want


ANY_MANAGED = {"ForAnyValue:StringEquals": {"aws:TagKeys": ["ManagedBy"]}}
ONLY_THESE = {"ForAllValues:StringEquals": {"aws:TagKeys": ["Owner", "Team"]}}
NONE_OF = {"ForAllValues:StringNotEquals": {"aws:TagKeys": ["ManagedBy"]}}
OURS = {"ForAnyValue:StringEquals": {"kms:ResourceAliases": ["alias/a", "alias/b"]}}


@pytest.mark.parametrize(
    ("condition", "values", "want"),
    [
        (ANY_MANAGED, ["Owner", "ManagedBy"], True),
        (ANY_MANAGED, ["Owner"], False),
        (ANY_MANAGED, [], False),  # ForAnyValue: empty is false
        (ANY_MANAGED, None, False),  # and missing too
        (ONLY_THESE, ["Owner"], True),
        (ONLY_THESE, ["Owner", "ManagedBy"], False),
        (ONLY_THESE, [], True),  # ForAllValues: empty is true
        (ONLY_THESE, None, True),  # and missing too
        (NONE_OF, ["Owner"], True),
        (NONE_OF, ["Owner", "ManagedBy"], False),
        ({"ForAnyValue:StringEqualsIgnoreCase": {"aws:TagKeys": "managedby"}}, ["ManagedBy"], True),
    ],
)
def test_set_operators(condition: dict[str, Any], values: list[str] | None, want: bool) -> None:
    context = {} if values is None else {"aws:TagKeys": values}
    assert condition_holds(condition, Request("a:b", "*", ALICE, context)) is want


@pytest.mark.parametrize(
    ("aliases", "want"), [(["alias/other", "alias/b"], True), (["alias/other"], False)]
)
def test_a_key_aws_defines_as_multivalued(aliases: list[str], want: bool) -> None:
    assert holds(OURS, kms__ResourceAliases=aliases) is want


@pytest.mark.parametrize(
    ("condition", "want"),
    [
        ({"ArnEquals": {"aws:PrincipalArn": ALICE}}, True),
        ({"ArnNotEquals": {"aws:PrincipalArn": ALICE}}, False),
        ({"ArnNotEquals": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/x"}}, True),
        ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/ali*"}}, True),
        ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/*"}}, False),
        ({"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/*"}}, True),
        ({"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::*:role/alice"}}, True),  # as ArnLike
        # Each of the six parts on its own: a * does not reach across a colon.
        ({"ArnLike": {"aws:PrincipalArn": "arn:*"}}, False),
        ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*"}}, False),
        ({"ArnLike": {"kms:ViaService": "*"}}, False),  # the value is no ARN
    ],
)
def test_arn_operators_match_each_part(condition: dict[str, Any], want: bool) -> None:
    assert holds(condition, kms__ViaService="ssm.eu-central-2.amazonaws.com") is want


BOTH = {
    "StringEquals": {"kms:ViaService": "ssm.x.amazonaws.com", "kms:KeySpec": "SYMMETRIC"},
    "Bool": {MFA: "true"},
}


@pytest.mark.parametrize(
    ("context", "want"),
    [
        ({"kms:ViaService": "ssm.x.amazonaws.com", "kms:KeySpec": "SYMMETRIC", MFA: True}, True),
        ({"kms:ViaService": "ssm.x.amazonaws.com", "kms:KeySpec": "SYMMETRIC"}, False),
        ({"kms:ViaService": "ssm.x.amazonaws.com", MFA: True}, False),
    ],
)
def test_every_operator_and_key_must_hold(context: dict[str, Any], want: bool) -> None:
    assert condition_holds(BOTH, Request("a:b", "*", ALICE, context)) is want


# --- what cannot be decided -------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ({"StringEquals": {"aws:TagKeys": "ManagedBy"}}, "multivalued"),  # listed in the request
        ({"StringEquals": {"kms:ResourceAliases": "alias/a"}}, "multivalued"),  # by AWS
        ({"NumericLessThan": {"kms:ScheduleKeyDeletionPendingWindowInDays": "7"}},
         "unsupported condition operator"),
        ({"DateLessThan": {"aws:CurrentTime": "2030-01-01"}}, "unsupported condition operator"),
        ({"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}, "unsupported condition operator"),
        ({"NullIfExists": {"aws:SourceIp": "true"}}, "unsupported condition operator"),
        ({"StringEquals": {"aws:PrincipalTag/team": "${aws:username}"}}, "policy variables"),
        ({"ForSomeValues:StringEquals": {"aws:TagKeys": "x"}}, "unknown set operator"),
        ({"ForAnyValue:Null": {"aws:TagKeys": "true"}}, "Null takes one value"),
        ({"Null": {"aws:TagKeys": ["true", "false"]}}, "Null takes one value"),
        ({"StringEquals": "aws:TagKeys"}, "takes an object"),
    ],
)  # fmt: skip
def test_what_cannot_be_decided_is_refused(condition: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        holds(condition, aws__TagKeys=["ManagedBy"])


def test_a_failing_condition_decides_even_beside_an_undecidable_one() -> None:
    block = {"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}, "Bool": {MFA: "true"}}
    assert holds(block, aws__MultiFactorAuthPresent=False) is False
    with pytest.raises(ValueError, match="unsupported condition operator"):
        holds(block, aws__MultiFactorAuthPresent=True)


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        ({**allow("kms:*"), "Resources": "*"}, r"unsupported policy element\(s\) \['Resources'\]"),
        ({**allow("kms:*"), "Effect": "Maybe"}, "unknown Effect 'Maybe'"),
        ({**allow("kms:*"), "Principal": "*"}, "Principal is not valid in an identity policy"),
        ({**allow("kms:*"), "NotPrincipal": {"AWS": ALICE}}, "not valid in an identity policy"),
    ],
)
def test_a_statement_it_cannot_read_is_refused(statement: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decide(request(), [policy(statement)])


def test_a_key_policy_statement_without_principal_is_refused() -> None:
    with pytest.raises(ValueError, match="Principal is required in a key policy"):
        decide(request(), [], policy({**allow("kms:*"), "Principal": "*"}, allow("kms:*")))


def test_a_statement_that_does_not_match_is_not_read() -> None:
    # Only statements whose action and resource match are read for their conditions.
    unreadable = allow("kms:Sign", IpAddress={"aws:SourceIp": "192.0.2.0/24"})
    assert decide(request(), [policy(unreadable, allow("kms:DescribeKey"))]) == ALLOW


# --- the three-way answer: what the doctor reads ------------------------------------------

UNKNOWN_IP = {"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}


@pytest.mark.parametrize(
    ("statements", "result", "reason", "allows", "denies"),
    [
        ([allow("kms:*")], ALLOWED, "allowed by p", True, False),
        ([{**deny("kms:*"), "Sid": "No"}], DENIED, "explicitly denied by p/No", False, True),
        ([], DENIED, "no statement allows it", False, False),
        ([allow("kms:*", **UNKNOWN_IP)], UNDETERMINED, "allowed by p if its condition holds",
         None, False),
        ([allow("kms:*"), deny("kms:*", **UNKNOWN_IP)], UNDETERMINED,
         "allowed by p unless the condition of p holds", True, None),
        ([deny("kms:*", **UNKNOWN_IP)], DENIED, "no statement allows it", False, None),
        # A key the request does not say: undecidable, as an unknown operator is.
        ([allow("kms:*", StringEquals={"aws:ResourceTag/x": "y"})], UNDETERMINED,
         "allowed by p if its condition holds", None, False),
        ([allow("kms:*", StringEquals={"aws:RequestTag/x": "y"})], DENIED,
         "no statement allows it", False, False),  # known to be absent
    ],
)  # fmt: skip
def test_evaluate_answers_allowed_denied_or_undetermined(
    statements: list[dict[str, Any]], result: str, reason: str, allows: Any, denies: Any
) -> None:
    # Only aws:RequestTag/ keys are known to be absent; every other key is unknown.
    query = Query("kms:Sign", KEY, Context({}, ("aws:requesttag/",)))
    decision = evaluate([("p", policy(*statements))], query)
    assert (decision.result, decision.reason) == (result, reason)
    assert (decision.allows, decision.denies) == (allows, denies)
    # Why it is open is kept for decide(), which refuses rather than guess.
    assert bool(decision.unsure) is (result == UNDETERMINED or denies is None)


# --- key policies -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "account", "want"),
    [
        ({"Principal": "*"}, ACCOUNT, "identity"),
        ({"Principal": {"AWS": "*"}}, ACCOUNT, "identity"),
        ({"Principal": {"AWS": [f"arn:aws:iam::{ACCOUNT}:role/bob", ALICE]}}, ACCOUNT, "identity"),
        ({"Principal": {"AWS": ROOT}}, ACCOUNT, "account"),
        ({"Principal": {"AWS": ACCOUNT}}, ACCOUNT, "account"),
        ({"Principal": {"AWS": ROOT}}, "", ""),  # the doctor: root statements delegate
        ({"Principal": {"AWS": "arn:aws:iam::444455556666:root"}}, ACCOUNT, ""),
        ({"Principal": {"Service": "cloudtrail.amazonaws.com"}}, ACCOUNT, ""),
        ({"Principal": "arn:aws:iam::444455556666:role/x"}, ACCOUNT, ""),
        ({"NotPrincipal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/bob"}}, ACCOUNT, "identity"),
        ({"NotPrincipal": {"AWS": [ALICE]}}, ACCOUNT, ""),
        ({}, ACCOUNT, ""),
    ],
)
def test_whom_a_key_policy_statement_names(
    statement: dict[str, Any], account: str, want: str
) -> None:
    assert principal_of(statement, {ALICE}, account) == want


def named(principal: Any, statement: dict[str, Any]) -> dict[str, Any]:
    return {**statement, "Principal": {"AWS": principal} if principal != "*" else "*"}


IAM_ALLOWS = [policy(allow("kms:DescribeKey"))]
IAM_ALL = [policy(allow("kms:*"))]
DELEGATE = named(ROOT, allow("kms:*"))
BOB = f"arn:aws:iam::{ACCOUNT}:role/bob"


@pytest.mark.parametrize(
    ("identity", "key_statements", "want"),
    [
        ([], default_key_policy(ACCOUNT)["Statement"], IMPLICIT_DENY),
        (IAM_ALLOWS, default_key_policy(ACCOUNT)["Statement"], ALLOW),  # delegation
        (IAM_ALLOWS, default_key_policy("444455556666")["Statement"], IMPLICIT_DENY),
        ([], [named(ALICE, allow("kms:DescribeKey"))], ALLOW),  # named: no IAM policy needed
        ([], [named(BOB, allow("kms:DescribeKey"))], IMPLICIT_DENY),
        (IAM_ALL, [DELEGATE, named("*", deny("kms:Describe*"))], EXPLICIT_DENY),
        # A Deny for the account is one for each of its identities.
        (IAM_ALL, [DELEGATE, named(ROOT, deny("kms:Describe*"))], EXPLICIT_DENY),
        ([policy(deny("kms:*"))], [named(ALICE, allow("kms:*"))], EXPLICIT_DENY),
        (IAM_ALL, [DELEGATE, {**deny("kms:*"), "NotPrincipal": {"AWS": ALICE}}], ALLOW),
        (IAM_ALL, [DELEGATE, {**deny("kms:*"), "NotPrincipal": {"AWS": BOB}}], EXPLICIT_DENY),
    ],
)
def test_key_policies_with_the_identity_policies(
    identity: list[Any], key_statements: list[dict[str, Any]], want: str
) -> None:
    assert decide(request(), identity, policy(*key_statements)) == want


def test_a_conditional_delegation_is_undecidable_for_a_concrete_request() -> None:
    conditional = named(ROOT, allow("kms:*", **UNKNOWN_IP))
    with pytest.raises(ValueError, match="unsupported condition operator"):
        decide(request(), IAM_ALLOWS, policy(conditional))
    # As a three-way answer: open, both for the delegation and for its Deny.
    identity = evaluate([("p", policy(allow("kms:*")))], request())
    opened = with_key_policy(identity, policy(conditional), request(), {ALICE}, "", ACCOUNT)
    assert (opened.result, opened.allows) == (UNDETERMINED, None)
    assert opened.reason == "allowed by p, if the key policy's statement for the account applies"
    maybe_deny = [named(ROOT, allow("kms:*")), named(ROOT, deny("kms:*", **UNKNOWN_IP))]
    opened = with_key_policy(identity, policy(*maybe_deny), request(), {ALICE}, "", ACCOUNT)
    assert (opened.result, opened.allows, opened.denies) == (UNDETERMINED, True, None)
    refused = with_key_policy(identity, default_key_policy("444455556666"), request(), {ALICE},
                              "", ACCOUNT)  # fmt: skip
    assert (refused.result, refused.reason) == (DENIED, "the key policy does not delegate")


def test_a_key_policy_needs_the_principals_account() -> None:
    with pytest.raises(ValueError, match="not a principal ARN"):
        decide(Request("kms:Sign", KEY, "caller"), [], default_key_policy(ACCOUNT))


CONTEXT = "kms:EncryptionContext:PARAMETER_ARN"
PARAMETER = f"arn:aws:ssm:eu-central-2:{ACCOUNT}:parameter/confio/algorand/a/private-key"
OWN_PARAMETERS = {"StringLike": {CONTEXT: [PARAMETER, f"{PARAMETER}-*"]}}


@pytest.mark.parametrize(
    ("condition", "context", "want"),
    [
        (OWN_PARAMETERS, {CONTEXT: PARAMETER}, True),
        (OWN_PARAMETERS, {CONTEXT: f"{PARAMETER}-1a2b3c4d"}, True),  # a rotated parameter
        (OWN_PARAMETERS, {CONTEXT: f"{PARAMETER}x"}, False),
        (OWN_PARAMETERS, {CONTEXT: PARAMETER.replace("/a/", "/b/")}, False),  # another alias's
        (OWN_PARAMETERS, {CONTEXT: PARAMETER.upper()}, False),  # values: case-sensitive
        (OWN_PARAMETERS, {"kms:encryptioncontext:parameter_arn": PARAMETER}, True),  # names: not
        (OWN_PARAMETERS, {}, False),  # no encryption context: refused
        (OWN_PARAMETERS, {"kms:EncryptionContext:Other": PARAMETER}, False),  # another key
        ({"StringEquals": {CONTEXT: PARAMETER}}, {CONTEXT: f"{PARAMETER}-1"}, False),  # no glob
        ({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["PARAMETER_ARN"]}},
         {"kms:EncryptionContextKeys": ["PARAMETER_ARN"]}, True),
        ({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["PARAMETER_ARN"]}},
         {"kms:EncryptionContextKeys": ["PARAMETER_ARN", "x"]}, False),
        ({"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "PARAMETER_ARN"}},
         {"kms:EncryptionContextKeys": ["x"]}, False),
    ],
)  # fmt: skip
def test_encryption_context_conditions(
    condition: dict[str, Any], context: dict[str, Any], want: bool
) -> None:
    """kms:EncryptionContext:KEY as IAM reads it: the key name (the part after the
    prefix too) in any case, the value case-sensitive; a missing context fails."""
    assert condition_holds(condition, Request("kms:Decrypt", KEY, ALICE, context)) is want


def test_encryption_context_keys_is_multivalued_even_with_one_value() -> None:
    """AWS defines kms:EncryptionContextKeys as multivalued: a single-valued operator on
    it is not decided, whether the request lists one key or several."""
    single = {"StringEquals": {"kms:EncryptionContextKeys": "PARAMETER_ARN"}}
    query = Query("kms:Decrypt", KEY, Context({"kms:encryptioncontextkeys": ("PARAMETER_ARN",)}))
    decision = evaluate([("p", policy(allow("kms:Decrypt", **single)))], query)
    assert decision.result == UNDETERMINED
    assert "multivalued" in " ".join(decision.unsure)
