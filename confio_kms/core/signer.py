"""KMSSigner: a py-algorand-sdk TransactionSigner whose key is held in AWS KMS.

This is the plain-Python class: it reads no settings, only its arguments and its
``Options``. The package's top-level ``confio_kms.KMSSigner`` is the Django app's
subclass (``confio_kms.signers``), whose options default to the settings'.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TypeVar, Unpack

import boto3
from algosdk import encoding, transaction
from algosdk.atomic_transaction_composer import TransactionSigner

from confio_kms.algorand import validation
from confio_kms.algorand.validation import DEFAULT_SSM_PREFIX, alias_name
from confio_kms.common import exceptions as exc
from confio_kms.core import audit, awaitable, guard, telemetry
from confio_kms.core.aws import AWSClients
from confio_kms.core.keys import KeyInfo
from confio_kms.core.options import DEFAULTS, Options
from confio_kms.core.policy import AllowFlags, SigningPolicy, allow_from
from confio_kms.core.signing import KeyHandle, delegation_message, select, sign_group


class KMSSigner(TransactionSigner):
    """Signs for the Algorand account behind a KMS alias.

    Works wherever py-algorand-sdk takes a TransactionSigner
    (``AtomicTransactionComposer``, ``TransactionWithSigner``,
    ``sign_transaction_with_signer``), and delegates logic signatures
    (``LogicSigAccount.sign_with_signer``). The address and the kind of key come
    from the KMS key (tags, key spec) once and are cached. An envelope key costs one
    AWS request per signing call, whatever the group size; a native key one KMS Sign
    request per transaction, sent concurrently.

    ``options`` (``confio_kms.core.options.Options``; None: the plain defaults, never
    the settings) configures the AWS clients, the lookup cache, the audit sink and the
    signing policy; ``policy`` replaces the policy the options describe.
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
        options: Options | None = None,
    ) -> None:
        super().__init__()
        name = alias_name(key_alias)
        options = options if options is not None else DEFAULTS
        self.policy = policy or SigningPolicy.of(options)
        aws = AWSClients(region_name, endpoint_url=endpoint_url, session=session, options=options)
        self._handle = KeyHandle(aws, validation.ssm_prefix(ssm_prefix), name)

    @property
    def name(self) -> str:
        return self._handle.name

    @property
    def key_alias(self) -> str:
        return self._handle.alias

    @property
    def region_name(self) -> str:
        return self._handle.aws.region

    @property
    def options(self) -> Options:
        """The options this signer was built with."""
        return self._handle.aws.options

    @property
    def clients(self) -> AWSClients:
        """The boto3 session and KMS/SSM clients this signer uses (built once)."""
        return self._handle.aws

    @property
    def address(self) -> str:
        """The account address, from the KMS key's tags (cached after the first lookup)."""
        return self._info().address

    @property
    def signer(self) -> KMSSigner:
        """This signer. With ``address``, it makes a KMSSigner an algokit-utils account
        (``TransactionSignerAccountProtocol``), usable wherever algokit takes one."""
        return self

    @property
    def signer_address(self) -> str:
        """The key's own address: ``address`` unless the account was rekeyed to this key."""
        return self._info().signer_address

    @property
    def network(self) -> str:
        return self._info().network

    @property
    def kind(self) -> str:
        """The key's kind (``envelope``, ``native``), from its KMS key spec."""
        return self._info().kind

    def sign_transaction(
        self,
        txn: transaction.Transaction | None = None,
        *,
        transaction: transaction.Transaction | None = None,
    ) -> transaction.SignedTransaction:
        """Sign one transaction (one AWS request). ``transaction=`` is the old scripts'
        keyword for ``txn``."""
        return self.sign_transactions([_one(txn, transaction, "txn", "transaction")], [0])[0]

    def sign_transaction_msgpack(
        self,
        txn: transaction.Transaction | None = None,
        *,
        transaction: transaction.Transaction | None = None,
    ) -> str:
        """Sign one transaction; return it as base64 msgpack, ready for algod's
        ``send_raw_transaction`` (the old scripts' call)."""
        signed = self.sign_transaction(_one(txn, transaction, "txn", "transaction"))
        return str(encoding.msgpack_encode(signed))

    def sign_transactions_msgpack(
        self,
        txns: Sequence[transaction.Transaction] | None = None,
        *,
        transactions: Sequence[transaction.Transaction] | None = None,
    ) -> list[str]:
        """Sign every transaction in one call (one decrypt for an envelope key); return
        each as base64 msgpack (the old scripts' call)."""
        signed = self.sign_transactions(_one(txns, transactions, "txns", "transactions"))
        return [str(encoding.msgpack_encode(s)) for s in signed]

    def assert_matches_address(self, expected: str | None) -> None:
        """Raise ``ConfiguredAddressMismatchError`` (an ``ImproperlyConfigured``) unless
        the key signs for ``expected``; an empty ``expected`` checks nothing."""
        if not expected:
            return
        if expected != self.address:
            raise exc.ConfiguredAddressMismatchError(
                f"{self.key_alias} signs for {self.address}, but {expected} was expected.",
                fix="Point the setting (ALGORAND_SPONSOR_ADDRESS, ALGORAND_ADMIN_ADDRESS) at "
                "the key's address, or the alias at the right key (`manage.py kms_list`).",
            )

    def sign_transactions(  # type: ignore[override]
        self,
        txn_group: Sequence[transaction.Transaction] | None = None,
        indexes: Sequence[int] | None = None,
        *,
        transactions: Sequence[transaction.Transaction] | None = None,
        end_user: str = "",
        **allow: Unpack[AllowFlags],
    ) -> list[transaction.SignedTransaction]:
        """Sign ``txn_group[i]`` for each ``i`` in ``indexes`` (all when None), in that order.

        The signing policy is checked first (network, fee cap, and no rekey,
        close-out, non-participation, asset destroy or application delete, application
        update, ClearState, or asset config clearing a role unless allowed here: see
        ``confio_kms.core.policy``). A transaction whose
        sender is not this key's address (an account rekeyed to it) gets the
        authorizing address set. Either every transaction is signed or the call
        raises; either way one audit record is emitted. ``transactions=`` is the old
        scripts' keyword for ``txn_group``. ``end_user``: whom the call is for (e.g. a
        user id), counted against the key's per-end-user limits (docs/limits.md).
        """
        return sign_group(
            self._handle,
            self.policy,
            select(_one(txn_group, transactions, "txn_group", "transactions"), indexes),
            allow=allow_from(allow),
            end_user=end_user,
        )

    async def asign_transaction(
        self,
        txn: transaction.Transaction | None = None,
        *,
        transaction: transaction.Transaction | None = None,
    ) -> transaction.SignedTransaction:
        """``sign_transaction``, awaitable: the event loop runs on meanwhile
        (``confio_kms.core.awaitable``; cancelling it: docs/async.md)."""
        one = _one(txn, transaction, "txn", "transaction")
        return await awaitable.run(lambda: self.sign_transaction(one))

    async def asign_transactions(
        self,
        txn_group: Sequence[transaction.Transaction] | None = None,
        indexes: Sequence[int] | None = None,
        *,
        transactions: Sequence[transaction.Transaction] | None = None,
        end_user: str = "",
        **allow: Unpack[AllowFlags],
    ) -> list[transaction.SignedTransaction]:
        """``sign_transactions``, awaitable, with the same policy, limits, audit record
        and coalescing: coroutines overlapping an envelope key's decrypt share it."""
        group = _one(txn_group, transactions, "txn_group", "transactions")
        return await awaitable.run(
            lambda: self.sign_transactions(group, indexes, end_user=end_user, **allow)
        )

    @telemetry.signing_call
    def sign_logicsig(
        self,
        lsig_account: transaction.LogicSigAccount,
        multisig: transaction.Multisig | None = None,
    ) -> None:
        """Delegate ``lsig_account`` to this key, in place.

        Delegation hands the program open-ended authority over the account on every
        network (what is signed names no genesis), so it is refused unless the signing
        policy consents with ``"every-network"`` (``CONFIO_KMS_ALLOW_DELEGATION``,
        ``Options(allow_delegation=...)`` or ``SigningPolicy(allow_delegation=...)``).
        Alone, the key signs
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
            guard.admit(self.options.guard, None, self.name, [])  # a paused key delegates nothing
            info = self._info()
            message, index = delegation_message(self.policy, info, lsig, multisig)
            result = self._handle.sign([message])
        except exc.ConfioKMSError as error:
            outcome = "refused" if isinstance(error, exc.PolicyViolationError) else "failed"
            audit.record(
                info,
                self.key_alias,
                [],
                outcome,
                (),
                f"delegation {type(error).__name__}",
                sink=self.options.audit_sink,
            )
            raise
        (signature,) = result.signatures
        if multisig is None:
            lsig.sig = base64.b64encode(signature).decode()
            lsig_account.sigkey = encoding.decode_address(result.info.signer_address)
        else:
            if lsig.lmsig is None:
                lsig.lmsig = multisig.get_multisig_account()
            lsig.lmsig.subsigs[index].signature = signature
        audit.record(
            result.info,
            self.key_alias,
            [],
            "signed",
            result.request_ids,
            what,
            sink=self.options.audit_sink,
        )

    def append_to_logicsig_multisig(self, lsig_account: transaction.LogicSigAccount) -> None:
        """Add this member's subsignature to a multisig-delegated ``lsig_account``."""
        if lsig_account.lsig.lmsig is None:
            raise exc.InvalidMultisigError(
                "This logic signature is not delegated to a multisig account.",
                fix="Delegate it with sign_logicsig(lsig, multisig) first.",
            )
        self.sign_logicsig(lsig_account, lsig_account.lsig.lmsig)

    def _info(self) -> KeyInfo:
        return self._handle.info()[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key_alias!r}, region_name={self.region_name!r})"


T = TypeVar("T")


def _one(value: T | None, old: T | None, name: str, old_name: str) -> T:
    """The argument passed either by its name or by the old scripts' keyword."""
    if (value is None) == (old is None):
        raise exc.NotATransactionError(
            f"Pass exactly one of {name} and {old_name}= (they are the same argument).",
            fix=f"Call with the transaction(s) positionally, or as {old_name}=, not both.",
        )
    return value if value is not None else old  # type: ignore[return-value]
