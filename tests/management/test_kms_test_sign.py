"""kms_test_sign: signs through KMS, verifies locally, submits to the sandbox ledger."""

from __future__ import annotations

import io
import json

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


@pytest.mark.parametrize("on", [True, False])
def test_says_when_the_app_is_still_on_the_mnemonic(on: bool) -> None:
    AlgorandKMSManager().create_algorand_key(ALIAS)
    out = io.StringIO()
    with override_settings(USE_KMS_SIGNING=on):
        call_command("kms_test_sign", stdout=out)
        call_command("kms_test_sign", "--json", stdout=(as_json := io.StringIO()))
    assert ("USE_KMS_SIGNING is off" in out.getvalue()) is not on
    result = json.loads(as_json.getvalue())
    assert result["use_kms_signing"] is on and result["verified"] is True
    assert result["submitted"] is False and result["confirmed_round"] is None


@override_settings(CONFIO_SANDBOX=True)
def test_submit_json_on_the_sandbox() -> None:
    AlgorandKMSManager().create_algorand_key(ALIAS)
    out = io.StringIO()
    call_command("kms_test_sign", "--submit", "--json", stdout=out, stderr=io.StringIO())
    result = json.loads(out.getvalue())
    assert result["submitted"] is True and result["ledger"] == "sandbox"


def test_mainnet_submit_needs_confirmation_before_signing() -> None:
    AlgorandKMSManager().create_algorand_key("confio-mainnet-sponsor")
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"on mainnet .*needs confirmation.*--yes"):
        call_command("kms_test_sign", "--alias", "confio-mainnet-sponsor", "--submit", stdout=out)
    assert out.getvalue() == ""  # nothing signed, nothing sent
    # Without --submit nothing is sent, so nothing is asked.
    call_command("kms_test_sign", "--alias", "confio-mainnet-sponsor", stdout=out)
    assert "signature verified locally" in out.getvalue()
