"""Key creations a crash interrupted: how they are marked, found, finished or cleaned up.

A creation that is killed (SIGKILL, power loss) cannot roll itself back, so every
new key says what it is while it is being made: CreateKey tags it
``CreationState=pending:<alias name>`` (tags given to CreateKey are atomic with the
key: no key of this library exists without the mark), and the last step of the
creation retags it ``CreationState=complete`` (one TagResource, the only extra
request of a creation). A key whose mark still says ``pending`` is unfinished,
whatever else exists: a key without its alias (an *orphan*: billed, signs for
nobody) or an alias to a key whose creation did not complete (a *stuck alias*).
An envelope key tagged ``ManagedBy=confio-kms`` behind the alias whose SSM parameter
is missing is treated the same way: that is what an interrupted creation of an
earlier version leaves.

``scan`` finds them; ``clean_up`` undoes one (parameter deleted when encrypted with
it, alias removed when pointing at it, key scheduled for deletion in the shortest
window, 7 days: cancellable, nothing lost), reading AWS back like a rollback;
``complete`` finishes one (the missing alias, parameter and public-key tag, then the
mark); ``plan`` picks which one a rerun finishes, and ``resume_import`` is a rerun of
an import (the same account: finished; anything else left for the alias: cleaned
up). Only keys tagged ``ManagedBy=confio-kms`` are ever touched: keys of other
applications and of the old setup scripts (NOTES.md, "Legacy layout") carry neither
tag and are only reported as what holds the alias.

Requests: ``scan(name=...)`` costs one ListAliases per 100 aliases, one ListKeys per
1,000 keys and one ListResourceTags per key that has no alias (plus the alias's own
key), then a DescribeKey and a DescribeParameters per unfinished key found. Without
a name (the doctor) it reads the tags of every customer key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from algosdk import account, encoding

from confio_kms.algorand.validation import Alias, parameter_path
from confio_kms.common import exceptions as exc
from confio_kms.common import progress
from confio_kms.common.redaction import holds_secrets
from confio_kms.core import kinds, native
from confio_kms.core.aws import AWSClients
from confio_kms.core.keys import (
    ENVELOPE,
    MANAGED_BY,
    NATIVE,
    PENDING_DELETION,
    TAG_ADDRESS,
    TAG_MANAGED_BY,
    TAG_NETWORK,
    TAG_PARAMETER,
    kms_tags,
    read_tags,
)
from confio_kms.lifecycle.provision import PENDING, TAG_CREATION, mark_complete, put_parameter
from confio_kms.lifecycle.rollback import Rollback, create_alias, written_with


@dataclass(frozen=True)
class Unfinished:
    """A key whose creation did not complete, and what of it exists."""

    key_id: str
    name: str  # the alias it was made for
    kind: str  # envelope, native, or "" for another key spec
    address: str  # its AlgorandAddress tag; "" while a native key's is not known yet
    network: str
    aliased: bool  # alias/<name> points at it (a stuck alias) or not (an orphan key)
    parameter: str = ""  # envelope: where its private key goes
    stored: bool = False  # envelope: that parameter exists, encrypted with this key
    marked: bool = True  # False: no CreationState tag (an earlier version's key)

    @property
    def alias(self) -> str:
        return str(Alias(self.name))

    def describe(self) -> str:
        where = f"behind {self.alias} (a stuck alias)" if self.aliased else "with no alias"
        what = f"{self.kind or 'unknown'} key {self.key_id} made for {self.alias}, {where}"
        if self.kind == ENVELOPE:
            what += ", its SSM parameter " + ("stored" if self.stored else "missing")
        return what


@dataclass(frozen=True)
class Leftovers:
    """What ``scan`` found: unfinished keys, the complete key already holding the alias
    (its id and tags, or None), how many keys could not be read, and the names of every
    alias that points at a key."""

    unfinished: tuple[Unfinished, ...]
    holder: tuple[str, dict[str, str]] | None = None
    unreadable: int = 0
    taken: frozenset[str] = frozenset()


def scan(aws: AWSClients, prefix: str, name: str | None = None) -> Leftovers:
    """The unfinished creations (for ``alias/<name>`` only, when a name is given)."""
    progress.step(f"{Alias(name) if name else 'every key'}: looking for unfinished creations")
    aliases: dict[str, set[str]] = {}
    for entry in aws.paginate("kms", "ListAliases", "aliases", "Aliases", Limit=100):
        if entry.get("TargetKeyId"):
            aliases.setdefault(entry["TargetKeyId"], set()).add(entry["AliasName"][6:])
    target = next((k for k, names in aliases.items() if name in names), None)
    found: list[Unfinished] = []
    holder: tuple[str, dict[str, str]] | None = None
    unreadable = 0
    for key_id in _candidates(aws, aliases, name):
        try:
            tags = read_tags(aws, key_id, key_id)
            item = _unfinished(aws, prefix, key_id, tags, aliases.get(key_id, set()), name)
        except (exc.AccessDeniedError, exc.KeyNotFoundError):
            unreadable += 1  # another application's key (least privilege), or just deleted
            continue
        if item is not None:
            found.append(item)
        elif key_id == target:
            holder = (key_id, tags)
    taken = frozenset(n for names in aliases.values() for n in names)
    return Leftovers(tuple(found), holder, unreadable, taken)


def _candidates(aws: AWSClients, aliases: dict[str, set[str]], name: str | None) -> Iterator[str]:
    """The keys whose tags to read: with a name, the unaliased ones and the alias's."""
    for entry in aws.paginate("kms", "ListKeys", "keys", "Keys", Limit=1000):
        key_id = entry["KeyId"]
        names = aliases.get(key_id, set())
        if name is None:
            if not names or any(not n.startswith("aws/") for n in names):
                yield key_id
        elif not names or name in names:
            yield key_id


def _unfinished(
    aws: AWSClients,
    prefix: str,
    key_id: str,
    tags: dict[str, str],
    names: set[str],
    name: str | None,
) -> Unfinished | None:
    if tags.get(TAG_MANAGED_BY) != MANAGED_BY:
        return None  # never ours to judge: another application's or the old scripts'
    mark = tags.get(TAG_CREATION, "")
    if mark.startswith(PENDING):
        meant = mark.removeprefix(PENDING)
        if name is not None and meant != name:
            return None
    elif name is not None and name in names and not mark:
        meant = name  # an earlier version's key: unfinished only if its parameter is missing
    else:
        return None
    metadata = aws.call("kms", "DescribeKey", key_id, KeyId=key_id)["KeyMetadata"]
    if metadata.get("KeyState") == PENDING_DELETION:
        return None  # already cleaned up, and cancellable
    kind = kinds.for_spec(str(metadata.get("KeySpec", "SYMMETRIC_DEFAULT"))) or ""
    address = tags.get(TAG_ADDRESS, "")
    path = tags.get(TAG_PARAMETER) or parameter_path(prefix, meant)
    # An earlier version's key: unfinished only when its parameter is surely missing
    # (GetParameter without decryption answers ParameterNotFound; anything else raises).
    if not mark and (kind != ENVELOPE or _parameter_exists(aws, path)):
        return None
    stored = kind == ENVELOPE and written_with(aws, path, key_id)
    return Unfinished(
        key_id=key_id,
        name=meant,
        kind=kind,
        address=address if encoding.is_valid_address(address) else "",
        network=tags.get(TAG_NETWORK, ""),
        aliased=meant in names,
        parameter=path if kind == ENVELOPE else "",
        stored=stored,
        marked=bool(mark),
    )


def _no_confirmation(finish: Unfinished | None, stale: list[Unfinished]) -> None:
    return None


@dataclass
class Outcome:
    """What a rerun finished or cleaned up; ``confirm(finish, stale)`` is called before
    its first change (the command's mainnet confirmation)."""

    confirm: Callable[[Unfinished | None, list[Unfinished]], None] = _no_confirmation
    cleaned_up: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    already_complete: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "cleaned_up": list(self.cleaned_up),
            "completed": list(self.completed),
            "already_complete": self.already_complete,
        }


def plan(
    found: Leftovers, kind: str, network: str, address: str | None
) -> tuple[Unfinished | None, list[Unfinished]]:
    """Which unfinished key to finish (marked, same kind and network; an envelope one
    only for ``address``, the account whose private key the caller holds), and which
    to clean up (all the others)."""
    fits = [
        item
        for item in found.unfinished
        if item.marked
        and item.kind == kind
        and item.network == network
        and (kind == NATIVE or (address is not None and item.address == address))
    ]
    fits.sort(key=lambda item: not item.aliased)  # the one the alias points at, first
    finish = fits[0] if fits else None
    return finish, [item for item in found.unfinished if item is not finish]


@holds_secrets
def resume_import(
    aws: AWSClients,
    found: Leftovers,
    private_key: str,
    address: str,
    network: str,
    outcome: Outcome,
) -> str | None:
    """Resolve what an interrupted import left for the alias ``found`` was scanned for:
    return the key id when the account's key is whole (finished now, or already
    complete), None when a new key is still to be made (or the alias holds another
    account's key, which the caller refuses as always)."""
    if found.holder is not None:
        key_id, tags = found.holder
        outcome.already_complete = tags.get(TAG_ADDRESS) == address
        return key_id if outcome.already_complete else None
    finish, stale = plan(found, ENVELOPE, network, address)
    outcome.confirm(finish, stale)
    for item in stale:
        done, failed = clean_up(aws, item)
        if failed:
            raise exc.ProvisioningError(
                f"Cleaning up the unfinished {item.describe()} failed: {'; '.join(failed)}; "
                "nothing was imported.",
                fix="Check the permissions (manage.py kms_doctor) and run again.",
            )
        outcome.cleaned_up.append(f"{item.describe()}: {'; '.join(done)}")
    if finish is None:
        return None
    complete(aws, finish, private_key)
    outcome.completed.append(finish.describe())
    return finish.key_id


def clean_up(aws: AWSClients, item: Unfinished) -> tuple[list[str], list[str]]:
    """Undo ``item``: (what was undone, what could not be), as read back from AWS."""
    rollback = Rollback()
    rollback.key_created(aws, item.key_id)
    if item.aliased:
        rollback.expect_alias(aws, item.alias)
    if item.parameter:
        rollback.expect_parameter(aws, item.parameter)
    return rollback.run()


@holds_secrets
def complete(aws: AWSClients, item: Unfinished, private_key: str | None = None) -> str:
    """Finish ``item``; return its address. An envelope key needs the private key of
    its tagged address (from the backup written before it was created)."""
    key_id, address = item.key_id, item.address
    if item.kind == NATIVE and not address:
        progress.step(f"{item.alias}: reading the key's public key (GetPublicKey)")
        address = native.fetch_address(aws, key_id, key_id)
        aws.call("kms", "TagResource", key_id, KeyId=key_id, Tags=kms_tags({TAG_ADDRESS: address}))
    if item.kind == ENVELOPE and (
        private_key is None or str(account.address_from_private_key(private_key)) != address
    ):
        raise exc.ProvisioningError(
            f"The unfinished key {key_id} of {item.alias} is for {address}: only its backup "
            "can finish it; nothing was changed.",
            fix="Pass the backup file of that run, or let it be cleaned up.",
        )
    if not item.aliased:
        progress.step(f"{item.alias}: pointing the alias at the key (CreateAlias)")
        create_alias(aws, item.name, key_id, Rollback())
    if item.kind == ENVELOPE and not item.stored:
        tags = read_tags(aws, key_id, key_id)
        tags = {k: v for k, v in tags.items() if k != TAG_CREATION}
        put_parameter(aws, item.parameter, private_key or "", address, key_id, tags, Rollback())
    progress.step(f"{item.alias}: marking the creation complete (TagResource)")
    mark_complete(aws, key_id)
    if item.kind == NATIVE:
        native.remember_checked(key_id, address)
    return address


def unfinished_lines(items: tuple[Unfinished, ...]) -> list[dict[str, Any]]:
    """JSON rows of ``items`` (no secret: ids, names, addresses)."""
    return [
        {
            "key_id": item.key_id,
            "alias": item.alias,
            "kind": item.kind,
            "address": item.address or None,
            "network": item.network or None,
            "aliased": item.aliased,
            "parameter_stored": item.stored if item.parameter else None,
        }
        for item in items
    ]


def _parameter_exists(aws: AWSClients, path: str) -> bool:
    try:
        aws.call("ssm", "GetParameter", path, Name=path, WithDecryption=False)
    except exc.ParameterNotFoundError:
        return False
    return True
