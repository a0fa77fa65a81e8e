"""Which policy documents to print, for which aliases and account, and what IAM would
refuse in them (kms_policy's decisions, callable from code).

``policies.py`` writes each document; this module chooses among them, checks the
account id, and warns of a document too long for a managed policy.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confio_kms.algorand import validation
from confio_kms.common.exceptions import ConfigurationError
from confio_kms.lifecycle import policies as iam

RUNTIME, ADMINISTRATION, KEY_POLICY = "runtime", "administration", "key_policy"
# IAM's limit for a managed policy document, whitespace not counted.
MANAGED_POLICY_LIMIT = 6144


@dataclass(frozen=True)
class PolicyDocuments:
    """The documents asked for, by name (``runtime``, ``administration``, ``key_policy``)."""

    account: str
    """The 12-digit account id in the ARNs, or ``*`` (IAM policies only)."""
    aliases: list[str]
    """The alias names covered, each once, in the order given."""
    documents: dict[str, Any]
    warnings: list[str]
    """What IAM would refuse: a document over ``MANAGED_POLICY_LIMIT`` characters."""


def policy_documents(
    aliases: Iterable[str],
    region: str,
    ssm_prefix: str,
    account_id: str = "*",
    *,
    only: str | None = None,
) -> PolicyDocuments:
    """The runtime and administration IAM policies for ``aliases``, or ``only`` one of
    them, or (``only="key_policy"``) the key policy, which needs a real account id."""
    account = _account(account_id, key_policy=only == KEY_POLICY)
    names = list(dict.fromkeys(validation.alias_name(a) for a in aliases))
    documents: dict[str, Any]
    if only == KEY_POLICY:
        documents = {KEY_POLICY: iam.key_policy(account)}
    else:
        documents = dict(iam.policies(names, region, ssm_prefix, account))
        if only is not None:
            documents = {only: documents[only]}
    warnings = [
        f"The {document} policy has {size:,} characters (without whitespace); IAM "
        f"accepts at most {MANAGED_POLICY_LIMIT:,} in a managed policy: cover fewer "
        "aliases in each (--alias), and create one policy per set."
        for document, size in _sizes(documents).items()
        if size > MANAGED_POLICY_LIMIT
    ]
    return PolicyDocuments(account, names, documents, warnings)


def _account(value: str, *, key_policy: bool) -> str:
    """The account id for the ARNs: 12 digits, or ``*`` in the IAM policies only."""
    if key_policy and value == "*":
        raise ConfigurationError(
            "--key-policy needs --account-id: a key policy names the account's principals "
            "(arn:aws:iam::ID:root), which * cannot stand for.",
            fix="Pass --account-id with the 12 digits of the account that owns the keys "
            "(`aws sts get-caller-identity --query Account --output text` prints them).",
        )
    return iam.account_id(value, wildcard=not key_policy)


def _sizes(documents: dict[str, Any]) -> dict[str, int]:
    """Each IAM policy's length as IAM counts it (no whitespace outside strings)."""
    return {
        name: len(json.dumps(document, separators=(",", ":")))
        for name, document in documents.items()
        if name != KEY_POLICY
    }
