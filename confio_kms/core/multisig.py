"""KMSMultisigSigner: Algorand multisig whose subsignatures come from KMS-held keys.

Members are ``KMSSigner`` instances (envelope or native, each with its own
boto3 session, so possibly in other regions or accounts) or plain addresses of
members who sign elsewhere. Each KMS member signs a call's transactions with its
own path and checks; subsignatures can also be added to a partially signed
multisig transaction made elsewhere.

A subsignature covers the same bytes as a single signature (``b"TX" + txn``), so a
member's subsignature on a transaction sent by the member's own account would be
that account's valid single signature. Members therefore sign only transactions
sent by the multisig account itself or by an account declared rekeyed to it.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Unpack

from algosdk import encoding, transaction
from algosdk.atomic_transaction_composer import TransactionSigner

from confio_kms.algorand.validation import public_key
from confio_kms.common import exceptions as exc
from confio_kms.core import audit, awaitable
from confio_kms.core.policy import AllowFlags, allow_from
from confio_kms.core.signer import KMSSigner
from confio_kms.core.signing import select


class KMSMultisigSigner(TransactionSigner):
    """A TransactionSigner for the multisig account (version, threshold, members).

    ``rekeyed_accounts``: accounts whose authorizing address is this multisig (rekeyed
    to it); their transactions are signed too. Any other sender is refused.
    """

    def __init__(
        self,
        version: int,
        threshold: int,
        signers_or_addresses: Sequence[KMSSigner | str],
        *,
        rekeyed_accounts: Sequence[str] = (),
    ) -> None:
        super().__init__()
        addresses = [
            m.signer_address if isinstance(m, KMSSigner) else m for m in signers_or_addresses
        ]
        try:
            self.multisig = transaction.Multisig(version, threshold, addresses)
            self.multisig.validate()
        except Exception as error:
            raise exc.InvalidMultisigError(
                f"Not a valid multisig (version {version}, threshold {threshold}, "
                f"{len(addresses)} members): {type(error).__name__}.",
                fix="Use version 1, a threshold from 1 to the number of members, and valid "
                "member addresses.",
            ) from None
        self.members = [
            (i, m) for i, m in enumerate(signers_or_addresses) if isinstance(m, KMSSigner)
        ]
        self.rekeyed_accounts = tuple(rekeyed_accounts)
        # Compared as public keys: one key has several base32 spellings.
        rekeyed = set()
        for n, account in enumerate(rekeyed_accounts):
            key = public_key(account) if isinstance(account, str) else b""
            if not key:
                raise exc.InvalidMultisigError(
                    f"Item {n} of rekeyed_accounts is not an Algorand address.",
                    fix="Pass the 58-character addresses of accounts rekeyed to the multisig.",
                )
            rekeyed.add(key)
        own = [
            a
            for a in [*addresses, *(m.address for _, m in self.members)]
            if public_key(a) in rekeyed
        ]
        if own:
            raise exc.InvalidMultisigError(
                f"{own[0]} in rekeyed_accounts is a member's own account: a member's "
                "subsignature for it would be a single signature.",
                fix="Declare only accounts whose authorizing address is the multisig.",
            )
        self._authorized = {public_key(self.address), *rekeyed}

    @property
    def address(self) -> str:
        return str(self.multisig.address())

    def sign_transactions(  # type: ignore[override]
        self,
        txn_group: Sequence[transaction.Transaction],
        indexes: Sequence[int] | None = None,
        **allow: Unpack[AllowFlags],
    ) -> list[transaction.MultisigTransaction]:
        """Multisig transactions carrying every KMS member's subsignature.

        Each member's signing policy applies; ``allow_*`` flags (see
        ``KMSSigner.sign_transactions``) pass on.
        """
        chosen = select(txn_group, indexes)
        mtxns = [
            transaction.MultisigTransaction(txn, self.multisig.get_multisig_account())
            for txn in chosen
        ]
        return self.append(mtxns, **allow)

    def append(
        self,
        mtxns: Sequence[transaction.MultisigTransaction],
        **allow: Unpack[AllowFlags],
    ) -> list[transaction.MultisigTransaction]:
        """Add the KMS members' subsignatures to ``mtxns`` in place (e.g. signed elsewhere).

        Refused before any AWS request unless every transaction is for this multisig
        and sent by it or by one of ``rekeyed_accounts``.
        """
        for i, mtxn in enumerate(mtxns):
            if mtxn.multisig.address() != self.address:
                raise exc.InvalidMultisigError(
                    f"Multisig transaction {i} is for {mtxn.multisig.address()}, not for "
                    f"{self.address}; nothing was signed.",
                    fix="Build this signer with the same version, threshold and members, "
                    "in the same order.",
                )
        allow_from(allow)  # an unknown flag fails before any AWS request
        txns = [m.transaction for m in mtxns]
        self._check_senders(txns)
        for index, member in self.members:
            # A member's alias may point at another key since this signer was built
            # (a rotation): its signature would not fit the slot.
            if member.signer_address != encoding.encode_address(
                self.multisig.subsigs[index].public_key
            ):
                raise exc.InvalidMultisigError(
                    f"{member.key_alias} now signs with {member.signer_address}, not with "
                    f"member {index + 1} of {self.address}; nothing was signed.",
                    fix="Rotation does not carry multisig membership: rebuild the multisig "
                    "with the members' current keys.",
                )
        for index, member in self.members:
            signed = member.sign_transactions(txns, **allow)
            for mtxn, stxn in zip(mtxns, signed, strict=True):
                mtxn.multisig.subsigs[index].signature = base64.b64decode(stxn.signature)
        return list(mtxns)

    async def asign_transactions(
        self,
        txn_group: Sequence[transaction.Transaction],
        indexes: Sequence[int] | None = None,
        **allow: Unpack[AllowFlags],
    ) -> list[transaction.MultisigTransaction]:
        """``sign_transactions``, awaitable (``confio_kms.core.awaitable``): the same
        checks, one audit record per member, the event loop free meanwhile."""
        return await awaitable.run(lambda: self.sign_transactions(txn_group, indexes, **allow))

    async def aappend(
        self,
        mtxns: Sequence[transaction.MultisigTransaction],
        **allow: Unpack[AllowFlags],
    ) -> list[transaction.MultisigTransaction]:
        """``append``, awaitable. Cancelled while running, the subsignatures still land
        in ``mtxns`` when the members' calls end (the work finishes in its thread)."""
        return await awaitable.run(lambda: self.append(mtxns, **allow))

    def _check_senders(self, txns: Sequence[transaction.Transaction]) -> None:
        """Refuse (and audit, per member) a transaction the multisig does not authorize."""
        for i, txn in enumerate(txns):
            sender = txn.sender
            if public_key(sender) in self._authorized:
                continue
            aliases = ", ".join(m.key_alias for _, m in self.members) or "no KMS member"
            error = exc.MultisigSenderError(
                f"Multisig transaction {i} ({txn.get_txid()}) is sent by {sender}, which is "
                f"neither multisig {self.address} nor an account declared rekeyed to it: "
                f"a member's subsignature would sign for that account; {aliases} signed "
                "nothing.",
                fix="Send it from the multisig account, or, if the sender is rekeyed to the "
                "multisig, pass it in KMSMultisigSigner(..., rekeyed_accounts=[...]).",
            )
            for _, member in self.members:
                audit.record(
                    None,
                    member.key_alias,
                    txns,
                    "refused",
                    (),
                    f"multisig {sender} not authorized",
                    sink=member.options.audit_sink,
                    rule=error.rule,
                )
            raise error

    def sign_logicsig(self, lsig_account: transaction.LogicSigAccount) -> None:
        """Delegate ``lsig_account`` to this multisig account with the KMS members' keys.

        Each member signs ``b"MsigProgram" + multisig address + program`` into the
        logic signature's ``lmsig``; members elsewhere add theirs the same way
        (py-algorand-sdk's ``append_to_multisig_with_signer``).
        """
        if not self.members:
            raise exc.InvalidMultisigError(
                "This multisig has no KMS member to sign with.",
                fix="Pass KMSSigner members, not only addresses.",
            )
        for _, member in self.members:
            member.sign_logicsig(lsig_account, self.multisig)
