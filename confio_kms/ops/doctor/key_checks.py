"""The key checks of each configured alias: it exists, its state, its network tag, the
address it signs for, and its key policy's MFA requirement."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from confio_kms.algorand import networks
from confio_kms.algorand.validation import Alias
from confio_kms.common import exceptions as exc
from confio_kms.common import progress
from confio_kms.core import keys, kinds
from confio_kms.lifecycle import policies as iam
from confio_kms.ops.doctor.report import Finding, Status, unknown
from confio_kms.ops.doctor.state import Checkup, Key, Target, arn_account, kind
from confio_kms.ops.permissions import WITHOUT_MFA, denied_without_mfa


def check_keys(doctor: Checkup) -> list[Finding]:
    found: list[Finding] = []
    for target in doctor.targets:
        progress.step(f"checking {Alias(target.name)}")
        found += _key(doctor, target)
    return found


def _key(doctor: Checkup, target: Target) -> list[Finding]:
    alias = str(Alias(target.name))
    named = " and ".join(target.settings)
    try:
        metadata = keys.describe_key(doctor.aws, target.name)
    except exc.AliasNotFoundError as error:
        if not target.required:
            return []  # the other network's default alias, never configured
        return [
            Finding(
                "key.exists",
                Status.FAIL,
                f"{named} names {alias}: {error.message}",
                error.fix or "",
                alias,
            )
        ]
    except exc.ConfioKMSError as error:
        return [unknown("key.exists", alias, error)]
    key = Key(target, metadata)
    doctor.found[target.name] = key
    doctor.account = doctor.account or arn_account(key.arn)
    found = [
        Finding(
            "key.exists",
            Status.PASS,
            f"{alias} ({named}) points at KMS key {key.key_id} ({kind(metadata)}).",
            subject=alias,
        ),
        _state(alias, metadata),
    ]
    try:
        key.tags = keys.read_tags(doctor.aws, key.key_id, alias)
    except exc.ConfioKMSError as error:
        found += [unknown("key.network", alias, error), unknown("key.address", alias, error)]
    else:
        found.append(_network(target, alias, key.tags, doctor.conf.network_of_alias))
        found.append(_address(doctor, key, alias))
    found.append(_key_policy(doctor, key, alias))
    return found


def _address(doctor: Checkup, key: Key, alias: str) -> Finding:
    assert key.tags is not None
    try:
        key.info = kinds.key_info(key.target.name, key.metadata, key.tags, doctor.conf.options)
    except exc.NotAnAlgorandKeyError as error:
        return Finding("key.address", Status.FAIL, error.message, error.fix or "", alias)
    address = key.info.address
    wrong = [(name, value) for name, value in key.target.expected if value != address]
    if wrong:
        name, value = wrong[0]
        return Finding(
            "key.address",
            Status.FAIL,
            f"{name} is {value} but {alias} signs for {address}.",
            f"Remove {name} (the address comes from KMS) or point "
            f"{' / '.join(key.target.settings)} at the key of {value} (`manage.py kms_list`).",
            alias,
        )
    if key.target.expected:
        said = " and ".join(name for name, _ in key.target.expected)
        return Finding(
            "key.address",
            Status.PASS,
            f"{alias} signs for {address}, as {said} says.",
            subject=alias,
        )
    return Finding(
        "key.address",
        Status.PASS,
        f"{alias} signs for {address} (no address setting to compare: it comes from KMS).",
        subject=alias,
    )


def _key_policy(doctor: Checkup, key: Key, alias: str) -> Finding:
    try:
        answer = doctor.aws.call(
            "kms", "GetKeyPolicy", alias, KeyId=key.key_id, PolicyName="default"
        )
        policy = json.loads(answer["Policy"])
    except exc.ConfioKMSError as error:
        return unknown("key.mfa", alias, error)
    except (ValueError, KeyError, TypeError):
        return Finding(
            "key.mfa",
            Status.UNKNOWN,
            f"The key policy of {alias} is not readable JSON.",
            subject=alias,
        )
    if isinstance(policy, dict):
        key.policy = policy
    return _mfa(policy, alias, key, doctor.aws.region)


# A multi-Region primary key scheduled for deletion while replica keys remain.
PENDING_REPLICA_DELETION = "PendingReplicaDeletion"


def _state(alias: str, metadata: Mapping[str, Any]) -> Finding:
    key_id, state = metadata["KeyId"], str(metadata.get("KeyState", "?"))
    if state == "Enabled":
        return Finding("key.state", Status.PASS, f"The key of {alias} is Enabled.", subject=alias)
    cancel = (
        f"Cancel the deletion: `aws kms cancel-key-deletion --key-id {key_id}` (the key is "
        f"then Disabled), then `aws kms enable-key --key-id {key_id}`."
    )
    if state == keys.PENDING_DELETION:
        when = metadata.get("DeletionDate")
        on = f" (deleted on {when:%Y-%m-%d})" if isinstance(when, datetime) else ""
        return Finding(
            "key.state",
            Status.FAIL,
            f"The key of {alias} ({key_id}) is pending deletion{on}: signing fails.",
            cancel,
            alias,
        )
    if state == PENDING_REPLICA_DELETION:
        # A multi-Region primary key scheduled for deletion: its waiting period starts
        # once its replica keys are deleted; waiting never makes it Enabled again.
        days = metadata.get("PendingDeletionWindowInDays")
        period = f"its waiting period of {days} days" if days else "its waiting period"
        return Finding(
            "key.state",
            Status.FAIL,
            f"The key of {alias} ({key_id}) is a multi-Region primary key scheduled for "
            f"deletion (PendingReplicaDeletion): {period} starts when its last replica key "
            "is deleted, and it cannot sign until the deletion is cancelled: signing fails.",
            cancel,
            alias,
        )
    return Finding(
        "key.state",
        Status.FAIL,
        f"The key of {alias} ({key_id}) is {state}, not Enabled: signing fails.",
        f"Enable it: `aws kms enable-key --key-id {key_id}`."
        if state == "Disabled"
        else "Wait for the key to become Enabled, or point the alias at an Enabled key.",
        alias,
    )


def _network(
    target: Target, alias: str, tags: Mapping[str, str], network_of_alias: Callable[[str], str]
) -> Finding:
    raw = tags.get(keys.TAG_NETWORK, "")
    tagged = keys.tagged_network(dict(tags))
    settings = " / ".join(target.settings)
    tag_it = (
        f"Tag the key: `aws kms tag-resource --key-id KEY_ID --tags "
        f"TagKey={keys.TAG_NETWORK},TagValue={target.network}`."
    )
    if raw and not tagged:
        return Finding(
            "key.network",
            Status.FAIL,
            f"The key of {alias} is tagged {keys.TAG_NETWORK}={raw!r}, which is not a network.",
            f"Correct the tag to {target.network} if the key is a {target.network} key.",
            alias,
        )
    if tagged == target.network:
        return Finding(
            "key.network",
            Status.PASS,
            f"The key of {alias} is tagged {keys.TAG_NETWORK}={tagged}, as {settings} expects.",
            subject=alias,
        )
    if tagged:
        return Finding(
            "key.network",
            Status.FAIL,
            f"The key of {alias} is tagged {keys.TAG_NETWORK}={tagged}, but {settings} names it "
            f"for {target.network}: the signing policy refuses {target.network} transactions.",
            f"Point {settings} at a {target.network} key (`manage.py kms_list`); correct the "
            "tag only if it is wrong.",
            alias,
        )
    derived = network_of_alias(target.name) or networks.UNKNOWN
    if derived == target.network:
        return Finding(
            "key.network",
            Status.WARN,
            f"The key of {alias} has no {keys.TAG_NETWORK} tag; its network ({derived}) comes "
            "from the alias name only.",
            tag_it,
            alias,
        )
    return Finding(
        "key.network",
        Status.FAIL,
        f"The key of {alias} has no {keys.TAG_NETWORK} tag and its alias stands for "
        f"{derived}, not {target.network}.",
        tag_it,
        alias,
    )


def _mfa(policy: Mapping[str, Any], alias: str, key: Key, region: str) -> Finding:
    """Whether the key policy denies deletion and disabling (and key-policy changes)
    without MFA to everyone, as ``iam.key_policy`` does."""
    covered = {action: denied_without_mfa(policy, action, key.arn) for action in _MFA_CHECKED}
    # As `kms_policy --key-policy` prints them, with the key id the doctor knows.
    save = shlex.join(
        [
            "manage.py", "kms_policy", "--key-policy",
            "--account-id", arn_account(key.arn) or "ACCOUNT",
        ]
    )  # fmt: skip
    put = iam.put_key_policy_command(region, key.key_id)
    generate = (
        f"Save confio's key policy: `{save} > {iam.KEY_POLICY_FILE}`, then apply it from an "
        f"MFA session: `{put}` (docs/install.md, step 5)."
    )
    deletion = covered["kms:ScheduleKeyDeletion"]
    if not deletion:
        return Finding(
            "key.mfa",
            Status.FAIL,
            f"The key policy of {alias} does not require MFA to schedule its deletion.",
            generate,
            alias,
        )
    gaps = []
    for action, cases in covered.items():
        if cases == WITHOUT_MFA:
            continue
        if not cases:
            gaps.append(f"{action} is not denied without MFA")
        elif "absent" not in cases:
            gaps.append(
                f"{action} is denied with Bool, so requests signed with long-term access keys "
                "(no aws:MultiFactorAuthPresent) escape it (use BoolIfExists)"
            )
        else:
            gaps.append(f"{action} is denied only to requests without the MFA key")
    if not gaps:
        return Finding(
            "key.mfa",
            Status.PASS,
            f"The key policy of {alias} denies {', '.join(_MFA_CHECKED)} without MFA, to everyone.",
            subject=alias,
        )
    return Finding(
        "key.mfa",
        Status.WARN,
        f"The key policy of {alias} requires MFA only in part: {'; '.join(gaps)}.",
        generate,
        alias,
    )


_MFA_CHECKED = (*iam.MFA_ACTIONS, "kms:PutKeyPolicy")
