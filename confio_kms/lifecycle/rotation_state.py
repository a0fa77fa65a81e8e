"""What a rotation finds before it acts: the tags it keeps on its keys, and the decision
of what a run does (rotate, resume a confirmed switch, or finish an interrupted one),
made from reads only. ``confio_kms.lifecycle.rotation`` acts on the decision and
``confio_kms.lifecycle.rotation_plan`` (the dry run) shows it, so the dry run needs no
signing machinery."""

from __future__ import annotations

from dataclasses import dataclass

from algosdk import transaction

from confio_kms.algorand.chain import Chain
from confio_kms.algorand.validation import Alias, staging_name
from confio_kms.common import exceptions as exc
from confio_kms.core import keys, kinds
from confio_kms.core.aws import AWSClients
from confio_kms.core.keys import KeyInfo
from confio_kms.core.policy import Allow, SigningPolicy

TAG_STATE = "RotationState"
TAG_PREVIOUS = "PreviousKeyId"
TAG_HISTORY = "RotationHistory"
TAG_REKEY_TXID = "RekeyTxId"
TAG_REKEY_LAST_VALID = "RekeyLastValid"
NOTE = b"confio-kms rotation"

FINISH, SWITCH, ROTATE = "finish", "switch", "rotate"


@dataclass(frozen=True)
class Decision:
    """What a run does, decided from reads only. ROTATE with a ``pending`` key rolls
    that expired rotation back first; FINISH may have no ``current`` (alias gone)."""

    action: str
    current: KeyInfo | None
    pending: KeyInfo | None


def decide(
    aws: AWSClients,
    name: str,
    chain: Chain,
    policy: SigningPolicy,
    sp: transaction.SuggestedParams,
) -> Decision:
    pending = _pending(aws, name)
    try:
        current = kinds.resolve(aws, name)
    except exc.AliasNotFoundError:
        # Interrupted between DeleteAlias and CreateAlias of a switch across key types.
        if pending is None:
            raise
        _check_chain(policy, pending, sp)
        if chain.auth_address(pending.address) != pending.signer_address:
            raise
        return Decision(FINISH, None, pending)
    # Whatever is decided from the chain below, it must be the key's own network.
    _check_chain(policy, current, sp)
    if pending is None:
        return Decision(ROTATE, current, None)
    _check_pending(aws, name, current, pending)
    if pending.key_id == current.key_id:  # switched; only the cleanup was interrupted
        return Decision(FINISH, current, pending)
    if chain.auth_address(current.address) == pending.signer_address:
        return Decision(SWITCH, current, pending)
    _check_abandoned(aws, name, pending, chain)
    return Decision(ROTATE, current, pending)


def _check_chain(policy: SigningPolicy, info: KeyInfo, sp: transaction.SuggestedParams) -> None:
    """The chain must be the key's network: its answers decide resumes and rollbacks."""
    probe = transaction.PaymentTxn(
        info.address, sp, info.address, 0, note=NOTE, rekey_to=info.signer_address
    )
    policy.check(info, [probe], Allow(rekey=True))


def _pending(aws: AWSClients, name: str) -> KeyInfo | None:
    try:
        return kinds.resolve(aws, staging_name(name))
    except exc.AliasNotFoundError:
        return None


def tags_of(aws: AWSClients, key_id: str) -> dict[str, str]:
    return keys.read_tags(aws, key_id, key_id)


def previous_of(aws: AWSClients, pending: KeyInfo) -> str:
    return tags_of(aws, pending.key_id).get(TAG_PREVIOUS, "")


def _check_pending(aws: AWSClients, name: str, current: KeyInfo, pending: KeyInfo) -> None:
    """A staging alias is acted on only if it really is this account's pending rotation."""
    tags = tags_of(aws, pending.key_id)
    ours = (
        pending.address == current.address
        and tags.get(TAG_STATE) in ("pending", "active")
        and tags.get(TAG_PREVIOUS) in (current.key_id, previous_of(aws, current) or None)
    )
    if not ours:
        raise exc.RotationError(
            f"{Alias(name).staging} exists but is not a pending rotation of "
            f"{Alias(name)}; nothing was changed.",
            fix=f"Inspect {Alias(name).staging} and remove it by hand if it is stray.",
        )


def _check_abandoned(aws: AWSClients, name: str, pending: KeyInfo, chain: Chain) -> None:
    """Refuse unless the pending rotation's signed rekey can no longer land."""
    tags = tags_of(aws, pending.key_id)
    last_valid = tags.get(TAG_REKEY_LAST_VALID)
    if last_valid and not last_valid.isdigit():
        raise exc.RotationError(
            f"The staging key of {Alias(name)} has a malformed {TAG_REKEY_LAST_VALID} tag; "
            "nothing was changed.",
            fix=f"Set the tag to the rekey's last valid round (check {TAG_REKEY_TXID} on "
            "chain), or remove the staging alias by hand if the rekey never left.",
        )
    if last_valid and chain.current_round() <= int(last_valid):
        raise exc.RotationError(
            f"A rotation of {Alias(name)} is pending: rekey {tags.get(TAG_REKEY_TXID)} to "
            f"{pending.signer_address} was signed and can still be confirmed until round "
            f"{last_valid}. Nothing was changed.",
            fix="Submit that rekey (or let it expire), then run the rotation again: it "
            "finishes or rolls back accordingly.",
        )
    # The rekey may have landed between the first look and the round check: look again.
    if chain.auth_address(pending.address) == pending.signer_address:
        raise exc.RotationError(
            f"The rekey to {pending.signer_address} was confirmed while checking; nothing "
            "was rolled back.",
            fix="Run the rotation again: it finishes the switch.",
        )
