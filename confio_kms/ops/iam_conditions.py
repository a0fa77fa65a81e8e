"""The Condition blocks of AWS policies, for ``confio_kms.ops.iam_evaluator`` (its
docstring lists the rules): whether one block holds for a request's keys, fails, or
cannot be decided (None, with the reason)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# Keys AWS defines as multivalued, whether or not a request carries them.
MULTIVALUED = frozenset({"aws:tagkeys", "kms:resourcealiases", "kms:encryptioncontextkeys"})

Outcome = tuple[bool | None, str]  # holds, fails or undecidable (None), and why not decided


@dataclass(frozen=True)
class Context:
    """The condition keys of one request: ``values`` by lower-case name (an empty
    tuple: known to be absent); a key not there is absent when it starts with one of
    ``absent`` ("" for every key), else unknown."""

    values: Mapping[str, tuple[str, ...]]
    absent: tuple[str, ...] = ()
    multivalued: frozenset[str] = MULTIVALUED

    def value(self, key: str) -> tuple[str, ...] | None:
        """The values of ``key`` (lower case), () if absent, None if unknown."""
        if key in self.values:
            return self.values[key]
        return () if self.absent and key.startswith(self.absent) else None


# --- conditions -----------------------------------------------------------------------


def condition(block: Any, context: Context) -> Outcome:
    """Whether every operator and key of a Condition block holds; False as soon as one
    fails, else None (with the first reason) when one cannot be decided."""
    if not isinstance(block, Mapping):
        return None, "a Condition that is not an object"
    result: Outcome = True, ""
    for operator, entries in block.items():
        if not isinstance(entries, Mapping):
            result = result if result[0] is None else (None, f"{operator!r} takes an object")
            continue
        for key, wanted in entries.items():
            outcome = _operator(str(operator), str(key).lower(), listed(wanted), context)
            if outcome[0] is False:
                return outcome
            if outcome[0] is None and result[0] is not None:
                result = outcome
    return result


def _equals(pattern: str, value: str) -> bool:
    return pattern == value


def _equals_ignore_case(pattern: str, value: str) -> bool:
    return pattern.lower() == value.lower()


def _like(pattern: str, value: str) -> bool:
    return glob(pattern, value)


def _arn(pattern: str, value: str) -> bool:
    """Each of the six colon-separated parts matched on its own, with wildcards."""
    patterns, values = pattern.split(":", 5), value.split(":", 5)
    if len(patterns) != 6 or len(values) != 6:
        return False
    return all(glob(p, v) for p, v in zip(patterns, values, strict=True))


# Each operator: whether it is negated, and how one policy value matches one request value.
_OPERATORS: dict[str, tuple[bool, Callable[[str, str], bool]]] = {
    "StringEquals": (False, _equals),
    "StringNotEquals": (True, _equals),
    "StringEqualsIgnoreCase": (False, _equals_ignore_case),
    "StringNotEqualsIgnoreCase": (True, _equals_ignore_case),
    "StringLike": (False, _like),
    "StringNotLike": (True, _like),
    "ArnEquals": (False, _arn),
    "ArnLike": (False, _arn),
    "ArnNotEquals": (True, _arn),
    "ArnNotLike": (True, _arn),
    "Bool": (False, _equals_ignore_case),
}


def _operator(operator: str, key: str, wanted: list[Any], context: Context) -> Outcome:
    qualifier, _, base = operator.rpartition(":")
    if qualifier not in ("", "ForAnyValue", "ForAllValues"):
        return None, f"unknown set operator {qualifier!r} in {operator!r}"
    present = context.value(key)
    if present is None:
        return None, f"{key} is not known for this request"
    texts = [str(w).lower() if isinstance(w, bool) else str(w) for w in wanted]
    if any("${" in t for t in texts):
        return None, f"policy variables in {operator!r} on {key}"
    if base == "Null":
        if qualifier or len(texts) != 1:
            return None, f"{operator!r}: Null takes one value and no set operator"
        return (not present) == (texts[0].lower() == "true"), ""
    if_exists = base.endswith("IfExists")
    if base.removesuffix("IfExists") not in _OPERATORS:
        return None, f"unsupported condition operator {operator!r}"
    if key in context.multivalued and not qualifier:
        return None, f"{key} is multivalued: {operator!r} needs ForAnyValue/ForAllValues"
    negated, match = _OPERATORS[base.removesuffix("IfExists")]
    if not present:
        if if_exists or qualifier == "ForAllValues":
            return True, ""
        return (False if qualifier == "ForAnyValue" else negated), ""

    def one(value: str) -> bool:
        hit = any(match(t, value) for t in texts)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(one(v) for v in present), ""
    return any(one(v) for v in present), ""


def glob(pattern: str, value: str, ignore_case: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]
