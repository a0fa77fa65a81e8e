"""The signing core: from transactions to signed transactions, for every signing path.

``KMSSigner``, multisig and rotation all sign through here: transactions are
checked and encoded (py-algorand-sdk's ``Transaction.bytes_to_sign``), the
alias is resolved through the cache, the signing policy is checked, the key kind
signs every message of the call at once (one decrypt for an envelope key; this is
why py-algorand-sdk's per-transaction ``Ed25519AlgorandSigner`` is not used), and one
audit record is emitted per call.

A cached key that fails in a way a moved alias explains (``STALE``: key state, access
denied, not found, address mismatch) gets one fresh lookup, and the call is retried
once if the alias now names another key; both within the call's deadline. A call that
still fails with one of those is remembered for ``cache.FAILURE_SECONDS`` (1 s): the
calls in that window fail with the same typed error and no AWS request, until the
window ends or the alias is forgotten (a rotation, here or in any process sharing the
cache), so a failing key costs one attempt per second per process, and a recovery is
seen within a second.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from algosdk import constants, encoding, transaction

from confio_kms.algorand.validation import Alias, same_address
from confio_kms.common import exceptions as exc
from confio_kms.core import audit, cache, guard, kinds, telemetry
from confio_kms.core.aws import AWSClients
from confio_kms.core.keys import KeyInfo
from confio_kms.core.options import EVERY_NETWORK
from confio_kms.core.policy import NOTHING_EXTRA, Allow, SigningPolicy


def signing_bytes(txn: transaction.Transaction) -> bytes:
    """The bytes an Algorand transaction signature covers: ``b"TX" + msgpack(txn)``."""
    return bytes(txn.bytes_to_sign())


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


def select(
    txn_group: Sequence[transaction.Transaction], indexes: Sequence[int] | None
) -> list[transaction.Transaction]:
    """The transactions at ``indexes`` (all when None), checked to be transactions."""
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


def attach(
    info: KeyInfo, txn: transaction.Transaction, signature: bytes
) -> transaction.SignedTransaction:
    """A SignedTransaction; it names the authorizer when the sender is another account."""
    auth = None if same_address(txn.sender, info.signer_address) else info.signer_address
    return transaction.SignedTransaction(txn, base64.b64encode(signature).decode(), auth)


def delegation_message(
    policy: SigningPolicy,
    info: KeyInfo,
    lsig: transaction.LogicSig,
    multisig: transaction.Multisig | None,
) -> tuple[bytes, int]:
    """Check a delegation request; return (bytes to sign, subsignature index or -1)."""
    if policy.allow_delegation != EVERY_NETWORK:
        raise exc.PolicyViolationError(
            f"{Alias(info.name)} refused to delegate a logic signature: delegation gives "
            "the program open-ended authority over the account on every network (what is "
            "signed names no genesis hash: a delegation signed for testnet is valid on "
            "mainnet if the address exists there); nothing was signed.",
            fix=f'Consent to that deliberately: CONFIO_KMS_ALLOW_DELEGATION = "{EVERY_NETWORK}", '
            f'or KMSSigner(..., policy=SigningPolicy(allow_delegation="{EVERY_NETWORK}")).',
            rule="delegation",
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


@dataclass(frozen=True)
class Signatures:
    """What one signing call produced: the key info used, signatures, AWS request ids."""

    info: KeyInfo
    signatures: list[bytes]
    request_ids: list[str]
    parameter_arn: str = ""  # the envelope key's parameter (CloudTrail's Decrypt context)


# Failures of a cached key that a moved alias explains: a fresh lookup may cure them.
STALE = (exc.KeyStateError, exc.AccessDeniedError, exc.KeyNotFoundError, exc.AddressMismatchError)


def lookup(aws: AWSClients, name: str) -> tuple[KeyInfo, bool]:
    """Return (key info, whether it came from a cache), asking AWS only on a miss; the
    caches and timeout are ``aws.options``'."""
    info, since = cache.read(aws.scope, name, aws.options, kinds.KINDS)
    if info is not None:
        return info, True
    info = kinds.resolve(aws, name)
    cache.put(aws.scope, name, info, since, aws.options)
    return info, False


class KeyHandle:
    """An alias in one AWS account and region, resolved through the cache."""

    def __init__(self, aws: AWSClients, prefix: str, name: str) -> None:
        self.aws = aws
        self.prefix = prefix
        self.name = name
        # The cache generation this handle's last lookup started in: what a failure
        # is remembered under (a bounded handle serves one call).
        self._since: cache.Generation | None = None

    @property
    def alias(self) -> str:
        return str(Alias(self.name))

    def bounded(self) -> KeyHandle:
        """This handle for one signing call: its AWS requests (lookups and retries
        included) share one deadline, ``CONFIO_KMS_CALL_DEADLINE`` from now."""
        return KeyHandle(self.aws.bounded(), self.prefix, self.name)

    def info(self) -> tuple[KeyInfo, bool]:
        """Return (key info, whether it came from a cache); a failure remembered for
        the alias is raised again instead (no AWS request)."""
        scope, options = self.aws.scope, self.aws.options
        remembered = cache.remembered_failure(scope, self.name, self.prefix, options)
        if remembered is not None:
            raise remembered
        info, self._since = cache.read(scope, self.name, options, kinds.KINDS)
        if info is not None:
            return info, True
        try:
            info = kinds.resolve(self.aws, self.name)
        except STALE as error:
            self._remember(error)
            raise
        cache.put(scope, self.name, info, self._since, options)
        return info, False

    def sign(
        self,
        messages: list[bytes],
        check: Callable[[KeyInfo], None] = lambda info: None,
        resolved: tuple[KeyInfo, bool] | None = None,
    ) -> Signatures:
        """Sign ``messages`` with the key, after ``check(info)`` passes.

        A cached key that fails with a ``STALE`` error is looked up again, and the
        call retried once if the alias now names another key; a ``STALE`` failure of
        a call that resolved through the cache is remembered (``cache.remember_failure``).
        """
        if self.aws.deadline is None:  # not yet bounded by a caller (sign_group)
            return self.bounded().sign(messages, check, resolved)
        info, from_cache = resolved or self.info()
        check(info)
        try:
            return self._sign_with(info, messages)
        except STALE as error:
            fresh = self._moved(info) if from_cache else None
            if fresh is None:
                self._remember(error)
                raise
        check(fresh)
        try:
            return self._sign_with(fresh, messages)
        except STALE as error:
            self._remember(error)
            raise

    def _sign_with(self, info: KeyInfo, messages: list[bytes]) -> Signatures:
        key = kinds.key_for(self.aws, info, self.prefix)
        return Signatures(info, key.sign(messages), key.request_ids, key.parameter_arn)

    def _moved(self, cached: KeyInfo) -> KeyInfo | None:
        """What the alias names now, asked of AWS, if not ``cached``; else None."""
        try:
            fresh = kinds.resolve(self.aws, self.name)
        except STALE as error:
            self._remember(error)
            raise
        if fresh == cached:
            return None
        # Moved without this process being told (no shared cache, or moved outside
        # confio_kms): tell every process sharing the cache. Not cached here: the next
        # lookup, made after the forget, cannot cache what an older move left.
        scope, options = self.aws.scope, self.aws.options
        cache.forget(scope, self.name, options)
        if self._since is not None:
            self._since = cache.generation(scope, self.name, options)
        return fresh

    def _remember(self, error: exc.ConfioKMSError) -> None:
        """Remember ``error`` for the alias, if this call resolved it through the cache."""
        if self._since is not None:
            cache.remember_failure(self.aws.scope, self.name, self.prefix, error, self._since)


@telemetry.signing_call
def sign_group(
    handle: KeyHandle,
    policy: SigningPolicy,
    chosen: list[transaction.Transaction],
    *,
    allow: Allow = NOTHING_EXTRA,
    info: KeyInfo | None = None,
    detail: str = "",
    end_user: str = "",
) -> list[transaction.SignedTransaction]:
    """Sign every transaction of ``chosen`` in one call, or raise; one audit record either way.

    ``info``: key info just read from KMS, instead of the cached lookup. ``end_user``:
    whom the call is for, counted against the key's per-end-user limits. A paused key or
    an exceeded limit is refused before any AWS request (``guard.admit``); what the
    call reserved of the limits is given back if it fails.
    """
    if not chosen:
        return []
    handle = handle.bounded()  # one deadline for the whole call

    def check(key: KeyInfo) -> None:
        policy.check(key, chosen, allow)

    used: KeyInfo | None = info
    options = handle.aws.options
    reservation = guard.NOTHING_RESERVED
    try:
        messages = encoded(chosen)
        limits = options.limits_for(handle.name)
        reservation = guard.admit(options.guard, limits, handle.name, chosen, end_user)
        resolved = (info, False) if info is not None else handle.info()
        used = resolved[0]
        result = handle.sign(messages, check, resolved)
    except BaseException as error:
        reservation.release()
        if not isinstance(error, exc.ConfioKMSError):
            raise
        outcome = "refused" if isinstance(error, exc.PolicyViolationError) else "failed"
        failure = f"{detail} {type(error).__name__} {getattr(error, 'limit', '')}".strip()
        audit.record(
            used, handle.alias, chosen, outcome, (), failure, sink=handle.aws.options.audit_sink
        )
        raise
    reservation.commit()
    signed = [
        attach(result.info, txn, sig) for txn, sig in zip(chosen, result.signatures, strict=True)
    ]
    audit.record(
        result.info,
        handle.alias,
        chosen,
        "signed",
        result.request_ids,
        detail,
        messages=messages,
        sink=handle.aws.options.audit_sink,
        parameter_arn=result.parameter_arn,
    )
    return signed
