"""kms_test_sign: signs through KMS, verifies locally, submits to the sandbox ledger."""

from __future__ import annotations

import io

import boto3
import pytest
from algosdk import encoding, mnemonic, transaction
from django.core.management import CommandError, call_command
from django.test import override_settings

from confio_kms import AlgorandKMSManager

from ..helpers import new_account

ALIAS = "confio-testnet-sponsor"


def test_signs_and_verifies_offline() -> None:
    _, address, backup = AlgorandKMSManager().create_algorand_key(ALIAS)
    out = io.StringIO()

    call_command("kms_test_sign", stdout=out)

    lines = dict(line.split(":", 1) for line in out.getvalue().splitlines())
    txid = lines["signed"].split()[0]
    assert lines["address"].strip() == address
    # The printed id is that of a 0-ALGO self-payment on testnet with the test note.
    params = transaction.SuggestedParams(
        1000, 1, 1000, "SGO1GKSzyE7IEPItTxCByw9x8FmnrCDexi9/cOUJOiI=", "testnet-v1.0", True, 1000
    )
    expected = transaction.PaymentTxn(address, params, address, 0, note=b"KMS signing test")
    assert txid == expected.get_txid()
    assert encoding.is_valid_address(address) and mnemonic.to_private_key(backup)


@override_settings(CONFIO_SANDBOX=True)
def test_submit_on_the_sandbox_is_accepted_by_the_ledger() -> None:
    AlgorandKMSManager().create_algorand_key("other-key")
    out = io.StringIO()
    call_command("kms_test_sign", "--alias", "other-key", "--submit", stdout=out)
    assert "accepted by Algorand's ledger evaluator" in out.getvalue()


def test_submit_needs_an_algod() -> None:
    AlgorandKMSManager().create_algorand_key(ALIAS)
    with pytest.raises(CommandError, match="ALGOD_ADDRESS is not set"):
        call_command("kms_test_sign", "--submit")


@override_settings(ALGOD_ADDRESS="http://127.0.0.1:9", ALGOD_TOKEN="x")
def test_unreachable_algod_is_a_typed_failure() -> None:
    AlgorandKMSManager().create_algorand_key(ALIAS)
    with pytest.raises(CommandError, match=r"127\.0\.0\.1:9 failed suggested_params"):
        call_command("kms_test_sign", "--submit")


def test_signature_that_does_not_verify_is_refused() -> None:
    """A key whose tag names another address: the signer refuses before the command."""
    key_id, _, _ = AlgorandKMSManager().create_algorand_key(ALIAS)
    boto3.client("kms").tag_resource(
        KeyId=key_id, Tags=[{"TagKey": "AlgorandAddress", "TagValue": new_account()[1]}]
    )
    with pytest.raises(CommandError, match="nothing was signed"):
        call_command("kms_test_sign")


@override_settings(CONFIO_SANDBOX=True)
def test_native_key_through_the_same_command() -> None:
    AlgorandKMSManager().create_algorand_key(ALIAS, native=True)
    out = io.StringIO()
    call_command("kms_test_sign", "--submit", stdout=out)
    assert "accepted by Algorand's ledger evaluator" in out.getvalue()
