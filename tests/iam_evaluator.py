"""A small evaluator of AWS policies for one concrete request, for the tests.

It implements AWS's documented semantics for what confio-kms's policies use, and
refuses (ValueError) any element or operator it does not implement rather than guess:

- Effect Allow/Deny; an explicit Deny in any policy wins; no Allow is a denial.
- Action (case-insensitive) and Resource (case-sensitive) with ``*`` and ``?``.
- Principal in key policies: ``*``, ``{"AWS": "*"}``, an account (``arn:...:root`` or
  the 12 digits), or an exact principal ARN. For a KMS key the key policy must allow
  the request, either naming the principal or naming its account, in which case an
  identity policy must allow it as well (KMS's "enable IAM policies" delegation).
- Conditions: every operator of a block must hold, every key of an operator must hold,
  a key holds if the context value matches any of the policy's values (negated
  operators: matches none). Operators: StringEquals, StringNotEquals,
  StringEqualsIgnoreCase, StringNotEqualsIgnoreCase, StringLike, StringNotLike,
  ArnEquals, ArnNotEquals, ArnLike, ArnNotLike, Bool, Null; the ``IfExists`` suffix;
  the ``ForAnyValue:`` and ``ForAllValues:`` prefixes.
- A key absent from the request (or an empty list): ``Null`` tests exactly that;
  ``...IfExists`` holds; ``ForAllValues:`` holds; ``ForAnyValue:`` fails; a negated
  operator (``StringNotEquals``, ``ArnNotEquals``, ...) holds; any other fails. The
  negated case is AWS's documented rule ("if the policy condition requires that the
  key is not matched ... and the right key is not present, the condition is true").
- Condition key names are case-insensitive (tag keys inside ``aws:ResourceTag/...``
  and ``aws:RequestTag/...`` included); values are case-sensitive except with
  ``...IgnoreCase`` and ``Bool``.
- A list value in the context is a multivalued key: a single-valued operator on it is
  refused as a policy bug (AWS wants ``ForAnyValue:``/``ForAllValues:`` there).

Not implemented: NotAction, NotResource, NotPrincipal, numeric, date and IP
operators, policy variables, grants, SCPs, permission boundaries, session policies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ALLOW = "Allow"
EXPLICIT_DENY = "ExplicitDeny"
IMPLICIT_DENY = "ImplicitDeny"

ContextValue = str | bool | Sequence[str]
Policy = Mapping[str, Any]

_STRING_OPERATORS = {
    "StringEquals": (False, False, False),  # (negated, ignore case, wildcards)
    "StringNotEquals": (True, False, False),
    "StringEqualsIgnoreCase": (False, True, False),
    "StringNotEqualsIgnoreCase": (True, True, False),
    "StringLike": (False, False, True),
    "StringNotLike": (True, False, True),
}
_ARN_OPERATORS = {
    "ArnEquals": False,
    "ArnLike": False,
    "ArnNotEquals": True,
    "ArnNotLike": True,
}
_SUPPORTED_ELEMENTS = {"Sid", "Effect", "Action", "Resource", "Condition", "Principal"}
# Keys AWS defines as multivalued, whether or not a request carries them.
_MULTIVALUED = {"aws:tagkeys", "kms:resourcealiases"}


@dataclass(frozen=True)
class Request:
    """One authorization: ``action`` on ``resource`` by ``principal``, with context keys.

    ``aws:PrincipalArn`` is added to the context from ``principal``.
    """

    action: str
    resource: str
    principal: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)

    def values(self) -> dict[str, list[str]]:
        """Context keys, lower-cased, each as a list of strings (empty: absent)."""
        found: dict[str, list[str]] = {"aws:principalarn": [self.principal]}
        for key, value in self.context.items():
            if isinstance(value, bool):
                found[key.lower()] = ["true" if value else "false"]
            elif isinstance(value, str):
                found[key.lower()] = [value]
            else:
                found[key.lower()] = list(value)
        return found

    def multivalued(self) -> set[str]:
        return _MULTIVALUED | {
            key.lower() for key, value in self.context.items() if not isinstance(value, str | bool)
        }


def decide(
    request: Request, identity_policies: Sequence[Policy], key_policy: Policy | None = None
) -> str:
    """``ALLOW``, ``EXPLICIT_DENY`` or ``IMPLICIT_DENY``.

    Pass ``key_policy`` when the resource is a KMS key (use ``default_key_policy``
    for a key with KMS's default one); without it only identity policies count, as
    for aliases, SSM parameters and requests on no particular resource.
    """
    identity = [s for p in identity_policies for s in _statements(p, key_policy=False)]
    keyed = [s for s in _statements(key_policy, key_policy=True)] if key_policy else []
    matching_identity = [s for s in identity if _applies(s, request)]
    matching_key = [(s, _principal(s, request)) for s in keyed if _applies(s, request)]
    matching_key = [(s, how) for s, how in matching_key if how]
    if any(s["Effect"] == "Deny" for s in matching_identity) or any(
        s["Effect"] == "Deny" for s, _ in matching_key
    ):
        return EXPLICIT_DENY
    identity_allows = any(s["Effect"] == "Allow" for s in matching_identity)
    if key_policy is None:
        return ALLOW if identity_allows else IMPLICIT_DENY
    key_allows = [how for s, how in matching_key if s["Effect"] == "Allow"]
    if "principal" in key_allows or ("account" in key_allows and identity_allows):
        return ALLOW
    return IMPLICIT_DENY


def allowed(
    request: Request, identity_policies: Sequence[Policy], key_policy: Policy | None = None
) -> bool:
    return decide(request, identity_policies, key_policy) == ALLOW


def default_key_policy(account: str) -> dict[str, Any]:
    """KMS's default key policy: the account's IAM policies decide."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }


def condition_holds(condition: Mapping[str, Any], request: Request) -> bool:
    """Whether a statement's Condition block holds for ``request``."""
    values, multivalued = request.values(), request.multivalued()
    for operator, keys in condition.items():
        for key, expected in keys.items():
            wanted = [expected] if isinstance(expected, str | bool) else list(expected)
            if not _operator_holds(operator, key.lower(), wanted, values, multivalued):
                return False
    return True


# --- internals ----------------------------------------------------------------------


def _statements(policy: Policy, *, key_policy: bool) -> list[Mapping[str, Any]]:
    statements = policy["Statement"]
    statements = [statements] if isinstance(statements, Mapping) else list(statements)
    for statement in statements:
        unknown = set(statement) - _SUPPORTED_ELEMENTS
        if unknown:
            raise ValueError(f"unsupported policy element(s) {sorted(unknown)}")
        if statement["Effect"] not in ("Allow", "Deny"):
            raise ValueError(f"unknown Effect {statement['Effect']!r}")
        if ("Principal" in statement) != key_policy:
            where = "a key policy" if key_policy else "an identity policy"
            raise ValueError(f"Principal is {'required' if key_policy else 'not valid'} in {where}")
    return statements


def _applies(statement: Mapping[str, Any], request: Request) -> bool:
    return (
        any(_glob(a, request.action, ignore_case=True) for a in _listed(statement["Action"]))
        and any(_glob(r, request.resource) for r in _listed(statement["Resource"]))
        and condition_holds(statement.get("Condition", {}), request)
    )


def _principal(statement: Mapping[str, Any], request: Request) -> str:
    """'principal' if the statement names the caller (or everyone), 'account' if it
    names the caller's account, '' if neither."""
    principal = statement["Principal"]
    if principal == "*":
        return "principal"
    if set(principal) - {"AWS", "Service"}:
        raise ValueError(f"unsupported Principal {principal!r}")
    caller_account = request.principal.split(":")[4]
    for entry in _listed(principal.get("AWS", [])):
        if entry == "*" or entry == request.principal:
            return "principal"
        if entry in (caller_account, f"arn:aws:iam::{caller_account}:root"):
            return "account"
    return ""


def _operator_holds(
    operator: str,
    key: str,
    wanted: list[Any],
    values: Mapping[str, list[str]],
    multivalued: set[str],
) -> bool:
    qualifier, _, base = operator.rpartition(":")
    if qualifier not in ("", "ForAnyValue", "ForAllValues"):
        raise ValueError(f"unknown set operator {qualifier!r} in {operator!r}")
    present = values.get(key, [])
    if base == "Null":
        if qualifier:
            raise ValueError(f"{operator!r}: Null takes no set operator")
        (flag,) = wanted
        return str(flag).lower() == ("false" if present else "true")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    negated, match = _matcher(base, operator)
    if key in multivalued and not qualifier:
        raise ValueError(f"{key} is multivalued: {operator!r} needs ForAnyValue/ForAllValues")
    if not present:
        if if_exists or qualifier == "ForAllValues":
            return True
        if qualifier == "ForAnyValue":
            return False
        return negated

    def one(value: str) -> bool:
        hit = any(match(str(w), value) for w in wanted)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(one(v) for v in present)
    return any(one(v) for v in present)


def _matcher(base: str, operator: str) -> tuple[bool, Any]:
    if base in _STRING_OPERATORS:
        negated, ignore_case, wildcards = _STRING_OPERATORS[base]

        def string(pattern: str, value: str) -> bool:
            if wildcards:
                return _glob(pattern, value)
            if ignore_case:
                return pattern.lower() == value.lower()
            return pattern == value

        return negated, string
    if base in _ARN_OPERATORS:
        return _ARN_OPERATORS[base], _arn_match
    if base == "Bool":
        return False, lambda pattern, value: pattern.lower() == value.lower()
    raise ValueError(f"unsupported condition operator {operator!r}")


def _arn_match(pattern: str, value: str) -> bool:
    """Each of the six colon-separated parts matched on its own, with wildcards."""
    patterns, values = pattern.split(":", 5), value.split(":", 5)
    if len(patterns) != 6 or len(values) != 6:
        return False
    return all(_glob(p, v) for p, v in zip(patterns, values, strict=True))


def _glob(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.fullmatch(regex, value, flags) is not None


def _listed(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)
