"""What an IAM user or role may do, as its policies say: for ``kms_doctor``.

``decide`` answers each ``Probe`` (one request: an action on a resource, with the
condition keys known for it) with a ``Decision``: allowed, denied or undetermined.
It asks IAM's policy simulator (``SimulatePrincipalPolicy``) first, which evaluates the
identity policies only (no key policies or grants). When that is refused or not
implemented (moto does not implement it), it reads the identity's own policies
(attached, inline and, for a user, its groups') and evaluates them here (``evaluate``):
an explicit Deny wins, no Allow is a denial, ``Action``/``NotAction`` and
``Resource``/``NotResource`` with wildcards, and the string, ARN, ``Bool`` and ``Null``
condition operators on the keys the probe knows; any other condition key or operator
(numeric, date, IP, policy variables) leaves the answer undetermined, never allowed.

That reading is not a full simulation: it sees no SCPs, permission boundaries (it notes
an attached one), session policies, key policies or grants, and says so in the method
``decide`` returns with its decisions.

``denied_without_mfa`` reads a key policy the same way: which requests without MFA its
Deny statements to everyone refuse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from . import exceptions as exc
from .aws import AWSClients

ALLOWED, DENIED, UNDETERMINED = "allowed", "denied", "undetermined"

# How the decisions were reached, as decide() states it.
_CAVEAT_READ = (
    "not a full simulation: no SCPs, permission boundaries, session or key policies, grants, "
    "or conditions on other keys"
)
_CAVEAT_SIMULATED = "by IAM's policy simulator (identity policies; no key policies or grants)"


class CannotTell(Exception):
    """The permissions cannot be determined; the message says why."""


# --- who --------------------------------------------------------------------------


_PRINCIPAL = re.compile(r"arn:aws[\w-]*:iam::(\d{12}):(user|role)/(.+)")


@dataclass(frozen=True)
class Who:
    kind: str  # "user", "role", "root", or "" (not an IAM user or role)
    name: str
    arn: str
    boundary: Mapping[str, Any] | None = None

    @classmethod
    def from_arn(cls, arn: str) -> Who:
        """Who an ARN from sts:GetCallerIdentity (or --principal) names in IAM."""
        parts = arn.split(":", 5)
        if len(parts) != 6:
            return cls("", "", arn)
        resource = parts[5]
        if resource == "root":
            return cls("root", "root", arn)
        kind, _, rest = resource.partition("/")
        if kind == "user" and rest:
            return cls("user", rest.rsplit("/", 1)[-1], arn)
        if kind == "role" and rest:
            return cls("role", rest.rsplit("/", 1)[-1], arn)
        if kind == "assumed-role" and "/" in rest:
            return cls("role", rest.split("/", 1)[0], arn)
        return cls("", "", arn)


def principal_arn(value: str) -> str:
    """``value`` if it is the ARN of an IAM user or role; ConfigurationError otherwise."""
    if not _PRINCIPAL.fullmatch(value):
        raise exc.ConfigurationError(
            f"{value!r} is not the ARN of an IAM user or role.",
            fix="Pass e.g. arn:aws:iam::123456789012:role/confio-web.",
        )
    return value


# --- requests and answers -----------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One request to authorize: ``context`` holds the condition keys known for it
    (an empty tuple: known to be absent); keys starting with one of ``absent`` and not
    in ``context`` are known to be absent too; any other key is unknown."""

    action: str
    resource: str
    on: str
    context: Mapping[str, tuple[str, ...]]
    absent: tuple[str, ...] = ()

    @property
    def operation(self) -> str:
        """The IAM action (``action`` may carry a note: "kms:Decrypt (through SSM)")."""
        return self.action.split(" ", 1)[0]

    @property
    def label(self) -> str:
        return f"{self.action} on {self.on}" if self.on else self.action

    def value(self, key: str) -> tuple[str, ...] | None:
        """The values of ``key`` (lower case), () if absent, None if unknown."""
        for name, values in self.context.items():
            if name.lower() == key:
                return values
        return () if self.absent and key.startswith(self.absent) else None


@dataclass(frozen=True)
class Decision:
    result: str  # ALLOWED, DENIED or UNDETERMINED
    reason: str = ""


def decide(
    aws: AWSClients, who: Who, probes: Sequence[Probe], account: str
) -> tuple[list[Decision], str]:
    """The decision on each of ``probes`` for ``who`` (a user or a role of ``account``)
    and how it was reached. Raises ``CannotTell`` when the simulator is unavailable and
    the identity's policies cannot be read."""
    source = who.arn
    if who.kind == "role":
        try:  # the role's ARN (with its path), which the simulator needs
            role = _iam(aws, "GetRole", who.arn, RoleName=who.name)["Role"]
        except CannotTell:
            role = {"Arn": f"arn:aws:iam::{account}:role/{who.name}"}
        source = str(role.get("Arn", who.arn))
        who = Who("role", who.name, source, role.get("PermissionsBoundary"))
    try:
        return simulate(aws, source, probes), _CAVEAT_SIMULATED
    except exc.ConfioKMSError as error:
        why = error.cause or type(error).__name__
    documents, notes = _read_policies(aws, who)
    method = f"read from its IAM policies, as IAM's simulator was unavailable ({why}); "
    method += _CAVEAT_READ
    if notes:
        method += "; " + "; ".join(notes)
    return [evaluate(documents, probe) for probe in probes], method


# --- IAM's policy simulator -----------------------------------------------------------

# SimulatePrincipalPolicy's context key types for the keys the probes carry.
_LIST_KEYS = {"kms:resourcealiases", "aws:tagkeys"}
_BOOL_KEYS = {"aws:multifactorauthpresent"}


def simulate(aws: AWSClients, source: str, probes: Sequence[Probe]) -> list[Decision]:
    """IAM's policy simulator, one request per resource and context (pages followed)."""
    groups: dict[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]], list[int]] = {}
    for index, probe in enumerate(probes):
        key = (probe.resource, tuple(sorted(probe.context.items())))
        groups.setdefault(key, []).append(index)
    decisions: list[Decision] = [Decision(UNDETERMINED, "not simulated")] * len(probes)
    for (resource, context), indexes in groups.items():
        entries = [
            {
                "ContextKeyName": name,
                "ContextKeyValues": list(values),
                "ContextKeyType": "stringList"
                if name.lower() in _LIST_KEYS
                else "boolean"
                if name.lower() in _BOOL_KEYS
                else "string",
            }
            for name, values in context
            if values
        ]
        actions = list(dict.fromkeys(probes[i].operation for i in indexes))
        results: dict[str, dict[str, Any]] = {}
        marker: str | None = None
        while True:
            page = aws.call(
                "iam",
                "SimulatePrincipalPolicy",
                source,
                PolicySourceArn=source,
                ActionNames=actions,
                ResourceArns=[resource],
                **({"ContextEntries": entries} if entries else {}),
                **({"Marker": marker} if marker else {}),
            )
            for result in page.get("EvaluationResults", []):
                results[str(result.get("EvalActionName", "")).lower()] = result
            marker = page.get("Marker")
            if not page.get("IsTruncated") or not marker:
                break
        for i in indexes:
            decisions[i] = _simulated(probes[i], results.get(probes[i].operation.lower()))
    return decisions


def _simulated(probe: Probe, result: Mapping[str, Any] | None) -> Decision:
    if result is None:
        return Decision(UNDETERMINED, "the simulator gave no answer")
    decision = str(result.get("EvalDecision", ""))
    missing = [
        key
        for key in result.get("MissingContextValues", [])
        if probe.value(str(key).lower()) != ()  # known to be absent: not missing
    ]
    statements = [s.get("SourcePolicyId", "") for s in result.get("MatchedStatements", []) if s]
    by = f" by {', '.join(filter(None, statements))}" if any(statements) else ""
    if decision == "explicitDeny":
        return Decision(DENIED, f"explicitly denied{by}")
    if missing:
        return Decision(UNDETERMINED, f"{decision}, but depends on {', '.join(missing)}")
    if decision == "allowed":
        return Decision(ALLOWED, f"allowed{by}")
    return Decision(DENIED, "no policy allows it")


# --- reading the identity's policies --------------------------------------------------


def _read_policies(aws: AWSClients, who: Who) -> tuple[list[tuple[str, Any]], list[str]]:
    """The identity's policy documents (label, document) and notes on what was not read."""
    notes: list[str] = []
    documents: list[tuple[str, Any]] = []
    if who.kind == "user":
        user = _iam(aws, "GetUser", who.arn, UserName=who.name)["User"]
        boundary = user.get("PermissionsBoundary")
        holders = [("User", {"UserName": who.name}, who.name)]
        for group in _iam_items(aws, "ListGroupsForUser", who.arn, "Groups", UserName=who.name):
            name = group["GroupName"]
            holders.append(("Group", {"GroupName": name}, f"group {name}"))
    else:
        boundary = who.boundary
        holders = [("Role", {"RoleName": who.name}, who.name)]
    if boundary:
        notes.append(
            f"a permissions boundary ({boundary.get('PermissionsBoundaryArn', '?')}) is "
            "attached and not evaluated: it can only narrow what is shown"
        )
    for kind, ident, label in holders:
        for attached in _iam_items(
            aws, f"ListAttached{kind}Policies", label, "AttachedPolicies", **ident
        ):
            arn = attached["PolicyArn"]
            policy = _iam(aws, "GetPolicy", arn, PolicyArn=arn)["Policy"]
            version = _iam(
                aws, "GetPolicyVersion", arn, PolicyArn=arn, VersionId=policy["DefaultVersionId"]
            )["PolicyVersion"]
            documents.append((attached.get("PolicyName", arn), version["Document"]))
        for name in _iam_items(aws, f"List{kind}Policies", label, "PolicyNames", **ident):
            inline = _iam(aws, f"Get{kind}Policy", label, **ident, PolicyName=name)
            documents.append((f"{label}/{name}", inline["PolicyDocument"]))
    return [(label, _document(doc)) for label, doc in documents], notes


def _iam(aws: AWSClients, operation: str, resource: str, **params: Any) -> dict[str, Any]:
    """An IAM read; a refusal or a missing entity is a reason to say ``CannotTell``."""
    try:
        return aws.call("iam", operation, resource, **params)
    except exc.AccessDeniedError as error:
        raise CannotTell(f"the credentials may not read IAM (iam:{operation} denied)") from error
    except exc.ConfioKMSError as error:
        why = error.cause or error.message
        raise CannotTell(f"iam:{operation} on {resource} failed ({why})") from error


def _iam_items(
    aws: AWSClients, operation: str, resource: str, items: str, **params: Any
) -> list[Any]:
    found: list[Any] = []
    marker: str | None = None
    while True:
        page = _iam(aws, operation, resource, **params, **({"Marker": marker} if marker else {}))
        found += page.get(items, [])
        marker = page.get("Marker")
        if not page.get("IsTruncated") or not marker:
            return found


def _document(document: Any) -> Any:
    """A policy document as IAM returns it (botocore decodes it; a string otherwise)."""
    if isinstance(document, str):
        try:
            return json.loads(unquote(document))
        except ValueError:
            return {}
    return document


# --- evaluating policy documents ------------------------------------------------------


def evaluate(documents: Sequence[tuple[str, Any]], probe: Probe) -> Decision:
    """The identity policies' answer for ``probe``: an explicit Deny wins, no Allow is a
    denial, and an Allow or Deny whose conditions cannot be decided leaves it open."""
    sure: list[str] = []
    maybe_allow: list[str] = []
    maybe_deny: list[str] = []
    for label, document in documents:
        for statement in _statements(document):
            hit = _applies(statement, probe)
            if hit is False:
                continue
            sid = f"{label}/{statement['Sid']}" if statement.get("Sid") else label
            if statement.get("Effect") == "Deny":
                if hit:
                    return Decision(DENIED, f"explicitly denied by {sid}")
                maybe_deny.append(sid)
            elif statement.get("Effect") == "Allow":
                (sure if hit else maybe_allow).append(sid)
    if sure and not maybe_deny:
        return Decision(ALLOWED, f"allowed by {sure[0]}")
    if sure or maybe_allow:
        allowing = (sure or maybe_allow)[0]
        if maybe_deny:
            return Decision(
                UNDETERMINED, f"allowed by {allowing} unless the condition of {maybe_deny[0]} holds"
            )
        return Decision(UNDETERMINED, f"allowed by {allowing} if its condition holds")
    return Decision(DENIED, "no statement allows it")


def _statements(policy: Any) -> list[Mapping[str, Any]]:
    statements = policy.get("Statement", []) if isinstance(policy, Mapping) else []
    return [statements] if isinstance(statements, Mapping) else list(statements)


def _applies(statement: Mapping[str, Any], probe: Probe) -> bool | None:
    if _matches_action(statement, probe.operation) is not True:
        return False
    if _matches_resource(statement, probe.resource) is not True:
        return False
    return _condition(statement.get("Condition") or {}, probe)


def _matches_action(statement: Mapping[str, Any], action: str) -> bool:
    if "NotAction" in statement:
        return not any(_glob(p, action, True) for p in _listed(statement["NotAction"]))
    return any(_glob(p, action, True) for p in _listed(statement.get("Action", [])))


def _matches_resource(statement: Mapping[str, Any], resource: str) -> bool:
    if "NotResource" in statement:
        return not any(_glob(p, resource) for p in _listed(statement["NotResource"]))
    return any(_glob(p, resource) for p in _listed(statement.get("Resource", "*")))


def _condition(block: Mapping[str, Any], probe: Probe) -> bool | None:
    """True, False, or None when a key or operator is one this module cannot decide."""
    result: bool | None = True
    for operator, entries in block.items():
        if not isinstance(entries, Mapping):
            return None
        for key, wanted in entries.items():
            outcome = _operator(str(operator), str(key).lower(), _listed(wanted), probe)
            if outcome is False:
                return False
            if outcome is None:
                result = None
    return result


_STRING = {
    "StringEquals": (False, False, False),  # negated, ignore case, wildcards
    "StringNotEquals": (True, False, False),
    "StringEqualsIgnoreCase": (False, True, False),
    "StringNotEqualsIgnoreCase": (True, True, False),
    "StringLike": (False, False, True),
    "StringNotLike": (True, False, True),
    "ArnEquals": (False, False, True),
    "ArnLike": (False, False, True),
    "ArnNotEquals": (True, False, True),
    "ArnNotLike": (True, False, True),
    "Bool": (False, True, False),
}


def _operator(operator: str, key: str, wanted: list[Any], probe: Probe) -> bool | None:
    qualifier, _, base = operator.rpartition(":")
    present = probe.value(key)
    if present is None or qualifier not in ("", "ForAnyValue", "ForAllValues"):
        return None
    texts = [str(w).lower() if isinstance(w, bool) else str(w) for w in wanted]
    if any("${" in t for t in texts):
        return None  # policy variables
    if base == "Null":
        # Null true: the key is absent; Null false: it is present.
        return (not present) == (texts[0].lower() == "true") if len(texts) == 1 else None
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    if base not in _STRING:
        return None  # numeric, date and IP operators: not decided here
    negated, ignore_case, wildcards = _STRING[base]
    if not present:
        if if_exists or qualifier == "ForAllValues":
            return True
        return False if qualifier == "ForAnyValue" else negated

    def one(value: str) -> bool:
        hit = any(
            _glob(t, value, ignore_case)
            if wildcards
            else (t.lower() == value.lower() if ignore_case else t == value)
            for t in texts
        )
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(one(v) for v in present)
    return any(one(v) for v in present)


def _glob(pattern: str, value: str, ignore_case: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


# --- key policies: MFA ----------------------------------------------------------------

# The MFA cases a Deny can cover: a request with aws:MultiFactorAuthPresent false (a
# session without MFA) and one without the key (long-term access keys).
WITHOUT_MFA = frozenset({"false", "absent"})


def denied_without_mfa(policy: Mapping[str, Any], action: str, key_arn: str) -> frozenset[str]:
    """Which of the ``WITHOUT_MFA`` cases the key policy's Deny statements to everyone
    refuse ``action`` on the key in (empty: none)."""
    cases: set[str] = set()
    for statement in _statements(policy):
        if statement.get("Effect") != "Deny" or not _everyone(statement.get("Principal")):
            continue
        if _matches_action(statement, action) is not True:
            continue
        if _matches_resource(statement, key_arn) is not True:
            continue
        condition = statement.get("Condition") or {}
        if not condition:
            cases |= WITHOUT_MFA  # denied to everyone, MFA or not
            continue
        if len(condition) != 1 or len(next(iter(condition.values()))) != 1:
            continue  # narrowed by other conditions
        operator, entries = next(iter(condition.items()))
        key, value = next(iter(entries.items()))
        if key.lower() != "aws:multifactorauthpresent":
            continue
        values = {str(v).lower() for v in _listed(value)}
        if operator == "BoolIfExists" and values == {"false"}:
            cases |= WITHOUT_MFA
        elif operator == "Bool" and values == {"false"}:
            cases.add("false")
        elif operator == "Null" and values == {"true"}:
            cases.add("absent")
    return frozenset(cases)


def _everyone(principal: Any) -> bool:
    if principal == "*":
        return True
    return isinstance(principal, Mapping) and "*" in _listed(principal.get("AWS", []))
