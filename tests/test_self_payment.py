"""lifecycle.self_payment: the signed 0-ALGO self-payment of kms_test_sign, from code."""

from __future__ import annotations

from algosdk import transaction

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.algorand.chain import offline_params
from confio_kms.common import progress
from confio_kms.lifecycle.self_payment import NOTE, sign_self_payment, submit_self_payment
from confio_kms.sandbox import LedgerChain, LocalLedger

ALIAS = "confio-testnet-sponsor"


def test_signs_the_documented_payment_offline(manager: AlgorandKMSManager) -> None:
    address = manager.create_algorand_key(ALIAS).address
    params = offline_params("testnet")

    payment = sign_self_payment(KMSSigner(ALIAS), params)

    expected = transaction.PaymentTxn(address, params, address, 0, note=NOTE)
    assert payment.txid == expected.get_txid() == payment.signed.get_txid()
    assert (payment.alias, payment.address, payment.network) == (
        f"alias/{ALIAS}",
        address,
        "testnet",
    )


def test_submit_is_accepted_by_the_ledger_and_reported(
    manager: AlgorandKMSManager, ledger: LocalLedger
) -> None:
    address = manager.create_algorand_key("local-key", network="localnet").address
    ledger.fund(address, 1_000_000)
    chain = LedgerChain(ledger)
    payment = sign_self_payment(KMSSigner("local-key"), chain.suggested_params())
    steps: list[str] = []

    with progress.reported_to(steps.append):
        confirmed = submit_self_payment(payment, chain)

    assert confirmed == chain.current_round()
    assert steps == [f"submitting {payment.txid} and waiting for its confirmation"]
