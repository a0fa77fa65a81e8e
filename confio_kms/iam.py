"""Least-privilege IAM policies for the configured aliases, region and SSM prefix.

Two documents: ``runtime`` (what signing needs) and ``administration`` (what
kms_setup, kms_rotate and deletion need besides). Keys are matched by alias with the
``kms:ResourceAliases`` condition, so the policies survive rotation to a new key.
Three actions are called by AWS on the caller's behalf and so never appear among the
library's own requests: ``kms:Decrypt`` and ``kms:Encrypt`` (SSM, for SecureString
parameters) and ``ssm:AddTagsToResource`` (PutParameter with tags).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .validation import staging_name

VERSION = "2012-10-17"
KEY_ADMIN_ACTIONS = [
    "kms:TagResource",
    "kms:DescribeKey",
    "kms:ListResourceTags",
    "kms:GetPublicKey",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:EnableKey",
]
# Called by AWS on the caller's behalf, never by the library itself.
SERVER_SIDE_ACTIONS = {"kms:Decrypt", "kms:Encrypt", "ssm:AddTagsToResource"}


def policies(
    names: Sequence[str], region: str, ssm_prefix: str, account_id: str = "*"
) -> dict[str, dict[str, Any]]:
    """The runtime and administration policy documents for ``names`` (alias names)."""
    arn = f"arn:aws:{{service}}:{region}:{account_id}:"
    keys = arn.format(service="kms") + "key/*"
    aliases = [f"alias/{n}" for n in names]
    by_alias = {"ForAnyValue:StringEquals": {"kms:ResourceAliases": aliases}}
    parameters = [
        arn.format(service="ssm") + f"parameter{ssm_prefix}/{n}/private-key*" for n in names
    ]
    via_ssm = {"kms:ViaService": f"ssm.{region}.amazonaws.com"}
    runtime = [
        _statement("KeyMetadata", ["kms:DescribeKey", "kms:ListResourceTags"], keys, by_alias),
        _statement("EnvelopeKeyParameters", ["ssm:GetParameter"], parameters),
        _statement(
            "EnvelopeKeyDecryptViaSSM",
            ["kms:Decrypt"],
            keys,
            {**by_alias, "StringEquals": via_ssm},
        ),
        _statement("NativeKeySigning", ["kms:Sign", "kms:GetPublicKey"], keys, by_alias),
    ]
    alias_arns = [
        arn.format(service="kms") + f"alias/{alias}"
        for n in names
        for alias in (n, staging_name(n))
    ]
    administration = [
        _statement("ListAliases", ["kms:ListAliases"], "*"),
        # CreateKey with tags needs TagResource not restricted to particular keys; both
        # are limited to requests that tag the new key ManagedBy=confio-kms.
        _statement(
            "CreateManagedKeys",
            ["kms:CreateKey", "kms:TagResource"],
            "*",
            {"StringEquals": {"aws:RequestTag/ManagedBy": "confio-kms"}},
        ),
        _statement(
            "ManageAliases",
            ["kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"],
            [*alias_arns, keys],
        ),
        # New keys have no alias yet when they are tagged, so they match by tag;
        # keys of the old setup scripts (no ManagedBy tag) match by alias.
        _statement(
            "ManageManagedKeys",
            KEY_ADMIN_ACTIONS,
            keys,
            {"StringEquals": {"aws:ResourceTag/ManagedBy": "confio-kms"}},
        ),
        _statement("ManageAliasedKeys", KEY_ADMIN_ACTIONS, keys, by_alias),
        _statement(
            "WriteKeyParameters",
            ["ssm:PutParameter", "ssm:GetParameter", "ssm:AddTagsToResource"],
            parameters,
        ),
        _statement("EncryptParametersViaSSM", ["kms:Encrypt"], keys, {"StringEquals": via_ssm}),
    ]
    return {
        "runtime": {"Version": VERSION, "Statement": runtime},
        "administration": {"Version": VERSION, "Statement": administration},
    }


def actions(document: dict[str, Any]) -> set[str]:
    return {a for statement in document["Statement"] for a in statement["Action"]}


def _statement(
    sid: str, actions: list[str], resource: str | list[str], condition: dict[str, Any] | None = None
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": actions,
        "Resource": resource,
    }
    if condition:
        statement["Condition"] = condition
    return statement
