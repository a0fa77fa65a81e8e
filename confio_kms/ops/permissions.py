"""What an IAM user or role may do, as its policies say: for ``kms_doctor``.

``decide`` answers each ``Probe`` (one request: an action on a resource, with the
condition keys known for it) with a ``Decision``: allowed, denied or undetermined.
It asks IAM's policy simulator (``SimulatePrincipalPolicy``) first, which evaluates the
identity policies only. When that is refused or not implemented (moto does not
implement it), it reads the identity's own policies (attached, inline and, for a user,
its groups') and weighs them with ``confio_kms.ops.iam_evaluator`` (its rules are
listed there): a condition on a key the probe does not know, or one the evaluator
cannot decide, leaves the answer undetermined, never allowed. A simulator answer that
depends on a condition key the request did not carry (``MissingContextValues``, at the
top level or per resource) is undetermined too, an explicit Deny included.

Either way, a probe on a key whose key policy ``decide`` is given is then weighed with
that key policy's statements that name the identity (its ARN) or everyone (``"*"``),
evaluated the same way: a Deny there wins, an Allow there allows. Statements for the
account (``arn:aws:iam::ACCOUNT:root``) are not the identity's: they delegate to IAM.

That is not a full simulation: it sees no SCPs, permission boundaries (the reading
notes an attached one), session policies or grants, and says so in the method
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

from confio_kms.common import exceptions as exc
from confio_kms.core.aws import AWSClients
from confio_kms.ops.iam_evaluator import (
    ALLOWED,
    DENIED,
    KEY_POLICY,
    UNDETERMINED,
    Context,
    Decision,
    Query,
    evaluate,
    everyone,
    listed,
    matches_action,
    matches_resource,
    statements_of,
    with_key_policy,
)

__all__ = [  # the evaluator's names too, where earlier releases had them
    "ALLOWED",
    "DENIED",
    "KEY_POLICY",
    "UNDETERMINED",
    "WITHOUT_MFA",
    "CannotTell",
    "Decision",
    "Probe",
    "Who",
    "decide",
    "denied_without_mfa",
    "evaluate",
    "principal_arn",
    "simulate",
    "with_key_policy",
]

# How the decisions were reached, as decide() states it.
_CAVEAT_READ = (
    "not a full simulation: no SCPs, permission boundaries, session policies, grants, or "
    "conditions on other keys"
)
_CAVEAT_SIMULATED = "by IAM's policy simulator (identity policies; no grants)"
_WITH_KEY_POLICY = ", and the key policy's statements that name the identity or everyone"


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

    @property
    def query(self) -> Query:
        """What the evaluator weighs: the IAM action, the resource and the known keys."""
        values = {name.lower(): values for name, values in self.context.items()}
        return Query(self.operation, self.resource, Context(values, self.absent))

    def value(self, key: str) -> tuple[str, ...] | None:
        """The values of ``key`` (lower case), () if absent, None if unknown."""
        return self.query.context.value(key)


def decide(
    aws: AWSClients,
    who: Who,
    probes: Sequence[Probe],
    account: str,
    key_policies: Mapping[str, Any] | None = None,
) -> tuple[list[Decision], str]:
    """The decision on each of ``probes`` for ``who`` (a user or a role of ``account``)
    and how it was reached. ``key_policies``: key policies by key ARN; a probe on one of
    these keys is weighed with its statements that name ``who`` or everyone. Raises
    ``CannotTell`` when the simulator is unavailable and the identity's policies cannot
    be read."""
    source = named = who.arn
    if who.kind == "role":
        try:  # the role's ARN (with its path), which the simulator needs
            role = _iam(aws, "GetRole", who.arn, RoleName=who.name)["Role"]
        except CannotTell:
            role = {"Arn": f"arn:aws:iam::{account}:role/{who.name}"}
        source = str(role.get("Arn", who.arn))
        who = Who("role", who.name, source, role.get("PermissionsBoundary"))
    weighed = _WITH_KEY_POLICY if key_policies else ""
    why = ""
    try:
        decisions, method = simulate(aws, source, probes), _CAVEAT_SIMULATED + weighed
    except exc.ConfioKMSError as error:
        why = error.cause or type(error).__name__
    if why:
        documents, notes = _read_policies(aws, who)
        method = f"read from its IAM policies, as IAM's simulator was unavailable ({why})"
        method += f"{weighed}; {_CAVEAT_READ}"
        if notes:
            method += "; " + "; ".join(notes)
        decisions = [evaluate(documents, probe) for probe in probes]
    if key_policies:
        # The names a key policy may give the identity: the ARN it was named by (an
        # assumed-role session's too) and its IAM ARN (a role's, with its path).
        names = {named, source}
        decisions = [
            with_key_policy(decision, key_policies[probe.resource], probe, names, source)
            if probe.resource in key_policies
            else decision
            for decision, probe in zip(decisions, probes, strict=True)
        ]
    return decisions, method


# --- IAM's policy simulator -----------------------------------------------------------

# SimulatePrincipalPolicy's context key types for the keys the probes carry.
_LIST_KEYS = {"kms:resourcealiases", "aws:tagkeys", "kms:encryptioncontextkeys"}
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
        return Decision(UNDETERMINED, "the simulator gave no answer", None, None)
    decision = str(result.get("EvalDecision", ""))
    keys = list(result.get("MissingContextValues") or [])
    statements = list(result.get("MatchedStatements") or [])
    # With ResourceArns, AWS reports each resource's decision, matched statements and
    # missing keys in ResourceSpecificResults (the top-level list is then often empty).
    specific = [r for r in result.get("ResourceSpecificResults") or [] if r]
    mine = [r for r in specific if r.get("EvalResourceName") == probe.resource] or specific
    for entry in mine:
        keys += entry.get("MissingContextValues") or []
        statements += entry.get("MatchedStatements") or []
    if len(mine) == 1 and mine[0].get("EvalResourceDecision"):
        decision = str(mine[0]["EvalResourceDecision"])
    missing = list(
        dict.fromkeys(
            str(key)
            for key in keys
            if probe.value(str(key).lower()) != ()  # known to be absent: not missing
        )
    )
    names = list(dict.fromkeys(str(s.get("SourcePolicyId") or "") for s in statements if s))
    by = f" by {', '.join(filter(None, names))}" if any(names) else ""
    if missing:
        # The simulator evaluated a condition on a key the request did not carry: its
        # answer, an explicit Deny included, may not be what AWS decides.
        return Decision(
            UNDETERMINED, f"{decision}{by}, but depends on {', '.join(missing)}", None, None
        )
    if decision == "explicitDeny":
        return Decision(DENIED, f"explicitly denied{by}", False, True)
    if decision == "allowed":
        return Decision(ALLOWED, f"allowed{by}", True, False)
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


# --- key policies: MFA ----------------------------------------------------------------

# The MFA cases a Deny can cover: a request with aws:MultiFactorAuthPresent false (a
# session without MFA) and one without the key (long-term access keys).
WITHOUT_MFA = frozenset({"false", "absent"})


def denied_without_mfa(policy: Mapping[str, Any], action: str, key_arn: str) -> frozenset[str]:
    """Which of the ``WITHOUT_MFA`` cases the key policy's Deny statements to everyone
    refuse ``action`` on the key in (empty: none)."""
    cases: set[str] = set()
    for statement in statements_of(policy):
        if statement.get("Effect") != "Deny" or not everyone(statement.get("Principal")):
            continue
        if not matches_action(statement, action):
            continue
        if not matches_resource(statement, key_arn):
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
        values = {str(v).lower() for v in listed(value)}
        if operator == "BoolIfExists" and values == {"false"}:
            cases |= WITHOUT_MFA
        elif operator == "Bool" and values == {"false"}:
            cases.add("false")
        elif operator == "Null" and values == {"true"}:
            cases.add("absent")
    return frozenset(cases)
