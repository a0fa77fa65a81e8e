"""Creating keys without leaving half of one behind: CreateKey, CreateAlias and their
rollback.

Every creation step tells a ``Rollback`` what it may have made; on any failure the
rollback reads AWS back and undoes exactly what this attempt made (parameter deleted,
alias removed, key scheduled for deletion), and ``provisioning`` raises a
``ProvisioningError`` saying what was undone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from confio_kms.algorand.validation import Alias
from confio_kms.common import exceptions as exc
from confio_kms.common import progress
from confio_kms.core.aws import AWSClients
from confio_kms.core.keys import PENDING_DELETION, kms_tags, read_tags

logger = logging.getLogger("confio_kms.keys")

# Shortest deletion window KMS allows; used when rolling back a key nobody has used.
ROLLBACK_PENDING_DAYS = 7


@dataclass(frozen=True)
class Provisioned:
    """A key a kind has just created: its id, its own address, and its backup.

    ``backup_mnemonic`` is None for a kind whose key never leaves KMS.
    """

    key_id: str
    address: str
    backup_mnemonic: str | None = field(default=None, repr=False)


# SigV4 refuses a request whose clock is more than 5 minutes off AWS's, so a key this
# attempt made is at most that much older (by AWS's clock) than this process thinks.
CLOCK_SKEW = timedelta(minutes=5)


def may_have_applied(error: BaseException) -> bool:
    """Whether a request that failed with ``error`` may still have taken effect at AWS.

    AWS's refusals (access denied, not found, already exists, invalid state) change
    nothing. A request whose answer never arrived (a reset connection, a timeout, a
    passed deadline) may have, and so may one AWS failed with a server error.
    """
    if not isinstance(error, exc.ConfioKMSError) or isinstance(error, exc.AWSConnectionError):
        return True
    return type(error) is exc.AWSError


def _why(error: BaseException | None) -> str:
    if isinstance(error, exc.ConfioKMSError):
        return error.cause or error.message
    return type(error).__name__ if error is not None else "no error reported"


def _is_key(reference: str, key_ids: Sequence[str]) -> bool:
    """Whether a KeyId as AWS reports it (an id or an ARN) names one of ``key_ids``."""
    return any(reference == key_id or reference.endswith(f"/{key_id}") for key_id in key_ids)


def alias_target(aws: AWSClients, alias: str) -> str:
    """The key id ``alias`` points at; raises ``AliasNotFoundError`` if it does not exist."""
    target: str = aws.call("kms", "DescribeKey", alias, KeyId=alias)["KeyMetadata"]["KeyId"]
    return target


def parameter_key(aws: AWSClients, path: str) -> str | None:
    """The KeyId the SSM parameter at ``path`` is encrypted with ("" if none is
    reported); None when there is no such parameter. Never reads the value."""
    found = aws.call(
        "ssm",
        "DescribeParameters",
        path,
        ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [path]}],
    ).get("Parameters", [])
    return str(found[0].get("KeyId", "")) if found else None


def written_with(aws: AWSClients, path: str, key_id: str) -> bool:
    """Whether the parameter at ``path`` exists and is encrypted with ``key_id``: then
    it was written by the creation that made that key (nobody else knew the key)."""
    try:
        reference = parameter_key(aws, path)
    except exc.ConfioKMSError:
        return False
    return reference is not None and _is_key(reference, [key_id])


@dataclass(frozen=True)
class _KeySearch:
    """A CreateKey whose answer was lost or came after retries: the key(s) it made
    carry exactly ``tags`` and were created after ``since``."""

    tags: dict[str, str]
    since: datetime


class Rollback:
    """Undoes a creation in progress by reading what exists, if a later step fails.

    Each step says what it may have made before relying on an answer: ``create_key``
    the key (by id once known; by the tags it was sent with when its answer was lost,
    or came after retries that may each have made one), ``create_alias`` the alias,
    ``expect_parameter`` the SSM parameter. ``run`` then looks at AWS: it schedules the
    deletion of every key this attempt made, removes the alias and deletes the
    parameter only where they lead to one of those keys, and checks each undo by
    reading the state again. What belongs to no key of this attempt is left alone.
    """

    def __init__(self) -> None:
        # What the last ``run`` found and left as it was (not made by this attempt).
        self.kept: list[str] = []
        self._forget()

    def _forget(self) -> None:
        self._aws: AWSClients | None = None
        self._key_ids: list[str] = []
        self._searches: list[_KeySearch] = []
        self._aliases: list[str] = []
        self._parameters: list[str] = []

    def key_created(self, aws: AWSClients, key_id: str) -> None:
        self._aws = aws
        if key_id not in self._key_ids:
            self._key_ids.append(key_id)

    def look_for_keys(self, aws: AWSClients, tags: dict[str, str], since: datetime) -> None:
        self._aws = aws
        self._searches.append(_KeySearch(dict(tags), since))

    def expect_alias(self, aws: AWSClients, alias: str) -> None:
        self._aws = aws
        if alias not in self._aliases:
            self._aliases.append(alias)

    def expect_parameter(self, aws: AWSClients, path: str) -> None:
        self._aws = aws
        if path not in self._parameters:
            self._parameters.append(path)

    def run(self) -> tuple[list[str], list[str]]:
        """Undo; return (what was undone, what could not be); ``kept`` lists what
        was found and left as it was."""
        done: list[str] = []
        failed: list[str] = []
        self.kept = []
        aws = self._aws
        if aws is not None:
            ours = list(self._key_ids)
            lost: list[str] = []
            for search in self._searches:
                found, problem = _find_keys(aws, search, self._aliases, exclude=())
                lost += [key_id for key_id in found if key_id not in ours + lost]
                if problem:
                    failed.append(problem)
            ours += lost
            # Newest first: the parameter, the alias, then the keys they lead to.
            outcomes = [
                *(_undo_parameter(aws, path, ours) for path in self._parameters),
                *(_undo_alias(aws, alias, ours) for alias in self._aliases),
                *(_undo_key(aws, key_id, key_id in lost) for key_id in ours),
            ]
            for outcome, text in outcomes:
                if outcome == "done":
                    done.append(text)
                elif outcome == "failed":
                    failed.append(text)
                elif outcome == "kept":
                    self.kept.append(text)
        self._forget()  # nothing is undone twice
        return done, failed

    def discard_duplicates(self, key_id: str) -> None:
        """After a successful creation: schedule the deletion of other keys made by a
        CreateKey whose answer came only after retries (each attempt may have made one).
        Problems are logged: the creation itself succeeded."""
        aws, searches = self._aws, self._searches
        self._forget()
        if aws is None:
            return
        for search in searches:
            found, problem = _find_keys(aws, search, [], exclude=(key_id,))
            if problem:
                logger.warning("After creating KMS key %s: %s", key_id, problem)
            for duplicate in found:
                outcome, text = _undo_key(aws, duplicate, True)
                log = logger.info if outcome == "done" else logger.warning
                log("After creating KMS key %s, an extra key was found: %s", key_id, text)


def _find_keys(
    aws: AWSClients, search: _KeySearch, own_aliases: Sequence[str], exclude: Sequence[str]
) -> tuple[list[str], str]:
    """The keys a CreateKey made whose answer was lost, and what kept the search from
    being complete ("" if nothing): keys tagged exactly as sent, created since it was
    sent, not pending deletion and named by no alias but this attempt's."""
    since = search.since - CLOCK_SKEW
    tags = ", ".join(f"{key}={value}" for key, value in search.tags.items())
    look = f"look for keys tagged exactly {tags}, created since {since:%Y-%m-%d %H:%M} UTC"
    try:
        aliased: dict[str, set[str]] = {}
        for entry in aws.paginate("kms", "ListAliases", "aliases", "Aliases"):
            if entry.get("TargetKeyId"):
                aliased.setdefault(entry["TargetKeyId"], set()).add(entry["AliasName"])
        listed = [entry["KeyId"] for entry in aws.paginate("kms", "ListKeys", "keys", "Keys")]
    except exc.ConfioKMSError as error:
        return [], (
            f"could not look for a KMS key made by a CreateKey whose answer was lost "
            f"({_why(error)}): {look}, and schedule their deletion"
        )
    found: list[str] = []
    unreadable = 0
    for key_id in listed:
        if key_id in exclude or aliased.get(key_id, set()) - set(own_aliases):
            continue
        try:
            if read_tags(aws, key_id, key_id) != search.tags:
                continue
            metadata = aws.call("kms", "DescribeKey", key_id, KeyId=key_id)["KeyMetadata"]
        except exc.ConfioKMSError:
            unreadable += 1
            continue
        created = metadata.get("CreationDate")
        if metadata.get("KeyState") == PENDING_DELETION or (
            isinstance(created, datetime) and created < since
        ):
            continue
        found.append(key_id)
    if unreadable and not found:
        return [], (
            f"could not read {unreadable} KMS key(s) while looking for a key made by a "
            f"CreateKey whose answer was lost: {look}, and schedule their deletion"
        )
    return found, ""


def _undo_key(aws: AWSClients, key_id: str, lost: bool) -> tuple[str, str]:
    """Schedule ``key_id``'s deletion unless it is; report the state read afterwards."""
    label = f"KMS key {key_id}" + (" (its CreateKey answer was lost)" if lost else "")

    def state() -> str:
        metadata = aws.call("kms", "DescribeKey", key_id, KeyId=key_id)["KeyMetadata"]
        return str(metadata.get("KeyState", ""))

    error: exc.ConfioKMSError | None = None
    try:
        if state() != PENDING_DELETION:
            aws.call(
                "kms",
                "ScheduleKeyDeletion",
                key_id,
                KeyId=key_id,
                PendingWindowInDays=ROLLBACK_PENDING_DAYS,
            )
    except exc.ConfioKMSError as failure:
        error = failure
    try:
        now = state()
    except exc.ConfioKMSError as failure:
        return "failed", (
            f"{label}: could not check that it is scheduled for deletion ({_why(error or failure)})"
        )
    if now == PENDING_DELETION:
        return "done", f"{label} scheduled for deletion in {ROLLBACK_PENDING_DAYS} days"
    return "failed", f"{label} is {now or 'in an unknown state'}, not scheduled for deletion " + (
        f"({_why(error)})" if error else "(ScheduleKeyDeletion did not take effect)"
    )


def _undo_alias(aws: AWSClients, alias: str, ours: Sequence[str]) -> tuple[str, str]:
    """Remove ``alias`` if it points at a key of this attempt; report what was read."""
    try:
        target = alias_target(aws, alias)
    except exc.AliasNotFoundError:
        return "", ""
    except exc.ConfioKMSError as failure:
        return "failed", (
            f"could not check {alias} ({_why(failure)}): remove it if it points at "
            f"{' or '.join(ours) or 'a key pending deletion'}"
        )
    if target not in ours:
        return "kept", f"{alias} points at key {target}, which this attempt did not make"
    error: exc.ConfioKMSError | None = None
    try:
        aws.call("kms", "DeleteAlias", alias, AliasName=alias)
    except exc.ConfioKMSError as failure:
        error = failure
    try:
        still = alias_target(aws, alias)
    except exc.AliasNotFoundError:
        return "done", f"alias {alias} removed"
    except exc.ConfioKMSError as failure:
        return "failed", f"could not check that {alias} was removed ({_why(error or failure)})"
    return "failed", f"{alias} still points at key {still} ({_why(error)})"


def _undo_parameter(aws: AWSClients, path: str, ours: Sequence[str]) -> tuple[str, str]:
    """Delete the parameter at ``path`` if a key of this attempt encrypts it."""
    try:
        reference = parameter_key(aws, path)
    except exc.ConfioKMSError as failure:
        return "failed", (
            f"could not check the SSM parameter {path} ({_why(failure)}): delete it if it "
            f"is encrypted with {' or '.join(ours) or 'a key pending deletion'}"
        )
    if reference is None:
        return "", ""
    if not _is_key(reference, ours):
        return "kept", (
            f"the SSM parameter {path} is encrypted with {reference or 'another key'}, "
            "not by this attempt"
        )
    error: exc.ConfioKMSError | None = None
    try:
        aws.call("ssm", "DeleteParameter", path, Name=path)
    except exc.ConfioKMSError as failure:
        error = failure
    try:
        remains = parameter_key(aws, path) is not None
    except exc.ConfioKMSError as failure:
        return "failed", f"could not check that {path} was deleted ({_why(error or failure)})"
    if remains:
        return "failed", f"the SSM parameter {path} still exists ({_why(error)})"
    return "done", f"SSM parameter {path} deleted"


def create_key(
    aws: AWSClients,
    name: str,
    rollback: Rollback,
    *,
    description: str,
    tags: dict[str, str],
    **key_params: Any,
) -> str:
    """CreateKey, telling ``rollback`` what it made; returns the key id.

    ``tags`` must tell this creation's key from any other (a new account's address,
    or a placeholder the kind overwrites later): a key whose answer was lost is found
    by them, and so are the extra keys of retried attempts (deleted after success).
    """
    since = datetime.now(UTC)
    try:
        created = aws.call(
            "kms",
            "CreateKey",
            str(Alias(name)),
            Description=description,
            Tags=kms_tags(tags),
            **key_params,
        )
    except Exception as error:
        if may_have_applied(error):
            rollback.look_for_keys(aws, tags, since)
        raise
    key_id: str = created["KeyMetadata"]["KeyId"]
    rollback.key_created(aws, key_id)
    if created.get("ResponseMetadata", {}).get("RetryAttempts"):
        # An attempt before the one that answered may have made a key too.
        rollback.look_for_keys(aws, tags, since)
    return key_id


def create_alias(aws: AWSClients, name: str, key_id: str, rollback: Rollback) -> None:
    """CreateAlias, telling ``rollback``. An alias that already exists and points at
    ``key_id`` was made by this call (a retry after an answer was lost): success."""
    alias = str(Alias(name))
    try:
        aws.call("kms", "CreateAlias", alias, AliasName=alias, TargetKeyId=key_id)
    except exc.AliasExistsError:
        try:
            ours = alias_target(aws, alias) == key_id
        except exc.ConfioKMSError:
            ours = False
        if not ours:
            raise
    except Exception as error:
        if may_have_applied(error):
            rollback.expect_alias(aws, alias)
        raise
    rollback.expect_alias(aws, alias)


# What each creation step does, for the operator watching it (progress lines).
STEPS = {
    "CreateKey": "creating the KMS key",
    "GetPublicKey": "reading the new key's public key",
    "TagResource": "tagging the key with its address",
    "CreateAlias": "pointing the alias at the key",
    "PutParameter": "storing the encrypted private key in SSM",
    "MarkComplete": "marking the creation complete: TagResource CreationState=complete",
}


def provisioning(name: str, rollback: Rollback, run: Callable[[Callable[[str], None]], str]) -> str:
    """Run the creation steps in ``run``; on a failure roll back and say what was undone.

    ``run`` receives a function to name the step in progress, and returns the key id.
    The report is what ``rollback`` read back from AWS, not what the requests answered.
    """
    step = ["start"]

    def starting(operation: str) -> None:
        step.append(operation)
        progress.step(f"{Alias(name)}: {STEPS.get(operation, operation)} ({operation})")

    try:
        key_id = run(starting)
    except Exception as error:  # whatever failed, nothing half-made may stay behind
        undone, failed = rollback.run()
        # "nothing had been created" only when nothing was found or left unchecked.
        report = "; ".join(undone) or (
            "nothing" if failed or rollback.kept else "nothing had been created"
        )
        if rollback.kept:
            report += "; left as found: " + "; ".join(rollback.kept)
        if failed:
            report += "; NOT undone, clean up by hand: " + "; ".join(failed)
        known = error if isinstance(error, exc.ConfioKMSError) else None
        raise exc.ProvisioningError(
            f"Creating {Alias(name)} failed at {step[-1]}: "
            f"{known.message if known else type(error).__name__} Rolled back, as checked in AWS "
            f"afterwards: {report}.",
            fix=known.fix if known else "Report this as a bug in confio-kms.",
            cause=known.cause if known else None,
        ) from error
    rollback.discard_duplicates(key_id)
    return key_id
