"""KMSSigner: a py-algorand-sdk TransactionSigner whose key is held in AWS KMS."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Sequence

import boto3
from algosdk import constants, encoding, transaction
from algosdk.atomic_transaction_composer import TransactionSigner

from . import audit, cache, validation
from . import exceptions as exc
from .aws import AWSClients
from .envelope import EnvelopeKey
from .keys import NATIVE, AlgorandKey, KeyInfo
from .native import NativeKey
from .policy import SigningPolicy
from .validation import DEFAULT_SSM_PREFIX, alias_name

logger = logging.getLogger("confio_kms.signer")


def signing_bytes(txn: transaction.Transaction) -> bytes:
    """The bytes an Algorand transaction signature covers: ``b"TX" + msgpack(txn)``."""
    return constants.txid_prefix + base64.b64decode(encoding.msgpack_encode(txn))


def encoded(txns: Sequence[transaction.Transaction]) -> list[bytes]:
    """The signing bytes of each transaction; a malformed one is a typed error."""
    messages = []
    for i, txn in enumerate(txns):
        try:
            messages.append(signing_bytes(txn))
        except Exception as error:
            raise exc.NotATransactionError(
                f"Transaction {i} cannot be encoded for signing ({type(error).__name__}): a "
                "field such as an address is malformed.",
                fix="Build the transaction with valid 58-character addresses and values.",
            ) from None
    return messages


def key_for(aws: AWSClients, info: KeyInfo, prefix: str) -> AlgorandKey:
    """The key kind that signs for ``info``."""
    if info.mode == NATIVE:
        return NativeKey(aws, info)
    return EnvelopeKey(aws, info, prefix)


def attach(
    info: KeyInfo, txn: transaction.Transaction, signature: bytes
) -> transaction.SignedTransaction:
    """A SignedTransaction; it names the authorizer when the sender is another account."""
    auth = None if txn.sender == info.signer_address else info.signer_address
    return transaction.SignedTransaction(txn, base64.b64encode(signature).decode(), auth)


class KMSSigner(TransactionSigner):
    """Signs for the Algorand account behind a KMS alias.

    Works wherever py-algorand-sdk takes a TransactionSigner
    (``AtomicTransactionComposer``, ``TransactionWithSigner``,
    ``sign_transaction_with_signer``), and delegates logic signatures
    (``LogicSigAccount.sign_with_signer``). The address and the kind of key come
    from the KMS key (tags, key spec) once and are cached. An envelope key costs one
    AWS request per signing call, whatever the group size; a native key one KMS Sign
    request per transaction, sent concurrently.
    """

    def __init__(
        self,
        key_alias: str,
        region_name: str | None = None,
        *,
        endpoint_url: str | None = None,
        session: boto3.Session | None = None,
        ssm_prefix: str = DEFAULT_SSM_PREFIX,
        policy: SigningPolicy | None = None,
    ) -> None:
        super().__init__()
        self.name = alias_name(key_alias)
        self._prefix = validation.ssm_prefix(ssm_prefix)
        self.policy = policy or SigningPolicy.from_settings()
        self._aws = AWSClients(region_name, endpoint_url=endpoint_url, session=session)

    @property
    def key_alias(self) -> str:
        return f"alias/{self.name}"

    @property
    def region_name(self) -> str:
        return self._aws.region

    @property
    def address(self) -> str:
        """The account address, from the KMS key's tags (cached after the first lookup)."""
        return self._key_info()[0].address

    @property
    def signer_address(self) -> str:
        """The key's own address: ``address`` unless the account was rekeyed to this key."""
        return self._key_info()[0].signer_address

    @property
    def network(self) -> str:
        return self._key_info()[0].network

    def sign_transaction(self, txn: transaction.Transaction) -> transaction.SignedTransaction:
        """Sign one transaction (one AWS request)."""
        return self.sign_transactions([txn], [0])[0]

    def sign_transactions(  # type: ignore[override]
        self,
        txn_group: Sequence[transaction.Transaction],
        indexes: Sequence[int] | None = None,
        *,
        allow_rekey: bool = False,
        allow_close: bool = False,
    ) -> list[transaction.SignedTransaction]:
        """Sign ``txn_group[i]`` for each ``i`` in ``indexes`` (all when None), in that order.

        The signing policy is checked first (network, fee cap, and no rekey or
        close-out of the key's own account unless allowed here). A transaction whose
        sender is not this key's address (an account rekeyed to it) gets the
        authorizing address set. Either every transaction is signed or the call
        raises; either way one audit record is emitted.
        """
        chosen = select(txn_group, indexes)
        if not chosen:
            return []

        def check(info: KeyInfo) -> None:
            self.policy.check(info, chosen, allow_rekey=allow_rekey, allow_close=allow_close)

        info: KeyInfo | None = None
        try:
            messages = encoded(chosen)
            resolved = self._key_info()
            info = resolved[0]
            info, signatures, request_ids = self._sign(messages, check, resolved)
        except exc.ConfioKMSError as error:
            outcome = "refused" if isinstance(error, exc.PolicyViolationError) else "failed"
            audit.record(info, self.key_alias, chosen, outcome, (), type(error).__name__)
            raise
        signed = [attach(info, txn, sig) for txn, sig in zip(chosen, signatures, strict=True)]
        audit.record(info, self.key_alias, chosen, "signed", request_ids, messages=messages)
        return signed

    def sign_logicsig(
        self,
        lsig_account: transaction.LogicSigAccount,
        multisig: transaction.Multisig | None = None,
    ) -> None:
        """Delegate ``lsig_account`` to this key, in place.

        Delegation hands the program open-ended authority over the account, so it is
        refused unless the signing policy allows it (``CONFIO_KMS_ALLOW_DELEGATION``
        or ``SigningPolicy(allow_delegation=True)``). Alone, the key signs
        ``b"Program" + program``; as a member of ``multisig`` it signs
        ``b"MsigProgram" + multisig address + program`` into ``lmsig``, the
        domain-separated form that cannot be replayed as a delegation of the
        member's own account. ``lsig_account.sign_with_signer(signer[, multisig])``
        calls this.
        """
        lsig = lsig_account.lsig
        what = f"delegation of program {lsig.address()}" + (
            f" via multisig {multisig.address()}" if multisig is not None else ""
        )
        info: KeyInfo | None = None
        try:
            info, _ = self._key_info()
            message, index = self._delegation(info, lsig, multisig)
            info, (signature,), request_ids = self._sign([message])
        except exc.ConfioKMSError as error:
            outcome = "refused" if isinstance(error, exc.PolicyViolationError) else "failed"
            audit.record(
                info, self.key_alias, [], outcome, (), f"delegation {type(error).__name__}"
            )
            raise
        if multisig is None:
            lsig.sig = base64.b64encode(signature).decode()
            lsig_account.sigkey = encoding.decode_address(info.signer_address)
        else:
            if lsig.lmsig is None:
                lsig.lmsig = multisig.get_multisig_account()
            lsig.lmsig.subsigs[index].signature = signature
        audit.record(info, self.key_alias, [], "signed", request_ids, what)

    def append_to_logicsig_multisig(self, lsig_account: transaction.LogicSigAccount) -> None:
        """Add this member's subsignature to a multisig-delegated ``lsig_account``."""
        if lsig_account.lsig.lmsig is None:
            raise exc.InvalidMultisigError(
                "This logic signature is not delegated to a multisig account.",
                fix="Delegate it with sign_logicsig(lsig, multisig) first.",
            )
        self.sign_logicsig(lsig_account, lsig_account.lsig.lmsig)

    def _delegation(
        self,
        info: KeyInfo,
        lsig: transaction.LogicSig,
        multisig: transaction.Multisig | None,
    ) -> tuple[bytes, int]:
        """Check a delegation request; return (bytes to sign, subsignature index)."""
        if not self.policy.allow_delegation:
            raise exc.PolicyViolationError(
                f"alias/{info.name} refused to delegate a logic signature: delegation gives "
                "the program open-ended authority over the account; nothing was signed.",
                fix="Allow it deliberately: CONFIO_KMS_ALLOW_DELEGATION = True, or "
                "KMSSigner(..., policy=SigningPolicy(allow_delegation=True)).",
            )
        if multisig is None:
            if lsig.sig or lsig.msig or lsig.lmsig or getattr(lsig, "pqsig", None):
                raise exc.InvalidSigningRequestError(
                    "This logic signature is already signed; nothing was changed.",
                    fix="Delegate a fresh LogicSigAccount.",
                )
            return constants.logic_prefix + lsig.logic, -1
        if (
            lsig.sig
            or lsig.msig
            or getattr(lsig, "pqsig", None)
            or (lsig.lmsig is not None and lsig.lmsig.address() != multisig.address())
        ):
            raise exc.InvalidMultisigError(
                "The logic signature is already delegated otherwise; nothing was changed.",
                fix="Pass the multisig it was first delegated with, or a fresh LogicSigAccount.",
            )
        members = [sub.public_key for sub in multisig.subsigs]
        public_key = encoding.decode_address(info.signer_address)
        if public_key not in members:
            raise exc.InvalidMultisigError(
                f"{info.signer_address} is not a member of multisig {multisig.address()}.",
                fix="Sign with one of the multisig's member keys.",
            )
        message = constants.multisig_logic_prefix + multisig.address_bytes() + lsig.logic
        return message, members.index(public_key)

    def _sign(
        self,
        messages: list[bytes],
        check: Callable[[KeyInfo], None] = lambda info: None,
        resolved: tuple[KeyInfo, bool] | None = None,
    ) -> tuple[KeyInfo, list[bytes], list[str]]:
        """Sign with the key; return (key info used, signatures, AWS request ids)."""
        info, from_cache = resolved or self._key_info()
        check(info)
        key = self._key(info)
        try:
            return info, key.sign(messages), key.request_ids
        except exc.AddressMismatchError:
            if not from_cache:
                raise
            # The alias may have been re-created since the lookup was cached: look
            # again, and sign only if AWS now reports a different key.
            fresh, _ = self._key_info(refresh=True)
            if fresh == info:
                raise
            check(fresh)
            key = self._key(fresh)
            return fresh, key.sign(messages), key.request_ids

    def _key(self, info: KeyInfo) -> AlgorandKey:
        return key_for(self._aws, info, self._prefix)

    def _key_info(self, *, refresh: bool = False) -> tuple[KeyInfo, bool]:
        """Return (key info, whether it came from a cache)."""
        if refresh:
            cache.forget(self._aws.scope, self.name)
        return cache.lookup(self._aws, self.name)

    def __repr__(self) -> str:
        return f"KMSSigner({self.key_alias!r}, region_name={self._aws.region!r})"


def select(
    txn_group: Sequence[transaction.Transaction], indexes: Sequence[int] | None
) -> list[transaction.Transaction]:
    if isinstance(txn_group, transaction.Transaction) or not isinstance(txn_group, Sequence):
        raise exc.NotATransactionError(
            f"Expected a list of transactions, got {type(txn_group).__name__}.",
            fix="Use sign_transaction(txn) for one transaction, sign_transactions([txn, ...]) "
            "for a group.",
        )
    if indexes is None:
        indexes = range(len(txn_group))
    chosen = []
    for i in indexes:
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(txn_group):
            raise exc.InvalidSigningRequestError(
                f"Index {i!r} is not a position in a group of {len(txn_group)} transaction(s).",
                fix="Pass indexes between 0 and len(txn_group) - 1.",
            )
        txn = txn_group[i]
        if not isinstance(txn, transaction.Transaction):
            raise exc.NotATransactionError(
                f"Item {i} is a {type(txn).__name__}, not an algosdk Transaction.",
                fix="Pass unsigned algosdk.transaction.Transaction objects "
                "(PaymentTxn, AssetTransferTxn, ApplicationCallTxn, ...).",
            )
        chosen.append(txn)
    return chosen
