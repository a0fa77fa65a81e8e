"""The keys interrupted creations left in the account (``key.unfinished``).

``kms_setup`` marks each key it makes ``CreationState=pending:<alias>`` until its last
step (``confio_kms.lifecycle.recovery``); a key still marked is an *orphan* (no alias:
billed, signs for nobody; ``warn``) or sits behind a *stuck alias* (the alias cannot
sign; ``fail``). The fix is the ``kms_setup`` rerun that finishes or cleans it up, or,
for an orphan whose alias another key holds (a rerun would refuse the alias), the
deletion of that key. Only keys tagged ``ManagedBy=confio-kms`` are judged: the old
scripts' keys and other applications' are never reported.

Requests: ``recovery.scan`` over the whole account: one ``ListAliases`` per 100 aliases,
one ``ListKeys`` per 1,000 keys, one ``ListResourceTags`` per customer key, then one
``DescribeKey`` and one ``DescribeParameters`` per unfinished key (no parameter read for
a native key).
"""

from __future__ import annotations

import shlex

from confio_kms.common import exceptions as exc
from confio_kms.core.keys import NATIVE
from confio_kms.lifecycle import recovery
from confio_kms.lifecycle.recovery import Unfinished
from confio_kms.ops.doctor.report import Finding, Status, unknown
from confio_kms.ops.doctor.state import Checkup

CHECK = "key.unfinished"


def check_unfinished(doctor: Checkup) -> list[Finding]:
    """One finding per unfinished key, or one ``pass`` when there is none."""
    try:
        found = recovery.scan(doctor.aws, doctor.conf.ssm_prefix, None)
    except exc.ConfioKMSError as error:
        return [unknown(CHECK, doctor.aws.region, error)]
    if not found.unfinished:
        unread = (
            f"; {found.unreadable} key(s) could not be read (not this library's, or just deleted)"
            if found.unreadable
            else ""
        )
        message = (
            "No orphan key or stuck alias: every key tagged ManagedBy=confio-kms is "
            f"complete{unread}."
        )
        return [Finding(CHECK, Status.PASS, message, subject=doctor.aws.region)]
    return [_finding(doctor, item, found.taken) for item in found.unfinished]


def _finding(doctor: Checkup, item: Unfinished, taken: frozenset[str]) -> Finding:
    region = doctor.aws.region
    if item.aliased:
        message = (
            f"Stuck alias: {item.alias} points at KMS key {item.key_id}, whose creation did "
            f"not complete ({item.describe()}): the alias cannot sign."
        )
        return Finding(CHECK, Status.FAIL, message, _rerun(item), item.alias)
    message = (
        f"Orphan key: KMS key {item.key_id} ({item.describe()}) is billed and signs for nobody."
    )
    if item.name in taken:
        delete = (
            f"aws kms schedule-key-deletion --region {shlex.quote(region)} --key-id "
            f"{item.key_id} --pending-window-in-days 7"
        )
        fix = (
            f"{item.alias} is held by another key, so a kms_setup rerun would refuse it: "
            f"schedule this key's deletion (cancellable for 7 days): `{delete}`."
        )
        return Finding(CHECK, Status.WARN, message, fix, item.alias)
    return Finding(CHECK, Status.WARN, message, _rerun(item), item.alias)


def _rerun(item: Unfinished) -> str:
    """The ``kms_setup`` rerun that finishes or cleans up ``item``."""
    network = f" --network {shlex.quote(item.network)}" if item.network else ""
    command = f"manage.py kms_setup --create-new --alias {shlex.quote(item.name)}{network}"
    if item.kind == NATIVE:
        return f"Finish it (it needs no backup): `{command} --native`."
    return (
        f"Rerun the interrupted setup: `{command} --mnemonic-out FILE` with FILE the "
        "interrupted run's backup file finishes the key; without it the key is cleaned up "
        f"(deletion in 7 days, cancellable) and a new one made. An interrupted import: "
        f"`manage.py kms_setup --import-existing --alias {shlex.quote(item.name)}{network}` "
        "with the same mnemonic."
    )
