"""One evaluator of AWS policies for one request: the doctor's reading of identity and
key policies (``confio_kms.ops.permissions``) and the tests' checks of the policies
``kms_policy`` writes both use it. Its Condition blocks are read in ``iam_conditions``.

The rules, as AWS documents them (IAM User Guide: policy evaluation logic, condition
operators, multivalued context keys; KMS: key policies):

- An explicit Deny in any policy wins; no Allow is a denial.
- ``Action``/``NotAction`` (case-insensitive) and ``Resource``/``NotResource``
  (case-sensitive), with ``*`` and ``?``.
- Key policies: ``Principal`` is ``"*"`` or ``{"AWS": "*"}`` (everyone), an exact ARN,
  or an account (``arn:aws:iam::ACCOUNT:root`` or the 12 digits); ``NotPrincipal`` is
  everyone but those listed. A statement for the account delegates to IAM: the
  identity policies must allow the request as well.
- Conditions: every operator of a block and every key of an operator must hold; a key
  holds if a request value matches any of the policy's values (negated operators:
  none). ``String*``, ``Arn*`` (each of the six colon-separated parts matched on its
  own), ``Bool``, ``Null``; the ``IfExists`` suffix; ``ForAnyValue:`` and
  ``ForAllValues:``. Key names are case-insensitive, the part after a prefix too
  (``kms:EncryptionContext:PARAMETER_ARN``, ``aws:ResourceTag/Name``); values are
  case-sensitive except with ``...IgnoreCase`` and ``Bool``.
- A key absent from the request (or an empty list): ``Null`` tests exactly that;
  ``...IfExists`` and ``ForAllValues:`` hold; ``ForAnyValue:`` fails; a negated
  operator holds; any other fails.

What it cannot decide is undecidable, with the reason: a key whose value the request
does not say (the doctor knows some keys only), numeric, date, IP and binary
operators, policy variables, an unknown set operator, a single-valued operator on a
multivalued key (``aws:TagKeys``, ``kms:ResourceAliases``,
``kms:EncryptionContextKeys``, a list in the request),
``Null`` with a set operator or more than one value, an element it does not know, a
``Principal`` in an identity policy or none in a key policy, an Effect other than
Allow or Deny.

Two ways to ask: ``evaluate`` and ``with_key_policy`` answer allowed, denied or
undetermined (the doctor: an undecidable condition is never an allow); ``decide``,
``allowed`` and ``condition_holds`` answer for a concrete request, every key of
which is known, and raise ``ValueError`` on anything undecidable (the tests: refuse
rather than guess).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from confio_kms.ops.iam_conditions import MULTIVALUED, Context, Outcome, condition, glob, listed

__all__ = [  # the conditions' names too: one evaluator, in two modules
    "ALLOW",
    "ALLOWED",
    "DENIED",
    "EXPLICIT_DENY",
    "IMPLICIT_DENY",
    "KEY_POLICY",
    "MULTIVALUED",
    "UNDETERMINED",
    "Asks",
    "Context",
    "Decision",
    "Query",
    "Request",
    "allowed",
    "both",
    "condition_holds",
    "decide",
    "default_key_policy",
    "either",
    "evaluate",
    "everyone",
    "glob",
    "listed",
    "matches_action",
    "matches_resource",
    "principal_of",
    "statements_of",
    "with_key_policy",
]

ALLOWED, DENIED, UNDETERMINED = "allowed", "denied", "undetermined"
ALLOW, EXPLICIT_DENY, IMPLICIT_DENY = "Allow", "ExplicitDeny", "ImplicitDeny"
# The label of a key policy's statements in reasons ("allowed by key policy/Sid").
KEY_POLICY = "key policy"
_ELEMENTS = frozenset(
    {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource"}
    | {"NotResource", "Condition"}
)
_ROOT = re.compile(r"arn:aws[\w-]*:iam::(\d{12}):root")

ContextValue = str | bool | Sequence[str]


# --- requests -----------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """What is evaluated: ``action`` on ``resource`` with its condition keys."""

    action: str
    resource: str
    context: Context

    @property
    def query(self) -> Query:
        return self

    def having(self, key: str, values: tuple[str, ...]) -> Query:
        context = replace(self.context, values={**self.context.values, key.lower(): values})
        return replace(self, context=context)


class Asks(Protocol):
    """Anything that says what it asks: a ``Query``, the doctor's ``Probe``, a ``Request``."""

    @property
    def query(self) -> Query: ...


@dataclass(frozen=True)
class Request:
    """One concrete authorization: ``action`` on ``resource`` by ``principal``. Every
    key not in ``context`` is absent; a list value is a multivalued key; a bool is
    "true" or "false"; ``aws:PrincipalArn`` is ``principal``."""

    action: str
    resource: str
    principal: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)

    @property
    def query(self) -> Query:
        values: dict[str, tuple[str, ...]] = {"aws:principalarn": (self.principal,)}
        multivalued = set(MULTIVALUED)
        for key, value in self.context.items():
            if isinstance(value, bool):
                values[key.lower()] = ("true" if value else "false",)
            elif isinstance(value, str):
                values[key.lower()] = (value,)
            else:
                values[key.lower()] = tuple(value)
                multivalued.add(key.lower())
        return Query(self.action, self.resource, Context(values, ("",), frozenset(multivalued)))


# --- answers ------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """``result``: ALLOWED, DENIED or UNDETERMINED. ``allows`` and ``denies``: whether a
    statement surely (True), possibly (None) or never (False) allows or denies the
    request, so that another policy's answer can be weighed with this one. ``unsure``:
    why statements could not be decided (not compared: the reasons are for ``decide``)."""

    result: str
    reason: str = ""
    allows: bool | None = False
    denies: bool | None = False
    unsure: tuple[str, ...] = field(default=(), compare=False)


@dataclass
class _Reading:
    """What the statements of some policies say of one request: the first that surely
    denies it, those that surely or possibly allow or deny it, and why some could not
    be decided."""

    deny: str = ""
    allow: list[str] = field(default_factory=list)
    maybe_allow: list[str] = field(default_factory=list)
    maybe_deny: list[str] = field(default_factory=list)
    unsure: list[str] = field(default_factory=list)

    @property
    def silent(self) -> bool:
        return not (self.deny or self.allow or self.maybe_allow or self.maybe_deny)

    def decision(self) -> Decision:
        unsure = tuple(self.unsure)
        if self.deny:
            return Decision(DENIED, f"explicitly denied by {self.deny}", False, True, unsure)
        denies = None if self.maybe_deny else False
        if self.allow and not self.maybe_deny:
            return Decision(ALLOWED, f"allowed by {self.allow[0]}", True, False, unsure)
        if self.allow or self.maybe_allow:
            allowing = (self.allow or self.maybe_allow)[0]
            allows = True if self.allow else None
            if self.maybe_deny:
                reason = f"allowed by {allowing} unless the condition of {self.maybe_deny[0]} holds"
            else:
                reason = f"allowed by {allowing} if its condition holds"
            return Decision(UNDETERMINED, reason, allows, denies, unsure)
        return Decision(DENIED, "no statement allows it", False, denies, unsure)


# --- evaluating policies --------------------------------------------------------------


def evaluate(documents: Sequence[tuple[str, Any]], asked: Asks) -> Decision:
    """The identity policies' answer (``documents``: label and policy) for ``asked``: an
    explicit Deny wins, no Allow is a denial, and an Allow or Deny whose conditions
    cannot be decided leaves it open."""
    return _read(documents, asked.query, key_policy=False).decision()


def _read(documents: Sequence[tuple[str, Any]], query: Query, *, key_policy: bool) -> _Reading:
    reading = _Reading()
    for label, document in documents:
        for statement in statements_of(document):
            hit, why = _applies(statement, query, key_policy)
            if hit is False:
                continue
            sid = f"{label}/{statement['Sid']}" if statement.get("Sid") else label
            if hit is None:
                reading.unsure.append(f"{sid}: {why}")
            if statement.get("Effect") == "Deny":
                if hit:
                    reading.deny = reading.deny or sid
                else:
                    reading.maybe_deny.append(sid)
            elif statement.get("Effect") == "Allow":
                (reading.allow if hit else reading.maybe_allow).append(sid)
    return reading


def _applies(statement: Mapping[str, Any], query: Query, key_policy: bool) -> Outcome:
    if not matches_action(statement, query.action):
        return False, ""
    if not matches_resource(statement, query.resource):
        return False, ""
    problem = _malformed(statement, key_policy)
    if problem:
        return None, problem
    return condition(statement.get("Condition") or {}, query.context)


def _malformed(statement: Mapping[str, Any], key_policy: bool) -> str:
    """Why the evaluator cannot read ``statement`` ("" when it can)."""
    unknown = set(statement) - _ELEMENTS
    if unknown:
        return f"unsupported policy element(s) {sorted(unknown)}"
    if statement.get("Effect") not in ("Allow", "Deny"):
        return f"unknown Effect {statement.get('Effect')!r}"
    if ("Principal" in statement or "NotPrincipal" in statement) != key_policy:
        where = "a key policy" if key_policy else "an identity policy"
        return f"Principal is {'required' if key_policy else 'not valid'} in {where}"
    return ""


def statements_of(policy: Any) -> list[Mapping[str, Any]]:
    statements = policy.get("Statement", []) if isinstance(policy, Mapping) else []
    return [statements] if isinstance(statements, Mapping) else list(statements)


def matches_action(statement: Mapping[str, Any], action: str) -> bool:
    if "NotAction" in statement:
        return not any(glob(p, action, True) for p in listed(statement["NotAction"]))
    return any(glob(p, action, True) for p in listed(statement.get("Action", [])))


def matches_resource(statement: Mapping[str, Any], resource: str) -> bool:
    if "NotResource" in statement:
        return not any(glob(p, resource) for p in listed(statement["NotResource"]))
    return any(glob(p, resource) for p in listed(statement.get("Resource", "*")))


# --- key policies ---------------------------------------------------------------------


def principal_of(statement: Mapping[str, Any], names: Collection[str], account: str = "") -> str:
    """Whom a key policy statement names, of the identity known by ``names`` (its ARNs):
    "identity" when ``Principal`` is everyone or lists one of them, or ``NotPrincipal``
    lists none of them; "account" when ``Principal`` names ``account`` (its root ARN or
    its 12 digits: a delegation to IAM); "" otherwise."""
    if "NotPrincipal" in statement and "Principal" not in statement:
        return "" if _lists(statement["NotPrincipal"], names) else "identity"
    principal = statement.get("Principal")
    if everyone(principal) or _lists(principal, names):
        return "identity"
    if account and isinstance(principal, Mapping):
        for entry in listed(principal.get("AWS", [])):
            root = _ROOT.fullmatch(str(entry))
            if str(entry) == account or (root is not None and root.group(1) == account):
                return "account"
    return ""


def everyone(principal: Any) -> bool:
    if principal == "*":
        return True
    return isinstance(principal, Mapping) and "*" in listed(principal.get("AWS", []))


def _lists(principal: Any, names: Collection[str]) -> bool:
    if not isinstance(principal, Mapping):
        return False
    return any(str(p) in names for p in listed(principal.get("AWS", [])))


def with_key_policy(
    decision: Decision,
    policy: Any,
    asked: Asks,
    names: Collection[str],
    principal_arn: str = "",
    account: str = "",
) -> Decision:
    """``decision`` (the identity policies' answer) weighed with the key policy's
    statements that name one of ``names`` (the identity's ARNs) or everyone, their
    conditions evaluated as ``evaluate`` does (``aws:PrincipalArn`` is
    ``principal_arn``). An explicit Deny anywhere wins; an Allow in either allows.
    With ``account``, the identity policies count only as far as the key policy's
    statements for that account allow (KMS's delegation to IAM), and a Deny there
    denies; without it, the key policy is taken to delegate (the doctor's reading)."""
    query = asked.query
    if principal_arn:
        query = query.having("aws:PrincipalArn", (principal_arn,))
    statements = statements_of(policy)
    if account:
        delegated = [s for s in statements if principal_of(s, names, account) == "account"]
        decision = _delegated(decision, delegated, query)
    # A statement naming no one is read too, to be reported as one that cannot be.
    own = [
        s
        for s in statements
        if principal_of(s, names) == "identity" or not {"Principal", "NotPrincipal"} & set(s)
    ]
    reading = _read([(KEY_POLICY, {"Statement": own})], query, key_policy=True)
    weighed = _weigh(decision, reading)
    return replace(weighed, unsure=decision.unsure + tuple(reading.unsure))


def _delegated(decision: Decision, statements: list[Mapping[str, Any]], query: Query) -> Decision:
    """``decision`` as far as the key policy's statements for the account let IAM
    policies decide: both must allow; a Deny in either denies."""
    reading = _read([(KEY_POLICY, {"Statement": statements})], query, key_policy=True)
    key = reading.decision()
    unsure = decision.unsure + key.unsure
    if key.denies is True or decision.denies is True:
        return replace(key if key.denies is True else decision, unsure=unsure)
    allows = both(decision.allows, key.allows)
    denies = None if None in (decision.denies, key.denies) else False
    if allows is False:
        reason = decision.reason if decision.allows is False else "the key policy does not delegate"
        return Decision(DENIED, reason, False, denies, unsure)
    if allows is True and denies is False:
        return replace(decision, unsure=unsure)
    reason = f"{decision.reason}, if the key policy's statement for the account applies"
    return Decision(UNDETERMINED, reason, allows, denies, unsure)


def _weigh(decision: Decision, reading: _Reading) -> Decision:
    if reading.silent or decision.denies is True:
        return decision
    key = reading.decision()
    if key.denies is True:
        return key
    allows = either(decision.allows, key.allows)
    denies = None if None in (decision.denies, key.denies) else False
    if allows is False:
        return Decision(DENIED, decision.reason, False, denies)
    if allows is True and denies is False:
        return decision if decision.allows is True else key
    parts = [decision.reason] if decision.allows is not False else []
    if decision.allows is False and decision.denies is None:
        parts.append("an identity policy denies it if its condition holds")
    if reading.allow or reading.maybe_allow:
        parts.append(
            f"allowed by {reading.allow[0]}"
            if reading.allow
            else f"allowed by {reading.maybe_allow[0]} if its condition holds"
        )
    if reading.maybe_deny:
        parts.append(f"denied by {reading.maybe_deny[0]} if its condition holds")
    return Decision(UNDETERMINED, "; ".join(parts), allows, denies)


def either(a: bool | None, b: bool | None) -> bool | None:
    """True if either is, None if either may be, else False."""
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


def both(a: bool | None, b: bool | None) -> bool | None:
    """False if either is, None if either may be, else True."""
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


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


# --- concrete requests: an answer or ValueError ----------------------------------------


def decide(
    request: Request, identity_policies: Sequence[Any], key_policy: Any | None = None
) -> str:
    """``ALLOW``, ``EXPLICIT_DENY`` or ``IMPLICIT_DENY``; ValueError when any statement
    that could apply cannot be decided.

    Pass ``key_policy`` when the resource is a KMS key (``default_key_policy`` for a key
    with KMS's default one); without it only identity policies count, as for aliases,
    SSM parameters and requests on no particular resource.
    """
    decision = evaluate([("identity policy", p) for p in identity_policies], request)
    if key_policy is not None:
        parts = request.principal.split(":")
        if len(parts) < 6 or not parts[4]:
            raise ValueError(f"{request.principal!r} is not a principal ARN")
        names = {request.principal}
        decision = with_key_policy(decision, key_policy, request, names, "", parts[4])
    if decision.unsure:
        raise ValueError("; ".join(decision.unsure))
    if decision.result == ALLOWED:
        return ALLOW
    return EXPLICIT_DENY if decision.denies else IMPLICIT_DENY


def allowed(
    request: Request, identity_policies: Sequence[Any], key_policy: Any | None = None
) -> bool:
    return decide(request, identity_policies, key_policy) == ALLOW


def condition_holds(block: Mapping[str, Any], asked: Asks) -> bool:
    """Whether a statement's Condition block holds; ValueError when it cannot be decided."""
    holds, why = condition(block, asked.query.context)
    if holds is None:
        raise ValueError(why)
    return holds
