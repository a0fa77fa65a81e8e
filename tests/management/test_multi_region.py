"""kms_setup --native says a single-Region key can never get replicas, and
--multi-region makes one that can (issue 25)."""

from __future__ import annotations

import io

import boto3
import pytest
from algosdk import transaction
from django.core.management import CommandError, call_command

from confio_kms import KMSSigner
from confio_kms.sandbox import LocalLedger


def setup(*args: str) -> str:
    err = io.StringIO()
    call_command("kms_setup", "--create-new", "--no-input", *args, stdout=io.StringIO(), stderr=err)
    return err.getvalue()


def metadata(name: str) -> dict[str, object]:
    return dict(boto3.client("kms").describe_key(KeyId=f"alias/{name}")["KeyMetadata"])


def test_native_keys_say_single_region_and_multi_region_makes_a_replicable_key(
    ledger: LocalLedger,
) -> None:
    said = setup("--native", "--alias", "single")
    assert "single-Region" in said and "--multi-region" in said
    assert not metadata("single").get("MultiRegion")  # moto omits it when false

    said = setup("--native", "--multi-region", "--alias", "multi")
    assert "single-Region" not in said
    made = metadata("multi")
    assert made["MultiRegion"] is True and str(made["KeyId"]).startswith("mrk-")
    signer = KMSSigner("multi")
    ledger.fund(signer.address, 1_000_000)
    txn = transaction.PaymentTxn(signer.address, ledger.suggested_params(), signer.address, 0)
    ledger.evaluate([signer.sign_transaction(txn)])  # the multi-Region key signs

    with pytest.raises(CommandError, match="--multi-region is for native keys"):
        setup("--multi-region", "--alias", "envelope")
