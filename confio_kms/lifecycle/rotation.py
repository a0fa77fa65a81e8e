"""Rotation by rekey: a new key takes over signing for an unchanged account address.

Steps, each safe to interrupt:

1. A new key (envelope or native) is created under a staging alias
   ``alias/<name>--pending-rotation``, tagged with the account address, its own
   address (``AlgorandAuthAddress``) and ``RotationState=pending``.
2. A 0-ALGO self-payment from the account with ``rekey_to`` = the new key's address
   is signed by the current key. Its id and last valid round are tagged on the new key
   before the signed transaction leaves this process.
3. It is submitted and confirmed (or printed, with ``sign_only``).
4. Only after confirmation is ``alias/<name>`` switched to the new key.

:func:`plan` decides the same way from the same reads and changes nothing: it is
what a dry run shows.

Until step 4 the alias signs with the old key. Once the rekey is confirmed and until
the switch, the alias points at a key that can no longer sign for the account: an
interruption there is closed by running the rotation again, which finishes a pending
rotation whose rekey is confirmed on chain, rolls back one whose rekey can no longer
be confirmed (its last valid round has passed), and refuses while a signed rekey
could still land. A signed rekey to an abandoned key can therefore never land.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from algosdk import encoding, transaction

from confio_kms.algorand.chain import Chain
from confio_kms.algorand.validation import Alias, staging_name
from confio_kms.common import exceptions as exc
from confio_kms.common import progress
from confio_kms.core import cache, keys, kinds
from confio_kms.core.aws import AWSClients
from confio_kms.core.keys import KeyInfo
from confio_kms.core.policy import Allow, SigningPolicy
from confio_kms.core.signing import KeyHandle, sign_group
from confio_kms.lifecycle.provision import KeyCreator, KeyRequest, creator
from confio_kms.lifecycle.rollback import ROLLBACK_PENDING_DAYS, Provisioned
from confio_kms.lifecycle.rotation_state import (
    FINISH,
    NOTE,
    SWITCH,
    TAG_HISTORY,
    TAG_PREVIOUS,
    TAG_REKEY_LAST_VALID,
    TAG_REKEY_TXID,
    TAG_STATE,
    decide,
    previous_of,
    tags_of,
)

HISTORY_KEEP = 6  # key ids of 36 characters, space-separated, within a tag's 256


@dataclass(frozen=True)
class RotationResult:
    """What a rotation did. ``state`` is ``completed`` or ``pending`` (``sign_only``)."""

    name: str
    account: str
    previous_key_id: str
    key_id: str
    auth_address: str
    kind: str
    state: str
    rekey_txid: str
    signed_rekey: str = ""
    """Base64 msgpack of the signed rekey transaction (``sign_only``: for an external submitter)."""
    confirmed_round: int | None = None
    resumed: bool = False
    rolled_back_key_id: str = ""
    backup_mnemonic: str | None = field(default=None, repr=False)
    """The new envelope key's mnemonic (the only copy outside AWS); None for native keys."""


def rotate(
    aws: AWSClients,
    prefix: str,
    name: str,
    chain: Chain,
    *,
    kind: str = kinds.DEFAULT_KIND,
    sign_only: bool = False,
    on_backup: Callable[[str, str], None] | None = None,
) -> RotationResult:
    """Rotate ``alias/<name>`` to a new key by rekeying its account (see the module doc).

    ``on_backup(mnemonic, key_address)`` receives a new envelope key's backup right
    after the key is created, before anything is signed or sent, so it is kept even
    if the submission then fails.
    """
    new_creator = creator(kinds.named(kind).kind)
    policy = SigningPolicy.of(aws.options)
    sp = chain.suggested_params()
    decision = decide(aws, name, chain, policy, sp)
    current, pending = decision.current, decision.pending
    if decision.action == FINISH and pending is not None:
        return _finish(aws, name, pending, resumed=True, previous_key_id=previous_of(aws, pending))
    assert current is not None  # only FINISH has no current key
    if decision.action == SWITCH and pending is not None:
        return _switch(aws, name, current, pending, resumed=True)
    rolled_back = _roll_back(aws, name, pending) if pending is not None else ""

    created = _create_staged(aws, prefix, name, current, new_creator)
    new_key_id, new_address, backup = created.key_id, created.address, created.backup_mnemonic
    if backup and on_backup is not None:
        on_backup(backup, new_address)  # a HiddenStr: its repr hides it in any frame
    signed, txid = _sign_rekey(aws, prefix, name, policy, current, sp, new_key_id, new_address)
    new = kinds.resolve(aws, staging_name(name))
    encoded = str(encoding.msgpack_encode(signed))
    if sign_only:
        return RotationResult(
            name=name,
            account=current.address,
            previous_key_id=current.key_id,
            key_id=new_key_id,
            auth_address=new_address,
            kind=new.kind,
            state="pending",
            rekey_txid=txid,
            signed_rekey=encoded,
            rolled_back_key_id=rolled_back,
            backup_mnemonic=backup,
        )
    confirmed = _submit(chain, signed, txid, current, name)
    result = _switch(aws, name, current, new, resumed=False)
    return replace(
        result, confirmed_round=confirmed, rolled_back_key_id=rolled_back, backup_mnemonic=backup
    )


def _create_staged(
    aws: AWSClients, prefix: str, name: str, current: KeyInfo, new_creator: type[KeyCreator]
) -> Provisioned:
    """The new key under the staging alias, tagged pending, with the key history."""
    history = tags_of(aws, current.key_id).get(TAG_HISTORY, "")
    # Space-separated: SSM tag values (copied from these) do not allow ";".
    history = " ".join([*history.split(), current.key_id][-HISTORY_KEEP:])
    tags = {
        TAG_STATE: "pending",
        TAG_PREVIOUS: current.key_id,
        TAG_HISTORY: history,
    }
    progress.step(f"{Alias(name)}: creating the new {new_creator.kind} key")
    return new_creator(aws).create(
        KeyRequest(
            name=staging_name(name),
            prefix=prefix,
            network=current.network,
            description=f"Algorand account {current.address}, rotated key (confio-kms)",
            account=current.address,
            extra_tags=tags,
        )
    )


def _sign_rekey(
    aws: AWSClients,
    prefix: str,
    name: str,
    policy: SigningPolicy,
    current: KeyInfo,
    sp: transaction.SuggestedParams,
    new_key_id: str,
    new_address: str,
) -> tuple[transaction.SignedTransaction, str]:
    """The rekey to ``new_address`` signed with the current key; its id and last valid
    round tagged on the new key, so an interrupted rotation can be resumed."""
    rekey = transaction.PaymentTxn(
        current.address, sp, current.address, 0, note=NOTE, rekey_to=new_address
    )
    progress.step(f"{Alias(name)}: signing the rekey with the current key")
    # Rotation is the one caller that may rekey the account; the rest of the policy holds.
    (signed,) = sign_group(
        KeyHandle(aws, prefix, name),
        policy,
        [rekey],
        allow=Allow(rekey=True),
        info=current,
        detail="rotation rekey",
    )
    txid = signed.get_txid()
    aws.call(
        "kms",
        "TagResource",
        new_key_id,
        KeyId=new_key_id,
        Tags=keys.kms_tags(
            {TAG_REKEY_TXID: txid, TAG_REKEY_LAST_VALID: str(rekey.last_valid_round)}
        ),
    )
    return signed, txid


def _submit(
    chain: Chain, signed: transaction.SignedTransaction, txid: str, current: KeyInfo, name: str
) -> int:
    """Submit the rekey and wait for it; the round it was confirmed in."""
    progress.step(f"{Alias(name)}: submitting the rekey {txid} and waiting for its confirmation")
    try:
        return chain.submit(signed)
    except exc.ConfioKMSError as error:
        raise exc.RotationError(
            f"The rekey {txid} of {current.address} was not confirmed: {error.message} "
            f"{Alias(name)} still signs with the old key.",
            fix="Run the rotation again: it finishes if the rekey did land, and rolls back "
            "once the rekey can no longer be confirmed.",
            cause=error.cause,
        ) from error


def _tag_state(aws: AWSClients, key_id: str, state: str) -> None:
    aws.call("kms", "TagResource", key_id, KeyId=key_id, Tags=keys.kms_tags({TAG_STATE: state}))


def _switch(
    aws: AWSClients, name: str, current: KeyInfo, new: KeyInfo, *, resumed: bool
) -> RotationResult:
    """Point ``alias/<name>`` at the new key: only after the rekey is confirmed."""
    alias = str(Alias(name))
    progress.step(f"{alias}: switching the alias to the new key")
    _tag_state(aws, new.key_id, "active")
    # Tagged while the alias still names it (a runtime policy may match keys by alias).
    _tag_state(aws, current.key_id, "retired")
    if new.kind == current.kind:
        aws.call("kms", "UpdateAlias", alias, AliasName=alias, TargetKeyId=new.key_id)
    else:
        # KMS moves an alias only between keys of the same type and usage; across
        # envelope and native it is deleted and created (a rerun completes a break).
        aws.call("kms", "DeleteAlias", alias, AliasName=alias)
        aws.call("kms", "CreateAlias", alias, AliasName=alias, TargetKeyId=new.key_id)
    return _finish(aws, name, new, resumed=resumed, previous_key_id=current.key_id)


def _finish(
    aws: AWSClients, name: str, new: KeyInfo, *, resumed: bool, previous_key_id: str
) -> RotationResult:
    """After the alias points at ``new``: clean up, removing the staging alias last.

    The staging alias is what marks a rotation as in progress, so every step before
    its removal is repeated by a rerun if it fails.
    """
    alias, staging = str(Alias(name)), str(Alias(name).staging)
    try:
        keys.describe_key(aws, name)
    except exc.AliasNotFoundError:
        aws.call("kms", "CreateAlias", alias, AliasName=alias, TargetKeyId=new.key_id)
    if previous_key_id and previous_key_id != new.key_id:
        _tag_state(aws, previous_key_id, "retired")
    cache.forget(aws.scope, name, aws.options)
    tags = tags_of(aws, new.key_id)
    with contextlib.suppress(exc.AliasNotFoundError):  # already removed by a former run
        aws.call("kms", "DeleteAlias", staging, AliasName=staging)
    return RotationResult(
        name=name,
        account=new.address,
        previous_key_id=previous_key_id,
        key_id=new.key_id,
        auth_address=new.signer_address,
        kind=new.kind,
        state="completed",
        rekey_txid=tags.get(TAG_REKEY_TXID, ""),
        resumed=resumed,
    )


def _roll_back(aws: AWSClients, name: str, pending: KeyInfo) -> str:
    """Abandon a pending rotation whose rekey can no longer land (``decide`` checked
    it); return its key id."""
    staging = str(Alias(name).staging)
    progress.step(f"{staging}: rolling back an expired pending rotation")
    aws.call("kms", "DeleteAlias", staging, AliasName=staging)
    aws.call(
        "kms",
        "ScheduleKeyDeletion",
        pending.key_id,
        KeyId=pending.key_id,
        PendingWindowInDays=ROLLBACK_PENDING_DAYS,
    )
    return pending.key_id


def decode_signed(encoded: str) -> transaction.SignedTransaction:
    """The signed rekey from a dry run's base64 msgpack."""
    try:
        signed = encoding.msgpack_decode(encoded)
    except Exception:
        signed = None
    if not isinstance(signed, transaction.SignedTransaction):
        raise exc.UntrustedInputError(
            "Not a signed transaction in base64 msgpack.",
            fix="Pass the last line kms_rotate --sign-only printed.",
        )
    return signed
