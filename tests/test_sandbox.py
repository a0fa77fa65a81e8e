"""The sandbox tools and the README's main job, run as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from algosdk import account, transaction
from algosdk.atomic_transaction_composer import (
    AccountTransactionSigner,
    sign_transaction_with_signer,
)

from confio_kms.exceptions import AlgodError
from confio_kms.sandbox import LedgerChain, LocalLedger

ROOT = Path(__file__).resolve().parents[1]


def test_main_job_runs_end_to_end_on_the_sandbox() -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT)}  # no AWS settings at all
    out = subprocess.run(
        [sys.executable, str(ROOT / "example_project" / "run_sandbox.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    steps = [line for line in text.splitlines() if line.startswith("$ manage.py")]
    assert [s.split()[2] for s in steps] == ["kms_setup", "kms_list", "kms_test_sign", "check"]
    address = text.split("address: ")[1].split()[0]
    assert text.count(address) >= 3  # created, listed, signed for the same account
    assert "accepted by Algorand's ledger evaluator" in text
    assert "System check identified no issues" in text
    assert "BACKUP MNEMONIC" not in text  # it went to the 0600 file


def test_ledger_rejects_what_it_should() -> None:
    ledger = LocalLedger()
    key, address = account.generate_account()
    ledger.fund(address, 1_000_000)
    overdraft = transaction.PaymentTxn(address, ledger.suggested_params(), address, 2_000_000)

    with pytest.raises(Exception, match="overspend"):
        ledger.evaluate([sign_transaction_with_signer(overdraft, AccountTransactionSigner(key))])


def test_ledger_chain_rejection_is_a_typed_error() -> None:
    ledger = LocalLedger()
    key, address = account.generate_account()
    ledger.fund(address, 1_000_000)
    overdraft = transaction.PaymentTxn(address, ledger.suggested_params(), address, 2_000_000)
    chain = LedgerChain(ledger)

    with pytest.raises(AlgodError, match="sandbox ledger rejected") as raised:
        chain.submit(sign_transaction_with_signer(overdraft, AccountTransactionSigner(key)))
    assert "overspend" in str(raised.value)
    assert chain.current_round() == 1  # nothing was applied
