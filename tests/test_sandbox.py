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

from confio_kms.sandbox import LocalLedger

ROOT = Path(__file__).resolve().parents[1]


def test_main_job_runs_end_to_end_on_the_sandbox() -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT)}  # no AWS settings at all
    out = subprocess.run(
        [sys.executable, str(ROOT / "example_project" / "run_sandbox.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    steps = [line.split(":")[0].strip() for line in lines]
    assert steps == ["sandbox", "created", steps[2], "listed", "signed", "ledger"]
    assert "not shown" in lines[2]
    assert "accepted by Algorand's ledger evaluator" in lines[-1]


def test_ledger_rejects_what_it_should() -> None:
    ledger = LocalLedger()
    key, address = account.generate_account()
    ledger.fund(address, 1_000_000)
    overdraft = transaction.PaymentTxn(address, ledger.suggested_params(), address, 2_000_000)
    with pytest.raises(Exception, match="overspend"):
        ledger.evaluate([sign_transaction_with_signer(overdraft, AccountTransactionSigner(key))])
