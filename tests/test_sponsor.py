"""The sponsor service: KMS or legacy mnemonic, and fee sponsoring checked on
Algorand's ledger evaluator."""

from __future__ import annotations

import pytest
from algosdk import mnemonic, transaction
from algosdk.atomic_transaction_composer import (
    AccountTransactionSigner,
    sign_transaction_with_signer,
)
from django.test import override_settings

from confio_kms import KMSSigner  # the Django app's: options from the settings
from confio_kms.common import exceptions
from confio_kms.sandbox import LocalLedger
from confio_kms.sponsor import AlgorandSponsorService

from .helpers import EnvelopeKey, new_account, same_bytes, sdk_signed, zero_fee_params

ALIAS = "confio-testnet-sponsor"


@pytest.fixture
def sponsor_key(envelope_key: EnvelopeKey) -> tuple[str, str]:
    """The sponsor's account, created in KMS; returns (private_key, address)."""
    return envelope_key(ALIAS)


@pytest.fixture
def kms_service(sponsor_key: tuple[str, str]) -> AlgorandSponsorService:
    with override_settings(USE_KMS_SIGNING=True):
        return AlgorandSponsorService()


def user_payment(
    ledger: LocalLedger, sender: str, receiver: str, amount: int
) -> transaction.Transaction:
    return transaction.PaymentTxn(sender, zero_fee_params(ledger), receiver, amount)


def test_kms_service_signs_as_the_key(
    kms_service: AlgorandSponsorService, sponsor_key: tuple[str, str], ledger: LocalLedger
) -> None:
    private_key, address = sponsor_key
    assert kms_service.uses_kms and kms_service.sponsor_address == address
    txn = transaction.PaymentTxn(address, ledger.suggested_params(), address, 0)
    assert same_bytes(kms_service.sign_transaction(txn), sdk_signed(txn, private_key))
    assert len(kms_service.sign_transactions([txn, txn])) == 2


def test_recovery_drill_mnemonic_signs_for_the_same_address(
    sponsor_key: tuple[str, str], ledger: LocalLedger
) -> None:
    """KMS unavailable: USE_KMS_SIGNING off plus the backup mnemonic signs the same."""
    private_key, address = sponsor_key
    with override_settings(
        USE_KMS_SIGNING=False, ALGORAND_ADMIN_MNEMONIC=mnemonic.from_private_key(private_key)
    ):
        service = AlgorandSponsorService()
    assert not service.uses_kms and service.sponsor_address == address
    ledger.fund(address, 1_000_000)
    txn = transaction.PaymentTxn(address, ledger.suggested_params(), address, 0)
    signed = service.sign_transaction(txn)
    assert same_bytes(signed, sdk_signed(txn, private_key))
    ledger.evaluate([signed])


@override_settings(USE_KMS_SIGNING=False)
def test_legacy_mode_without_mnemonic_names_both_ways_out() -> None:
    with pytest.raises(exceptions.ConfigurationError, match="ALGORAND_ADMIN_MNEMONIC") as raised:
        AlgorandSponsorService()
    assert "kms_setup" in str(raised.value)


def test_sponsored_group_is_accepted_once_users_sign(
    kms_service: AlgorandSponsorService, sponsor_key: tuple[str, str], ledger: LocalLedger
) -> None:
    _, sponsor = sponsor_key
    alice_key, alice = new_account()
    bob_key, bob = new_account()
    _, carol = new_account()
    for address in (sponsor, alice, bob, carol):
        ledger.fund(address, 1_000_000)
    users = [user_payment(ledger, alice, carol, 5_000), user_payment(ledger, bob, carol, 7_000)]

    sponsor_signed, *grouped = kms_service.sponsor_group(users, ledger.suggested_params())

    payment = sponsor_signed.transaction
    assert payment.sender == payment.receiver == sponsor and payment.amt == 0
    assert payment.fee == 3 * 1000  # the pooled minimum fee of all three transactions
    assert payment.close_remainder_to is None and payment.rekey_to is None
    assert {t.group for t in grouped} == {payment.group} and payment.group is not None
    signed_users = [
        sign_transaction_with_signer(grouped[0], AccountTransactionSigner(alice_key)),
        sign_transaction_with_signer(grouped[1], AccountTransactionSigner(bob_key)),
    ]
    ledger.evaluate([sponsor_signed, *signed_users])
    assert ledger.balance(carol) == 1_012_000
    assert ledger.balance(alice) == 995_000  # users paid no fee
    assert ledger.balance(sponsor) == 997_000


def test_zero_fee_transaction_without_the_sponsor_is_rejected(ledger: LocalLedger) -> None:
    alice_key, alice = new_account()
    ledger.fund(alice, 1_000_000)
    txn = user_payment(ledger, alice, alice, 0)
    with pytest.raises(Exception, match="fee"):
        ledger.evaluate([sign_transaction_with_signer(txn, AccountTransactionSigner(alice_key))])


def test_fee_cap_holds(sponsor_key: tuple[str, str], ledger: LocalLedger) -> None:
    _, alice = new_account()
    users = [user_payment(ledger, alice, alice, i) for i in range(5)]
    with override_settings(USE_KMS_SIGNING=True, ALGORAND_SPONSOR_FEE_CAP=5_000):
        service = AlgorandSponsorService()
    with pytest.raises(exceptions.SponsorPolicyError, match="6000 microalgos, over the fee cap"):
        service.sponsor_group(users, ledger.suggested_params())
    assert all(t.group is None for t in users)  # nothing grouped, nothing signed
    congested = ledger.suggested_params()
    congested.flat_fee, congested.fee = False, 100  # per byte, as algod reports congestion
    with pytest.raises(exceptions.SponsorPolicyError, match="over the fee cap"):
        service.sponsor_group(users[:1], congested)


@pytest.mark.parametrize(
    "make, needle",
    [
        (
            lambda sp, s, u: [transaction.PaymentTxn(u, LocalLedger.suggested_params(), u, 0)],
            "carries a fee of 1000",
        ),
        (lambda sp, s, u: [transaction.PaymentTxn(s, sp, u, 0)], "sent from the sponsor"),
        (lambda sp, s, u: [], "1 to 15"),
        (lambda sp, s, u: [transaction.PaymentTxn(u, sp, u, 0)] * 16, "1 to 15"),
    ],
)
def test_policy_refusals_sign_nothing(
    kms_service: AlgorandSponsorService,
    ledger: LocalLedger,
    make,
    needle: str,  # type: ignore[no-untyped-def]
) -> None:
    _, user = new_account()
    sp = zero_fee_params(ledger)
    with pytest.raises(exceptions.SponsorPolicyError, match=needle):
        kms_service.sponsor_group(
            make(sp, kms_service.sponsor_address, user), ledger.suggested_params()
        )


def test_already_grouped_and_non_transactions_are_refused(
    kms_service: AlgorandSponsorService, ledger: LocalLedger
) -> None:
    _, user = new_account()
    grouped = [user_payment(ledger, user, user, 0), user_payment(ledger, user, user, 1)]
    transaction.assign_group_id(grouped)
    with pytest.raises(exceptions.SponsorPolicyError, match="already belongs to a group"):
        kms_service.sponsor_group(grouped, ledger.suggested_params())
    with pytest.raises(exceptions.NotATransactionError):
        kms_service.sponsor_group(["txn"], ledger.suggested_params())  # type: ignore[list-item]


def test_custom_signer_needs_an_address() -> None:
    with pytest.raises(exceptions.ConfigurationError, match="address"):
        AlgorandSponsorService(signer=AccountTransactionSigner(new_account()[0]))
    signer = KMSSigner(ALIAS)
    assert AlgorandSponsorService(signer=signer).signer is signer


def test_failed_signing_leaves_user_transactions_as_they_came(
    sponsor_key: tuple[str, str], ledger: LocalLedger
) -> None:
    import boto3

    from .helpers import inject_error

    session = boto3.Session()
    inject_error(session, "ssm", "GetParameter", "AccessDeniedException", "no")
    service = AlgorandSponsorService(signer=KMSSigner(ALIAS, session=session))
    _, user = new_account()
    users = [user_payment(ledger, user, user, 1)]
    with pytest.raises(exceptions.AccessDeniedError):
        service.sponsor_group(users, ledger.suggested_params())
    assert users[0].group is None
