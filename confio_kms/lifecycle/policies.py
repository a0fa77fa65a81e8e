"""Least-privilege IAM policies for the configured aliases, region and SSM prefix, and
a key policy that makes deleting or disabling a confio key take MFA.

``policies`` returns two identity policies: ``runtime`` (what signing needs) and
``administration`` (what kms_setup, kms_rotate and deletion need besides). Keys are
matched by alias with the ``kms:ResourceAliases`` condition, so the policies survive
rotation to a new key; keys created by confio-kms are also matched by their
``ManagedBy=confio-kms`` tag, which the administration policy can set only in
CreateKey: an explicit Deny stops it from adding, changing or removing that tag on
any existing key, so it cannot make another application's key look like ours.

Three actions are called by AWS on the caller's behalf and so never appear among the
library's own requests: ``kms:Decrypt`` and ``kms:Encrypt`` (SSM, for SecureString
parameters) and ``ssm:AddTagsToResource`` (PutParameter with tags).

The runtime policy allows ``kms:Decrypt`` on each envelope key only with the
encryption context Parameter Store encrypts that key's parameter under:
``kms:EncryptionContext:PARAMETER_ARN`` equal to the ARN of ``<prefix>/<name>/private-key``
or of a rotated ``<prefix>/<name>/private-key-*``. SSM sends that context when it
decrypts on the caller's behalf (GetParameter with decryption), and so does a direct
KMS Decrypt of the parameter's ciphertext, so the one statement covers both; a
``kms:ViaService`` condition would refuse the direct one. Nothing else can be
decrypted with the key by the runtime identity: another ciphertext under another
context is refused.

``key_policy`` returns the key policy for the confio keys: the account keeps full
administration through IAM (the key never becomes unmanageable), deleting, disabling
and changing the key policy need an MFA session, and a native key (no backup exists)
can be scheduled for deletion only by the break-glass role, with MFA.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confio_kms.algorand.validation import Alias, parameter_path, staging_name
from confio_kms.common.exceptions import ConfigurationError
from confio_kms.core.keys import MANAGED_BY, TAG_MANAGED_BY

VERSION = "2012-10-17"
# The only key spec of envelope keys; anything else (native Ed25519) has no backup.
ENVELOPE_KEY_SPEC = "SYMMETRIC_DEFAULT"
# The role that alone may schedule a native key's deletion (with MFA), by key policy.
BREAK_GLASS_ROLE = "confio-kms-break-glass"
ALIAS_ACTIONS = ["kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"]
KEY_ADMIN_ACTIONS = [
    "kms:TagResource",
    "kms:DescribeKey",
    "kms:ListResourceTags",
    "kms:GetPublicKey",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:EnableKey",
    # The key's side of an alias change (the alias's side is in ManageAliases).
    *ALIAS_ACTIONS,
]
# Actions that need an MFA session on the confio keys (identity and key policy).
MFA_ACTIONS = ["kms:ScheduleKeyDeletion", "kms:DisableKey"]
# Called by AWS on the caller's behalf, never by the library itself.
SERVER_SIDE_ACTIONS = {"kms:Decrypt", "kms:Encrypt", "ssm:AddTagsToResource"}
# The encryption context key Parameter Store encrypts a SecureString under (its ARN),
# and the condition key that reads it.
PARAMETER_ARN = "PARAMETER_ARN"
PARAMETER_ARN_CONTEXT = f"kms:EncryptionContext:{PARAMETER_ARN}"
_ACCOUNT_ID = re.compile(r"[0-9]{12}")
# Where `kms_policy --key-policy`'s printed commands save the key policy, and apply it from.
KEY_POLICY_FILE = "confio-kms-key-policy.json"
_NO_MFA = {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}


def account_id(value: object, *, wildcard: bool = False) -> str:
    """Return ``value`` if it is a 12-digit AWS account id (or ``*`` when allowed)."""
    if wildcard and value == "*":
        return "*"
    if not isinstance(value, str) or not _ACCOUNT_ID.fullmatch(value):
        allowed = "12 digits, or * for any account" if wildcard else "12 digits"
        raise ConfigurationError(
            f"{value!r} is not an AWS account id ({allowed}).",
            fix="Pass the 12 digits of the account that owns the keys, for example "
            "--account-id 123456789012 (`aws sts get-caller-identity --query Account "
            "--output text` prints them).",
        )
    return value


@dataclass(frozen=True)
class _Scope:
    """The resources and conditions the policies of a set of aliases are written in."""

    keys: str  # every key of the account in the region
    all_keys: str  # every key of the account, in any region: where the Denies apply
    by_alias: dict[str, Any]
    by_tag: dict[str, Any]
    parameters: list[str]
    decrypts: dict[str, list[str]]  # alias name -> the ARNs its key's parameters may have
    via_ssm: dict[str, str]
    alias_arns: list[str]


def policies(
    names: Sequence[str], region: str, ssm_prefix: str, account_id: str = "*"
) -> dict[str, dict[str, Any]]:
    """The runtime and administration policy documents for ``names`` (alias names)."""
    arn = f"arn:aws:{{service}}:{region}:{account_id}:"
    scope = _Scope(
        keys=arn.format(service="kms") + "key/*",
        all_keys=f"arn:aws:kms:*:{account_id}:key/*",
        by_alias={
            "ForAnyValue:StringEquals": {"kms:ResourceAliases": [str(Alias(n)) for n in names]}
        },
        by_tag={"StringEquals": {f"aws:ResourceTag/{TAG_MANAGED_BY}": MANAGED_BY}},
        parameters=[
            arn.format(service="ssm") + f"parameter{ssm_prefix}/{n}/private-key*" for n in names
        ],
        decrypts={n: parameter_arns(n, region, ssm_prefix, account_id) for n in names},
        via_ssm={"kms:ViaService": f"ssm.{region}.amazonaws.com"},
        alias_arns=[
            arn.format(service="kms") + str(Alias(alias))
            for n in names
            for alias in (n, staging_name(n))
        ],
    )
    return {
        "runtime": {"Version": VERSION, "Statement": _runtime(scope)},
        "administration": {
            "Version": VERSION,
            "Statement": [*_administration(scope), *_denials(scope)],
        },
    }


def parameter_arns(name: str, region: str, ssm_prefix: str, account_id: str = "*") -> list[str]:
    """The ARNs the envelope parameters of alias ``name`` may have (``StringLike``
    patterns): the parameter the key was created or imported with, and a rotated one."""
    parameter = f"arn:aws:ssm:{region}:{account_id}:parameter{parameter_path(ssm_prefix, name)}"
    return [parameter, f"{parameter}-*"]


def _runtime(scope: _Scope) -> list[dict[str, Any]]:
    """Signing only: key metadata, the envelope parameter and its decrypt, native Sign."""
    return [
        _statement(
            "KeyMetadata", ["kms:DescribeKey", "kms:ListResourceTags"], scope.keys, scope.by_alias
        ),
        _statement("EnvelopeKeyParameters", ["ssm:GetParameter"], scope.parameters),
        # One statement per alias: its key decrypts its own parameters only.
        *(
            _statement(
                f"EnvelopeKeyDecrypt{index}",
                ["kms:Decrypt"],
                scope.keys,
                {
                    "ForAnyValue:StringEquals": {"kms:ResourceAliases": [str(Alias(name))]},
                    "StringLike": {PARAMETER_ARN_CONTEXT: arns},
                },
            )
            for index, (name, arns) in enumerate(scope.decrypts.items(), start=1)
        ),
        _statement(
            "NativeKeySigning", ["kms:Sign", "kms:GetPublicKey"], scope.keys, scope.by_alias
        ),
    ]


def _administration(scope: _Scope) -> list[dict[str, Any]]:
    """Creating, importing, rotating and deleting the aliases' keys."""
    return [
        # ListKeys: finding keys an interrupted creation left without alias (recovery.py).
        _statement("ListAliases", ["kms:ListAliases", "kms:ListKeys"], "*"),
        # CreateKey with tags is authorized as kms:TagResource on no particular key
        # (resource "*"), so this statement cannot name scope.keys; it only allows requests
        # that tag ManagedBy=confio-kms. On an existing key such a request is refused
        # by ProtectManagedByTag below: only a new key can get the tag.
        _statement(
            "CreateManagedKeys",
            ["kms:CreateKey", "kms:TagResource"],
            "*",
            {"StringEquals": {f"aws:RequestTag/{TAG_MANAGED_BY}": MANAGED_BY}},
        ),
        # The alias's side of CreateAlias/UpdateAlias/DeleteAlias: only the configured
        # aliases and their staging aliases. The key's side (each key the alias leaves
        # or points to must be ours) is in the two statements that follow.
        _statement("ManageAliases", ALIAS_ACTIONS, scope.alias_arns),
        # New scope.keys have no alias yet when they are tagged, so they match by tag;
        # scope.keys of the old setup scripts (no ManagedBy tag) match by alias.
        _statement("ManageManagedKeys", KEY_ADMIN_ACTIONS, scope.keys, scope.by_tag),
        _statement("ManageAliasedKeys", KEY_ADMIN_ACTIONS, scope.keys, scope.by_alias),
        # A new parameter only: the library never overwrites one. A request without
        # Overwrite has no ssm:Overwrite key, hence ...IfExists.
        _statement(
            "CreateKeyParameters",
            ["ssm:PutParameter"],
            scope.parameters,
            {"StringEqualsIfExists": {"ssm:Overwrite": "false"}},
        ),
        _statement(
            "ReadAndTagKeyParameters",
            ["ssm:GetParameter", "ssm:AddTagsToResource"],
            scope.parameters,
        ),
        # SSM encrypts a new parameter with the new key, which carries the tag.
        _statement(
            "EncryptParametersViaSSM",
            ["kms:Encrypt"],
            scope.keys,
            {"StringEquals": {**scope.by_tag["StringEquals"], **scope.via_ssm}},
        ),
    ]


def _denials(scope: _Scope) -> list[dict[str, Any]]:
    """Explicit denials: they hold whatever else the role is granted."""
    return [
        _statement(
            "ProtectManagedByTag",
            ["kms:TagResource", "kms:UntagResource"],
            scope.all_keys,
            # Tag scope.keys in conditions are matched regardless of case, so "managedby"
            # is refused as well.
            {"ForAnyValue:StringEqualsIgnoreCase": {"aws:TagKeys": [TAG_MANAGED_BY]}},
            effect="Deny",
        ),
        _statement(
            "NeverOverwriteKeyParameters",
            ["ssm:PutParameter"],
            scope.parameters,
            {"StringEquals": {"ssm:Overwrite": "true"}},
            effect="Deny",
        ),
        _statement(
            "DeleteOrDisableOnlyWithMFA", MFA_ACTIONS, scope.all_keys, _NO_MFA, effect="Deny"
        ),
        # Fails closed: a request without kms:KeySpec is treated as a native key.
        _statement(
            "NeverDeleteNativeKeys",
            ["kms:ScheduleKeyDeletion"],
            scope.all_keys,
            {"StringNotEquals": {"kms:KeySpec": ENVELOPE_KEY_SPEC}},
            effect="Deny",
        ),
    ]


def key_policy(account: str, break_glass_role: str = BREAK_GLASS_ROLE) -> dict[str, Any]:
    """The key policy for the confio keys of ``account`` (envelope and native alike).

    - The account keeps ``kms:*`` through IAM, as in KMS's default key policy, so the
      key never becomes unmanageable and the IAM policies above keep working.
    - ScheduleKeyDeletion, DisableKey and PutKeyPolicy are denied to everyone (the
      account's root user included) without MFA: ``BoolIfExists`` because a request
      signed with long-term access keys carries no ``aws:MultiFactorAuthPresent``.
    - ScheduleKeyDeletion of any key that is not ``SYMMETRIC_DEFAULT`` (native keys:
      no backup exists) is denied to every principal but ``break_glass_role``, which
      the key policy itself allows to schedule and cancel deletion, with MFA.

    The role must exist when the policy is put (KMS checks principals).
    """
    account = account_id(account)
    break_glass = f"arn:aws:iam::{account}:role/{break_glass_role}"
    everyone = {"AWS": "*"}
    statements = [
        _statement(
            "EnableIAMPolicies",
            ["kms:*"],
            "*",
            principal={"AWS": f"arn:aws:iam::{account}:root"},
        ),
        _statement(
            "BreakGlassDeletesWithMFA",
            ["kms:DescribeKey", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"],
            "*",
            {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
            principal={"AWS": break_glass},
        ),
        *_only_with_mfa(everyone),
        # Two conditions, both must hold for the Deny: the key is not an envelope key
        # (a missing kms:KeySpec counts as not: fails closed) and the caller is not
        # the break-glass role.
        _statement(
            "OnlyBreakGlassDeletesNativeKeys",
            ["kms:ScheduleKeyDeletion"],
            "*",
            {
                "StringNotEquals": {"kms:KeySpec": ENVELOPE_KEY_SPEC},
                "ArnNotEquals": {"aws:PrincipalArn": break_glass},
            },
            effect="Deny",
            principal=everyone,
        ),
    ]
    return {"Version": VERSION, "Id": "confio-kms", "Statement": statements}


def key_policy_account(value: object) -> str:
    """A key policy account (``Options.key_policy_account``,
    ``CONFIO_KMS_KEY_POLICY_ACCOUNT``): a 12-digit account id, or "" for none; anything
    else is a ValueError."""
    text = str(value or "").strip()
    if text and not _ACCOUNT_ID.fullmatch(text):
        raise ValueError(f"{value!r} is not a 12-digit AWS account id")
    return text


def creation_params(account: str) -> dict[str, str]:
    """Extra CreateKey parameters: the key policy for ``account`` (the options' key
    policy account) when there is one, so deletion needs MFA from the key's first moment."""
    if not account:
        return {}
    try:
        checked = key_policy_account(account)
    except ValueError as error:
        raise ConfigurationError(
            f"The key policy account is invalid: {error}; nothing was created.",
            fix="Set Options.key_policy_account (CONFIO_KMS_KEY_POLICY_ACCOUNT) to the "
            "12-digit AWS account id, or leave it empty.",
        ) from None
    return {"Policy": json.dumps(key_policy(checked))}


def _only_with_mfa(everyone: dict[str, Any]) -> list[dict[str, Any]]:
    """The key policy's denials of deletion, disabling and policy changes without MFA."""
    return [
        _statement(
            "DeleteOrDisableOnlyWithMFA",
            MFA_ACTIONS,
            "*",
            _NO_MFA,
            effect="Deny",
            principal=everyone,
        ),
        _statement(
            "ChangeKeyPolicyOnlyWithMFA",
            ["kms:PutKeyPolicy"],
            "*",
            _NO_MFA,
            effect="Deny",
            principal=everyone,
        ),
    ]


def actions(document: dict[str, Any]) -> set[str]:
    """The actions a document allows (its Deny statements only restrict them)."""
    return {
        action
        for statement in document["Statement"]
        if statement["Effect"] == "Allow"
        for action in statement["Action"]
    }


def _statement(
    sid: str,
    actions: list[str],
    resource: str | list[str],
    condition: dict[str, Any] | None = None,
    *,
    effect: str = "Allow",
    principal: dict[str, Any] | None = None,
) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": effect}
    if principal is not None:
        statement["Principal"] = principal
    statement.update({"Action": actions, "Resource": resource})
    if condition:
        statement["Condition"] = condition
    return statement


def put_key_policy_command(region: str, key_id: str) -> str:
    """The AWS CLI command that puts the key policy saved in ``KEY_POLICY_FILE`` on
    ``key_id`` (PutKeyPolicy takes a key id or ARN, not an alias)."""
    return shlex.join(
        [
            "aws", "kms", "put-key-policy", "--region", region, "--key-id", key_id,
            "--policy-name", "default", "--policy", f"file://{KEY_POLICY_FILE}",
        ]
    )  # fmt: skip
