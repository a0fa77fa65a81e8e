"""The policy compares what is signed, not how it is spelled, and refuses irreversible
actions unless the call allows them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from algosdk import encoding, transaction
from django.test import override_settings

from confio_kms import AlgorandKMSManager, KMSMultisigSigner, KMSSigner
from confio_kms.algorand import networks
from confio_kms.common import exceptions
from confio_kms.core.policy import SigningPolicy
from confio_kms.sandbox import LocalLedger
from confio_kms.sponsor import AlgorandSponsorService

from .helpers import RequestCounter, new_account

MAINNET = networks.GENESIS_HASH["mainnet"]
# The last character of a 32-byte base64 value carries 2 unused bits: another spelling
# of mainnet's genesis hash, the same 32 bytes once decoded (and once signed).
MAINNET_RESPELLED = MAINNET[:-2] + "9="
PROGRAM = b"\x06\x81\x01"  # "#pragma version 6; int 1": approves every call
TAKEOVER = b"\x06\x81\x02"  # "int 2": approves too, another program
NO_SCHEMA = transaction.StateSchema(0, 0)


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
def signer(manager: AlgorandKMSManager, ledger: LocalLedger, session: boto3.Session) -> KMSSigner:
    address = manager.create_algorand_key("k", network="localnet").address
    ledger.fund(address, 10_000_000)
    return KMSSigner("k", session=session)  # its requests are counted


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
    # Leaving an application through its program, and creations: nothing existing is lost.
    close_out = transaction.ApplicationCloseOutTxn(me, sp, 99)
    immutable = transaction.AssetCreateTxn(me, sp, 1000, 0, False, unit_name="T", asset_name="T")
    create_app = transaction.ApplicationCreateTxn(
        me, sp, transaction.OnComplete.UpdateApplicationOC, PROGRAM, PROGRAM, NO_SCHEMA, NO_SCHEMA
    )
    routine = [handover, clawback, participating, close_out, immutable, create_app]
    assert len(signer.sign_transactions(routine)) == len(routine)
    ledger.evaluate([signer.sign_transaction(participating)])  # the ledger accepts it


# A fresh ledger numbers its first creation 1. Each action shares the block of its
# creation: algojig loses an asset's manager between blocks.
CREATED = 1
# setup transactions (routine), the irreversible one, its refusal, its flag, and the
# ledger's proof that it happened (on the sender's raw account record).
Scenario = tuple[
    list[transaction.Transaction], transaction.Transaction, str, str, Callable[[Any], bool]
]


def app_update(me: str, sp: transaction.SuggestedParams) -> Scenario:
    create = transaction.ApplicationCreateTxn(
        me, sp, transaction.OnComplete.NoOpOC, PROGRAM, PROGRAM, NO_SCHEMA, NO_SCHEMA
    )
    update = transaction.ApplicationUpdateTxn(me, sp, CREATED, TAKEOVER, PROGRAM)
    return (
        [create],
        update,
        f"updates application {CREATED}, replacing its approval and clear programs",
        "allow_update",
        lambda raw: raw[b"appp"][CREATED][b"approv"] == TAKEOVER,
    )


def clear_state(me: str, sp: transaction.SuggestedParams) -> Scenario:
    create = transaction.ApplicationCreateTxn(
        me, sp, transaction.OnComplete.NoOpOC, PROGRAM, PROGRAM, NO_SCHEMA, NO_SCHEMA
    )
    opt_in = transaction.ApplicationOptInTxn(me, sp, CREATED)
    clear = transaction.ApplicationClearStateTxn(me, sp, CREATED)
    return (
        [create, opt_in],
        clear,
        f"clears {me}'s local state in application {CREATED}",
        "allow_clear_state",
        lambda raw: CREATED in raw[b"appp"] and CREATED not in raw.get(b"appl", {}),
    )


def _asset(me: str, sp: transaction.SuggestedParams) -> transaction.AssetConfigTxn:
    return transaction.AssetCreateTxn(
        me, sp, 1000, 0, False, manager=me, reserve=me, freeze=me, clawback=me, unit_name="T"
    )


def manager_cleared(me: str, sp: transaction.SuggestedParams) -> Scenario:
    config = transaction.AssetConfigTxn(
        me, sp, index=CREATED, reserve=me, freeze=me, clawback=me, strict_empty_address_check=False
    )
    return (
        [_asset(me, sp)],
        config,
        f"clears the manager of asset {CREATED}: the asset can never be reconfigured",
        "allow_clear_role",
        lambda raw: set(raw[b"apar"][CREATED]) & {b"m", b"r", b"f", b"c"} == {b"r", b"f", b"c"},
    )


def freeze_and_clawback_cleared(me: str, sp: transaction.SuggestedParams) -> Scenario:
    config = transaction.AssetConfigTxn(
        me, sp, index=CREATED, manager=me, reserve=me, strict_empty_address_check=False
    )
    return (
        [_asset(me, sp)],
        config,
        f"clears the freeze and clawback of asset {CREATED}: a cleared role can never be set",
        "allow_clear_role",
        lambda raw: set(raw[b"apar"][CREATED]) & {b"m", b"r", b"f", b"c"} == {b"m", b"r"},
    )


SCENARIOS = [app_update, clear_state, manager_cleared, freeze_and_clawback_cleared]
FLAGS = {
    "allow_rekey", "allow_close", "allow_nonparticipation", "allow_destroy",
    "allow_update", "allow_clear_state", "allow_clear_role",
}  # fmt: skip


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_each_irreversible_action_is_refused_unless_the_call_allows_it(
    scenario: Callable[[str, transaction.SuggestedParams], Scenario],
    signer: KMSSigner,
    ledger: LocalLedger,
    counter: RequestCounter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    me = signer.address  # resolved first: the count below is signing alone
    setup, txn, reason, flag, happened = scenario(me, ledger.suggested_params())
    caplog.set_level(logging.INFO, logger="confio_kms.audit")
    counter.reset()
    with pytest.raises(exceptions.PolicyViolationError, match=reason) as refused:
        signer.sign_transactions([*setup, txn])
    assert f"refused transaction {len(setup)} ({txn.get_txid()})" in str(refused.value)
    assert f"{flag}=True" in str(refused.value.fix)
    assert counter.total == 0
    (record,) = [r.audit for r in caplog.records if r.name == "confio_kms.audit"]  # type: ignore[attr-defined]
    assert record["outcome"] == "refused"

    ledger.evaluate(signer.sign_transactions([*setup, txn], **{flag: True}))
    assert happened(ledger.jig.raw_accounts[me])  # the ledger did what was refused


def test_each_flag_allows_only_its_own_action(signer: KMSSigner, ledger: LocalLedger) -> None:
    me, sp = signer.address, ledger.suggested_params()
    destroy = transaction.AssetDestroyTxn(me, sp, 1234)
    delete_app = transaction.ApplicationDeleteTxn(me, sp, 99)
    cases = [scenario(me, sp)[1:4] for scenario in SCENARIOS]
    cases += [(destroy, "destroys asset 1234", "allow_destroy")]
    cases += [(delete_app, "deletes application 99", "allow_destroy")]
    for txn, reason, flag in cases:
        for other in sorted(FLAGS - {flag}):
            with pytest.raises(exceptions.PolicyViolationError, match=reason):
                signer.sign_transactions([txn], **{other: True})
        assert signer.sign_transactions([txn], **{flag: True})


def test_multisig_members_pass_the_flags_on(signer: KMSSigner, counter: RequestCounter) -> None:
    msig = KMSMultisigSigner(1, 1, [signer])
    assert signer.address  # resolved first: the count below is signing alone
    for scenario in SCENARIOS:
        ledger = LocalLedger()  # each scenario creates in a fresh ledger
        ledger.fund(msig.address, 10_000_000)
        setup, txn, reason, flag, happened = scenario(msig.address, ledger.suggested_params())
        account = msig.multisig.get_multisig_account()
        counter.reset()
        with pytest.raises(exceptions.PolicyViolationError, match=reason):
            msig.append([transaction.MultisigTransaction(t, account) for t in [*setup, txn]])
        assert counter.total == 0
        ledger.evaluate(msig.sign_transactions([*setup, txn], **{flag: True}))
        assert happened(ledger.jig.raw_accounts[msig.address])
