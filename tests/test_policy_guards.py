"""The policy compares what is signed, not how it is spelled, and refuses irreversible
actions unless the call allows them."""

from __future__ import annotations

import pytest
from algosdk import encoding, transaction
from django.test import override_settings

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.algorand import networks
from confio_kms.common import exceptions
from confio_kms.core.policy import SigningPolicy
from confio_kms.sandbox import LocalLedger
from confio_kms.sponsor import AlgorandSponsorService

from .helpers import new_account

MAINNET = networks.GENESIS_HASH["mainnet"]
# The last character of a 32-byte base64 value carries 2 unused bits: another spelling
# of mainnet's genesis hash, the same 32 bytes once decoded (and once signed).
MAINNET_RESPELLED = MAINNET[:-2] + "9="


def respelled(address: str) -> str:
    """Another base32 spelling of ``address``: same public key, valid checksum."""
    for char in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567":
        other = address[:-1] + char
        if (
            other != address
            and encoding.is_valid_address(other)
            and encoding.decode_address(other) == encoding.decode_address(address)
        ):
            return other
    pytest.skip("this address's last character has no other spelling")


def params(genesis: str, gen: str = "mainnet-v1.0") -> transaction.SuggestedParams:
    return transaction.SuggestedParams(1000, 1, 1000, genesis, gen, flat_fee=True)


def test_genesis_hashes_are_compared_as_bytes(manager: AlgorandKMSManager) -> None:
    assert MAINNET_RESPELLED != MAINNET
    assert networks.genesis_bytes(MAINNET_RESPELLED) == networks.genesis_bytes(MAINNET)
    with pytest.raises(
        exceptions.ConfigurationError, match=r"public network's genesis hash \(mainnet"
    ):
        SigningPolicy(trusted_genesis=frozenset({MAINNET_RESPELLED}))
    with pytest.raises(exceptions.ConfigurationError, match="not base64 genesis hashes"):
        SigningPolicy(trusted_genesis=frozenset({"not-a-hash"}))

    testnet = manager.create_algorand_key("t", network="testnet").address
    txn = transaction.PaymentTxn(testnet, params(MAINNET_RESPELLED), testnet, 0)
    with pytest.raises(exceptions.PolicyViolationError, match="transaction is for mainnet"):
        KMSSigner("t").sign_transaction(txn)
    # A mainnet key signs its network's transactions however the hash is spelled.
    mainnet = manager.create_algorand_key("m", network="mainnet").address
    KMSSigner("m").sign_transaction(
        transaction.PaymentTxn(mainnet, params(MAINNET_RESPELLED), mainnet, 0)
    )


def test_the_sponsor_compares_accounts_not_spellings(manager: AlgorandKMSManager) -> None:
    sponsor = manager.create_algorand_key("confio-testnet-sponsor").address
    with override_settings(USE_KMS_SIGNING=True):
        service = AlgorandSponsorService()
    sp = LocalLedger.suggested_params()
    sp.fee, sp.flat_fee = 0, True
    _, user = new_account()
    from_sponsor = transaction.PaymentTxn(respelled(sponsor), sp, user, 1_000_000)
    with pytest.raises(exceptions.SponsorPolicyError, match="sent from the sponsor account"):
        service.sponsor_group([from_sponsor], sp)


@pytest.fixture
def signer(manager: AlgorandKMSManager, ledger: LocalLedger) -> KMSSigner:
    address = manager.create_algorand_key("k", network="localnet").address
    ledger.fund(address, 10_000_000)
    return KMSSigner("k")


def test_irreversible_actions_need_the_call_to_allow_them(
    signer: KMSSigner, ledger: LocalLedger
) -> None:
    me, sp = signer.address, ledger.suggested_params()
    _, other = new_account()
    nonpart = transaction.KeyregNonparticipatingTxn(me, sp)
    destroy = transaction.AssetDestroyTxn(me, sp, 1234)
    cleared = transaction.AssetConfigTxn(me, sp, index=1234, strict_empty_address_check=False)
    delete_app = transaction.ApplicationDeleteTxn(me, sp, 99)
    cases = [
        (nonpart, "non-participating", {"allow_nonparticipation": True}),
        (destroy, "destroys asset 1234", {"allow_destroy": True}),
        (cleared, "destroys asset 1234", {"allow_destroy": True}),
        (delete_app, "deletes application 99", {"allow_destroy": True}),
    ]
    for txn, reason, allowed in cases:
        with pytest.raises(exceptions.PolicyViolationError, match=reason):
            signer.sign_transaction(txn)
        (signed,) = signer.sign_transactions([txn], **allowed)
        assert signed.transaction is txn

    # Routine for the accounts holding these roles: signed by default.
    handover = transaction.AssetConfigTxn(
        me, sp, index=1234, manager=other, reserve=me, freeze=me, clawback=me
    )
    clawback = transaction.AssetTransferTxn(me, sp, me, 5, 1234, revocation_target=other)
    participating = transaction.KeyregOfflineTxn(me, sp)
    assert len(signer.sign_transactions([handover, clawback, participating])) == 3
    ledger.evaluate([signer.sign_transaction(participating)])  # the ledger accepts it
