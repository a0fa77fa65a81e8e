"""The sponsor service: signs with KMS or, until migrated, the legacy mnemonic,
and pays users' transaction fees from the sponsor account.

Fee sponsoring uses Algorand's fee pooling: the user transactions carry zero fee,
and a payment from the sponsor to itself, first in the same atomic group, pays
the fee of every transaction in the group.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import threading
from collections.abc import Sequence

from algosdk import account, constants, encoding, transaction
from algosdk.atomic_transaction_composer import AccountTransactionSigner, TransactionSigner

from confio_kms import factory as conf
from confio_kms import settings as config
from confio_kms import sponsor_health
from confio_kms.algorand import validation
from confio_kms.algorand.networks import MAX_GROUP_SIZE
from confio_kms.common import exceptions
from confio_kms.common.redaction import HiddenSetting, holds_secrets
from confio_kms.core import awaitable
from confio_kms.core.signer import KMSSigner

DEFAULT_FEE_CAP = 20_000  # microalgos for a whole sponsored group
# Largest encoded user transaction accepted from a client: a payment, asset transfer
# or app call with arguments fits easily; anything larger is refused before decoding.
MAX_ENCODED_TXN_BYTES = 4096


class AlgorandSponsorService:
    """Signs for the sponsor account with the signer the settings select.

    ``USE_KMS_SIGNING`` on: ``KMSSigner`` for the active network's alias.
    Off: the legacy ``ALGORAND_ADMIN_MNEMONIC``. Pass ``signer`` and ``address``
    to use another signer (tests, a multisig). ``balance_guard``: refuses sponsoring
    below the floor (``confio_kms.sponsor_health``); None takes the settings' (none
    unless ``CONFIO_KMS_SPONSOR_MIN_BALANCE`` is set).
    """

    @holds_secrets  # the legacy path holds the mnemonic and its private key
    def __init__(
        self,
        signer: TransactionSigner | None = None,
        address: str | None = None,
        *,
        balance_guard: sponsor_health.BalanceGuard | None = None,
    ) -> None:
        self.fee_cap: int = config.sponsor_fee_cap(DEFAULT_FEE_CAP)
        self.balance_guard = balance_guard or sponsor_health.guard_from_settings()
        if signer is not None:
            if address is None and not isinstance(signer, KMSSigner):
                raise exceptions.ConfigurationError(
                    "A custom signer needs the sponsor address.",
                    fix="Pass address=ADDRESS along with signer=SIGNER.",
                )
            self.signer, self._address = signer, address
        elif config.kms_settings().use_kms_signing:
            self.signer, self._address = conf.kms_signer(), None
        else:
            self.signer, self._address = _legacy_signer()

    @property
    def uses_kms(self) -> bool:
        return isinstance(self.signer, KMSSigner)

    @property
    def sponsor_address(self) -> str:
        if self._address is not None:
            return self._address
        if isinstance(self.signer, KMSSigner):
            return self.signer.address
        raise exceptions.ConfigurationError(  # __init__ makes this unreachable
            "The sponsor service has no address for its signer.",
            fix="Pass address=ADDRESS along with signer=SIGNER.",
        )

    def sign_transaction(
        self, txn: transaction.Transaction
    ) -> transaction.GenericSignedTransaction:
        return self.sign_transactions([txn])[0]

    def sign_transactions(
        self, txns: Sequence[transaction.Transaction]
    ) -> list[transaction.GenericSignedTransaction]:
        return list(self.signer.sign_transactions(list(txns), list(range(len(txns)))))

    def sponsor_group(
        self, user_txns: Sequence[transaction.Transaction], sp: transaction.SuggestedParams
    ) -> list[transaction.GenericSignedTransaction | transaction.Transaction]:
        """Prepend a fee-paying sponsor payment, group, and sign only the sponsor's part.

        Returns ``[signed sponsor payment, *user_txns]``: the user transactions now
        carry the group id and still need their senders' signatures.
        """
        sponsor = self.sponsor_address
        users = _check_user_txns(user_txns, sponsor)
        payment = transaction.PaymentTxn(sponsor, sp, sponsor, 0, note=b"confio-kms fee sponsor")
        payment.fee = sum(_min_fee(txn, sp) for txn in [payment, *users])
        if payment.fee > self.fee_cap:
            raise exceptions.SponsorPolicyError(
                f"Sponsoring these {len(users)} transaction(s) costs {payment.fee} microalgos, "
                f"over the fee cap of {self.fee_cap}; nothing was signed.",
                fix="Wait for lower fees, send fewer transactions per group, or raise "
                "ALGORAND_SPONSOR_FEE_CAP.",
            )
        # Built here, so these hold; checked (not asserted: -O strips asserts) because
        # they are what must never happen.
        if payment.close_remainder_to is not None or payment.rekey_to is not None:
            raise exceptions.SponsorPolicyError(
                "The sponsor payment would close or rekey the sponsor account; nothing was signed.",
                fix="Report this as a bug in confio-kms.",
            )
        self._require_balance(sponsor, payment.fee)
        transaction.assign_group_id([payment, *users])
        try:
            signed = self.sign_transaction(payment)
        except BaseException:
            for txn in users:  # as they came: the caller may retry with them
                txn.group = None
            if self.balance_guard is not None:
                self.balance_guard.release(sponsor, payment.fee)
            raise
        return [signed, *users]

    def _require_balance(self, sponsor: str, fee: int) -> None:
        """Refuse (``SponsorBalanceError``, before any signing request) a fee that would
        take the sponsor under its floor; the balance is read at most every few seconds."""
        if self.balance_guard is not None:
            self.balance_guard.require(sponsor, fee)

    async def asign_transaction(
        self, txn: transaction.Transaction
    ) -> transaction.GenericSignedTransaction:
        """``sign_transaction``, awaitable: the event loop runs on meanwhile."""
        return (await self.asign_transactions([txn]))[0]

    async def asign_transactions(
        self, txns: Sequence[transaction.Transaction]
    ) -> list[transaction.GenericSignedTransaction]:
        """``sign_transactions``, awaitable (``confio_kms.core.awaitable``), KMS or
        legacy signer alike."""
        group = list(txns)
        return await awaitable.run(lambda: self.sign_transactions(group))

    async def asponsor_group(
        self, user_txns: Sequence[transaction.Transaction], sp: transaction.SuggestedParams
    ) -> list[transaction.GenericSignedTransaction | transaction.Transaction]:
        """``sponsor_group``, awaitable: the same checks, fee cap and audit record.

        Cancelled, the user transactions are left without a group id, as after a
        failure, so they can be sponsored again: at once if the work had not started
        or had ended, else when it ends in its thread (within the call deadline).
        """
        users = list(user_txns)
        undo = _UndoOnCancel(users)

        def work() -> list[transaction.GenericSignedTransaction | transaction.Transaction]:
            try:
                return self.sponsor_group(users, sp)
            finally:
                undo.finished()

        try:
            return await awaitable.run(work)
        except asyncio.CancelledError:
            undo.cancelled()
            raise


class _UndoOnCancel:
    """Ungroups the user transactions of a cancelled ``asponsor_group`` once, from
    whichever side (the coroutine or the thread) comes second."""

    def __init__(self, users: list[transaction.Transaction]) -> None:
        self._users = users
        self._lock = threading.Lock()
        self._done = self._cancel = False

    def finished(self) -> None:
        with self._lock:
            self._done, undo = True, self._cancel
        if undo:
            self._ungroup()

    def cancelled(self) -> None:
        with self._lock:
            self._cancel, undo = True, self._done
        if undo:
            self._ungroup()

    def _ungroup(self) -> None:
        for txn in self._users:
            txn.group = None


@holds_secrets  # the phrase and its private key live in this call's frames only
def _legacy_signer() -> tuple[_MnemonicSigner, str]:
    """The signer and address of ``ALGORAND_ADMIN_MNEMONIC``. The phrase is held as a
    ``HiddenSetting`` (its repr and str a marker), so no rendering of a frame shows it."""
    phrase = HiddenSetting(config.admin_mnemonic())
    if not phrase:
        raise exceptions.ConfigurationError(
            "USE_KMS_SIGNING is off and ALGORAND_ADMIN_MNEMONIC is not set.",
            fix="Turn USE_KMS_SIGNING on (see `manage.py kms_setup`), or set "
            f"ALGORAND_ADMIN_MNEMONIC in {config.places('ALGORAND_ADMIN_MNEMONIC')}.",
        )
    signer = _MnemonicSigner(validation.private_key_from_mnemonic(phrase))
    del phrase
    # A rekeyed account: the mnemonic is its authorizing key's, the address its own.
    address = config.configured_sponsor_address() or str(
        account.address_from_private_key(signer.private_key)
    )
    return signer, address


class _MnemonicSigner(AccountTransactionSigner):
    """The legacy mnemonic's signer: py-algorand-sdk's, whose signing frames hold the
    private key, so failures leave them out of tracebacks (``holds_secrets``)."""

    @holds_secrets
    def sign_transactions(
        self, txn_group: list[transaction.Transaction], indexes: list[int]
    ) -> list[transaction.GenericSignedTransaction]:
        return list(super().sign_transactions(txn_group, indexes))

    def __repr__(self) -> str:
        return "<legacy mnemonic signer: key hidden>"


def decode_user_transactions(encoded: object) -> list[transaction.Transaction]:
    """Decode unsigned transactions sent by an untrusted client as base64 msgpack.

    Anything else (not a list, too many, not base64, oversized, not msgpack, not a
    transaction, a signed transaction, a non-canonical encoding) raises
    ``UntrustedInputError``; nothing from the input is echoed in the message.
    """
    if not isinstance(encoded, list | tuple):
        raise _untrusted(f"expected a list of base64 strings, got {type(encoded).__name__}")
    if not 1 <= len(encoded) < MAX_GROUP_SIZE:
        raise _untrusted(f"expected 1 to {MAX_GROUP_SIZE - 1} transactions, got {len(encoded)}")
    return [_decode_one(i, item) for i, item in enumerate(encoded)]


def _decode_one(index: int, item: object) -> transaction.Transaction:
    if not isinstance(item, str):
        raise _untrusted(f"item {index} is a {type(item).__name__}, not a base64 string")
    if len(item) > (MAX_ENCODED_TXN_BYTES * 4) // 3 + 4:
        raise _untrusted(f"item {index} is over {MAX_ENCODED_TXN_BYTES} bytes")
    try:
        raw = base64.b64decode(item, validate=True)
    except (binascii.Error, ValueError):
        raise _untrusted(f"item {index} is not valid base64") from None
    try:
        decoded = encoding.msgpack_decode(item)
    except Exception:
        decoded = None
    if isinstance(decoded, transaction.SignedTransaction | transaction.MultisigTransaction):
        raise _untrusted(f"item {index} is already signed; send unsigned transactions")
    if not isinstance(decoded, transaction.Transaction):
        raise _untrusted(f"item {index} is not an msgpack-encoded Algorand transaction")
    # Fields the decoder does not know would be dropped silently: the bytes the users
    # sign must be the bytes they sent.
    if base64.b64decode(encoding.msgpack_encode(decoded)) != raw:
        raise _untrusted(f"item {index} is not in canonical encoding")
    return decoded


def _untrusted(reason: str) -> exceptions.UntrustedInputError:
    return exceptions.UntrustedInputError(
        f"Refused the transactions sent for sponsoring: {reason}; nothing was signed.",
        fix="Send a list of unsigned transactions, each encoded with "
        "algosdk.encoding.msgpack_encode.",
    )


def _min_fee(txn: transaction.Transaction, sp: transaction.SuggestedParams) -> int:
    min_fee = int(sp.min_fee or constants.MIN_TXN_FEE)
    if sp.flat_fee:
        return max(min_fee, int(sp.fee or 0))
    return max(min_fee, int(sp.fee or 0) * int(txn.estimate_size()))


def _check_user_txns(
    user_txns: Sequence[transaction.Transaction], sponsor: str
) -> list[transaction.Transaction]:
    users = list(user_txns)
    if not 1 <= len(users) < MAX_GROUP_SIZE:
        raise exceptions.SponsorPolicyError(
            f"A sponsored group holds 1 to {MAX_GROUP_SIZE - 1} user transactions, "
            f"not {len(users)}.",
            fix="Split the transactions into several groups.",
        )
    for i, txn in enumerate(users):
        if not isinstance(txn, transaction.Transaction):
            raise exceptions.NotATransactionError(
                f"User transaction {i} is a {type(txn).__name__}, not an algosdk Transaction.",
                fix="Pass unsigned algosdk transactions.",
            )
        problem = None
        if validation.same_address(txn.sender, sponsor):
            problem = "is sent from the sponsor account"
        elif txn.fee != 0:
            problem = f"carries a fee of {txn.fee}; sponsored transactions carry zero fee"
        elif txn.group is not None:
            problem = "already belongs to a group"
        if problem:
            raise exceptions.SponsorPolicyError(
                f"User transaction {i} {problem}; nothing was signed.",
                fix="Build user transactions with flat_fee=True and fee=0, from the users' "
                "own accounts, without a group id.",
            )
    return users
