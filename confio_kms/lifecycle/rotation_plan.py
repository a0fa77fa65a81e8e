"""The dry run of a rotation: what ``rotation.rotate`` would do, decided from the same
reads (``rotation.decide``), with nothing created, tagged or signed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from algosdk import transaction

from confio_kms.algorand import validation
from confio_kms.algorand.chain import Chain
from confio_kms.algorand.validation import Alias, staging_name
from confio_kms.core import kinds
from confio_kms.core.aws import AWSClients
from confio_kms.core.keys import KeyInfo
from confio_kms.core.policy import SigningPolicy
from confio_kms.lifecycle import rotation_state as rotation
from confio_kms.lifecycle.provision import creator
from confio_kms.lifecycle.rollback import ROLLBACK_PENDING_DAYS


@dataclass(frozen=True)
class RotationPlan:
    """What ``rotate`` would do now, read from KMS and the chain; nothing was changed.

    ``action`` is ``rotate`` (a new key and a rekey), ``switch`` (a confirmed rekey's
    alias switch, resumed) or ``finish`` (an interrupted switch's cleanup). ``rekey``
    holds the fields of the transaction a rotation would sign (empty otherwise); its
    ``rekey_to`` is the new key's address, known only once the key exists.
    """

    name: str
    account: str
    network: str
    action: str
    current_key_id: str
    current_kind: str
    new_kind: str
    steps: tuple[str, ...]
    rekey: dict[str, Any] = field(default_factory=dict)


def plan(
    aws: AWSClients, prefix: str, name: str, chain: Chain, *, kind: str = kinds.DEFAULT_KIND
) -> RotationPlan:
    """The dry run of :func:`rotate`: the same decision from the same reads, no writes."""
    new_creator = creator(kinds.named(kind).kind)
    sp = chain.suggested_params()
    decision = rotation.decide(aws, name, chain, SigningPolicy.of(aws.options), sp)
    current, pending = decision.current, decision.pending
    alias, staging = str(Alias(name)), str(Alias(name).staging)
    known = current or pending
    assert known is not None  # rotation.decide raises when there is neither
    common: dict[str, Any] = {
        "name": name,
        "account": known.address,
        "network": known.network,
        "current_key_id": current.key_id if current else "",
        "current_kind": current.kind if current else "",
    }
    if decision.action != rotation.ROTATE and pending is not None:
        done = "was switched" if decision.action == rotation.FINISH else "is confirmed on chain"
        resume = (
            f"the rekey to {pending.signer_address} {done}: point {alias} at key "
            f"{pending.key_id}, tag the old key RotationState=retired, remove {staging}",
        )
        return RotationPlan(**common, action=decision.action, new_kind=pending.kind, steps=resume)
    assert current is not None
    steps: list[str] = []
    if pending is not None:
        steps.append(
            f"roll back the expired pending rotation: remove {staging} and schedule key "
            f"{pending.key_id} for deletion in {ROLLBACK_PENDING_DAYS} days"
        )
    path = validation.parameter_path(prefix, staging_name(name))
    where = (
        f", its private key encrypted in SSM at {path} and its backup mnemonic shown once"
        if new_creator.uses_parameter
        else ", generated inside KMS (no backup exists)"
    )
    steps += [
        f"create {with_article(new_creator.kind)} KMS key (billed monthly) under {staging}{where}",
        f"sign the rekey below with {alias}'s current {current.kind} key",
        "submit it and wait for its confirmation",
        f"point {alias} at the new key, tag key {current.key_id} RotationState=retired, "
        f"remove {staging}",
    ]
    return RotationPlan(
        **common,
        action=rotation.ROTATE,
        new_kind=new_creator.kind,
        steps=tuple(steps),
        rekey=_planned_rekey(current, sp),
    )


def _planned_rekey(current: KeyInfo, sp: transaction.SuggestedParams) -> dict[str, Any]:
    """The fields of the rekey a rotation would sign (its target is the key still to be
    made, hence ``rekey_to`` None)."""
    txn = transaction.PaymentTxn(
        current.address, sp, current.address, 0, note=rotation.NOTE, rekey_to=current.address
    )
    return {
        "type": "pay",
        "sender": current.address,
        "receiver": current.address,
        "amount": 0,
        "fee": txn.fee,
        "first_valid": txn.first_valid_round,
        "last_valid": txn.last_valid_round,
        "genesis_id": txn.genesis_id,
        "note": rotation.NOTE.decode(),
        "rekey_to": None,
        "signed_by": current.signer_address,
    }


def with_article(word: str) -> str:
    """ "an envelope", "a native": for the texts that name a key kind."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"
