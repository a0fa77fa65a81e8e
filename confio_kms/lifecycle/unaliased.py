"""This library's keys that no alias names: retired by a rotation, orphaned by an
interrupted creation. Each still costs $1 a month until its deletion.

A rotation tags the key it replaces ``RotationState=retired`` and moves the alias to
the new key, whose ``PreviousKeyId`` / ``RotationHistory`` tags name the old one (so
the alias a retired key served is known while the newer key exists). An interrupted
``kms_setup`` leaves a key tagged ``CreationState=pending:<alias>`` (see
``confio_kms.lifecycle.recovery``). Only keys tagged ``ManagedBy=confio-kms``, or retired
by this library's rotation (an old setup script's key included), are listed or deleted
here: an unaliased key of another application is never ours to judge.

Requests: one ListAliases per 100 aliases, one ListKeys per 1,000 keys, one
ListResourceTags per customer key, one DescribeKey per key listed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from algosdk import encoding

from confio_kms.common import exceptions as exc
from confio_kms.core import keys, kinds
from confio_kms.core.aws import AWSClients
from confio_kms.core.keys import MANAGED_BY, TAG_ADDRESS, TAG_MANAGED_BY
from confio_kms.lifecycle.provision import PENDING, TAG_CREATION
from confio_kms.lifecycle.rotation_state import TAG_HISTORY, TAG_PREVIOUS, TAG_STATE

RETIRED, ORPHANED, UNALIASED = "retired", "orphaned", "unaliased"


class Record(Protocol):
    """What is read of a key record here (the manager's ``KeyRecord``, passed in as
    ``make_record``: this module is imported by the manager, not the other way)."""

    @property
    def key_id(self) -> str: ...
    @property
    def creation_date(self) -> datetime | None: ...


R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class UnaliasedKey(Generic[R]):
    """A key of this library with no alias. ``record.name`` is the alias it served
    (retired) or was made for (orphaned), "" when no tag says; ``status`` is
    ``retired``, ``orphaned`` or ``unaliased`` (neither mark)."""

    record: R
    status: str


def find(aws: AWSClients, make_record: Callable[..., R]) -> list[UnaliasedKey[R]]:
    """Every unaliased key tagged ``ManagedBy=confio-kms``, oldest first."""
    aliased: dict[str, str] = {}
    for entry in aws.paginate("kms", "ListAliases", "aliases", "Aliases", Limit=100):
        if entry.get("TargetKeyId") and not entry["AliasName"].startswith("alias/aws/"):
            aliased[entry["TargetKeyId"]] = entry["AliasName"].removeprefix("alias/")
    served: dict[str, str] = {}  # retired key id -> the alias its successor holds
    found: list[tuple[str, dict[str, str]]] = []
    for key_id, tags in _tagged(aws):
        if key_id in aliased:
            older = [tags.get(TAG_PREVIOUS, ""), *tags.get(TAG_HISTORY, "").split()]
            served.update((old, aliased[key_id]) for old in older if old)
        elif tags.get(TAG_MANAGED_BY) == MANAGED_BY or tags.get(TAG_STATE) == RETIRED:
            # A legacy key (no ManagedBy tag) that a rotation retired is ours too.
            found.append((key_id, tags))
    listed = [
        _unaliased(aws, make_record, key_id, tags, served.get(key_id, "")) for key_id, tags in found
    ]
    return sorted(listed, key=lambda k: k.record.creation_date or datetime.min)


def get(aws: AWSClients, make_record: Callable[..., R], key_id: str) -> UnaliasedKey[R]:
    """The unaliased key ``key_id`` (an id, or an ARN), or a typed refusal."""
    wanted = key_id.rsplit("/", 1)[-1]
    for key in find(aws, make_record):
        if key.record.key_id == wanted:
            return key
    raise exc.KeyNotFoundError(
        f"{key_id} is not an unaliased key of confio-kms (a retired or orphaned one); "
        "nothing was changed.",
        fix="`manage.py kms_list --all` lists them with their key ids; a key that has an "
        "alias is deleted by its alias name (`manage.py kms_delete NAME`).",
    )


def schedule(aws: AWSClients, key_id: str, days: int) -> datetime | None:
    """Schedule the deletion of ``key_id`` in ``days`` days (cancellable until then)."""
    response = aws.call(
        "kms", "ScheduleKeyDeletion", key_id, KeyId=key_id, PendingWindowInDays=days
    )
    date: datetime | None = response.get("DeletionDate")
    return date


def cancel(aws: AWSClients, key_id: str) -> None:
    """Cancel its scheduled deletion; KMS leaves the key disabled, so enable it."""
    aws.call("kms", "CancelKeyDeletion", key_id, KeyId=key_id)
    aws.call("kms", "EnableKey", key_id, KeyId=key_id)


def _tagged(aws: AWSClients) -> Iterator[tuple[str, dict[str, str]]]:
    for entry in aws.paginate("kms", "ListKeys", "keys", "Keys", Limit=1000):
        try:
            yield entry["KeyId"], keys.read_tags(aws, entry["KeyId"], entry["KeyId"])
        except (exc.AccessDeniedError, exc.KeyNotFoundError):
            continue  # another application's key (least privilege), or just deleted


def _unaliased(
    aws: AWSClients, make_record: Callable[..., R], key_id: str, tags: dict[str, str], served: str
) -> UnaliasedKey[R]:
    metadata = aws.call("kms", "DescribeKey", key_id, KeyId=key_id)["KeyMetadata"]
    mark = tags.get(TAG_CREATION, "")
    if tags.get(TAG_STATE) == RETIRED:
        status, name = RETIRED, served
    elif mark.startswith(PENDING):
        status, name = ORPHANED, mark.removeprefix(PENDING)
    else:
        status, name = UNALIASED, served
    spec = str(metadata.get("KeySpec", "SYMMETRIC_DEFAULT"))
    address = tags.get(TAG_ADDRESS, "")
    auth = tags.get(keys.TAG_AUTH_ADDRESS, "")
    record = make_record(
        name=name,
        key_id=metadata["KeyId"],
        address=address if encoding.is_valid_address(address) else "",
        network=tags.get(keys.TAG_NETWORK, ""),
        key_state=metadata.get("KeyState", "Unknown"),
        creation_date=metadata.get("CreationDate"),
        kind=kinds.for_spec(spec) or f"unsupported ({spec})",
        managed=tags.get(TAG_MANAGED_BY) == MANAGED_BY,
        deletion_date=metadata.get("DeletionDate"),
        auth_address=auth if encoding.is_valid_address(auth) else "",
    )
    return UnaliasedKey(record, status)


class Unaliased(Generic[R]):
    """The functions above on one account's clients (``AlgorandKMSManager.unaliased()``)."""

    def __init__(self, aws: AWSClients, make_record: Callable[..., R]) -> None:
        self._aws, self._make_record = aws, make_record

    def keys(self) -> list[UnaliasedKey[R]]:
        return find(self._aws, self._make_record)

    def get(self, key_id: str) -> UnaliasedKey[R]:
        return get(self._aws, self._make_record, key_id)

    def schedule(self, key_id: str, days: int) -> datetime | None:
        return schedule(self._aws, key_id, days)

    def cancel(self, key_id: str) -> None:
        cancel(self._aws, key_id)
