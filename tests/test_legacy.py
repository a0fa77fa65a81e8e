"""Adoption by the deployment confio-kms replaces: keys in the exact layout the original
``blockchain/kms_manager.py`` wrote (tests/legacy_layout.py) sign with no tagging step,
on the network their alias names; a key whose alias names none is adopted by command.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import boto3
import pytest
from algosdk import mnemonic, transaction
from django.core.management import CommandError, call_command
from django.test import override_settings

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.algorand import networks
from confio_kms.common import exceptions
from confio_kms.sandbox import LocalLedger

from . import legacy_layout
from .helpers import (
    RequestCounter,
    error_body,
    json_response,
    new_account,
    same_bytes,
    sdk_signed,
)


def params(network: str) -> transaction.SuggestedParams:
    return transaction.SuggestedParams(
        fee=1000,
        first=1,
        last=1000,
        gh=networks.GENESIS_HASH[network],
        gen=networks.GENESIS_ID[network],
        flat_fee=True,
        min_fee=1000,
    )


def kms_tags(key_id: str) -> dict[str, str]:
    tags = boto3.client("kms").list_resource_tags(KeyId=key_id)["Tags"]
    return {t["TagKey"]: t["TagValue"] for t in tags}


@pytest.mark.parametrize(
    ("make", "alias", "network", "other"),
    [
        ("create", "confio-mainnet-sponsor", "mainnet", "testnet"),
        ("create", "confio-testnet-sponsor", "testnet", "mainnet"),
        ("import", "confio-mainnet-sponsor", "mainnet", "testnet"),
        ("untagged-parameter", "confio-testnet-admin", "testnet", "mainnet"),
    ],
)
def test_legacy_keys_sign_for_the_network_their_alias_names(
    make: str, alias: str, network: str, other: str, ledger: LocalLedger, counter: RequestCounter
) -> None:
    if make == "create":
        private_key, address, key_id = legacy_layout.create(alias)
    elif make == "import":
        reference_key, _ = new_account()
        private_key, address, key_id = legacy_layout.import_existing(
            alias, mnemonic.from_private_key(reference_key)
        )
    else:
        private_key, address, key_id = legacy_layout.create(alias, tagged_parameter=False)
    assert "AlgorandNetwork" not in kms_tags(key_id)  # the original never wrote it

    signer = KMSSigner(alias)
    assert (signer.address, signer.network, signer.kind) == (address, network, "envelope")
    txn = transaction.PaymentTxn(address, params(network), address, 0)
    assert same_bytes(signer.sign_transaction(txn), sdk_signed(txn, private_key))

    with pytest.raises(exceptions.PolicyViolationError, match=f"tagged {network}"):
        signer.sign_transaction(transaction.PaymentTxn(address, params(other), address, 0))

    # Algorand's own evaluator accepts its signature (on the sandbox ledger, trusted
    # in the test settings) and rejects a tampered one.
    ledger.fund(address, 1_000_000)
    local = transaction.PaymentTxn(address, ledger.suggested_params(), address, 0)
    signed = signer.sign_transaction(local)
    raw = bytearray(base64.b64decode(signed.signature))
    raw[10] ^= 1  # one flipped bit
    tampered = transaction.SignedTransaction(local, base64.b64encode(bytes(raw)).decode())
    with pytest.raises(Exception, match="signature"):
        ledger.evaluate([tampered])
    ledger.evaluate([signed])
    assert kms_tags(key_id).get("AlgorandNetwork") is None  # signing tagged nothing


def test_kms_list_shows_legacy_keys_with_their_networks() -> None:
    legacy_layout.create("confio-mainnet-sponsor")
    legacy_layout.create("old-sponsor")
    out = io.StringIO()
    call_command("kms_list", stdout=out)
    rows = {line.split()[0]: line.split() for line in out.getvalue().splitlines()[1:]}
    assert rows["confio-mainnet-sponsor"][3:5] == ["mainnet", "envelope"]
    assert rows["old-sponsor"][3:5] == ["unknown", "envelope"]


def test_kms_test_sign_works_on_a_legacy_key_without_trusting_any_genesis() -> None:
    _, address, _ = legacy_layout.create("confio-mainnet-sponsor")
    out = io.StringIO()
    with override_settings(CONFIO_KMS_TRUSTED_GENESIS=[], CONFIO_ENV="mainnet"):
        call_command("kms_test_sign", stdout=out)
    assert f"address: {address}" in out.getvalue()
    assert "signature verified locally" in out.getvalue()


def test_configured_aliases_name_their_network() -> None:
    legacy_layout.create("sponsor-prod")
    with override_settings(KMS_KEY_ALIAS_MAINNET="sponsor-prod"):
        assert KMSSigner("sponsor-prod").network == "mainnet"


def test_an_ambiguous_legacy_key_is_refused_with_a_fix_that_works(
    counter: RequestCounter,
) -> None:
    private_key, address, key_id = legacy_layout.create("old-sponsor")
    txn = transaction.PaymentTxn(address, params("mainnet"), address, 0)
    with pytest.raises(exceptions.PolicyViolationError) as refused:
        KMSSigner("old-sponsor").sign_transaction(txn)
    assert "kms_setup --adopt old-sponsor --network mainnet" in str(refused.value)
    assert "CONFIO_KMS_TRUSTED_GENESIS" not in str(refused.value)

    out = io.StringIO()
    counter.reset()
    call_command("kms_setup", "--adopt", "old-sponsor", "--network", "mainnet", stdout=out)
    assert "key material verified" in out.getvalue()
    assert kms_tags(key_id)["AlgorandNetwork"] == "mainnet"
    signed = KMSSigner("old-sponsor").sign_transaction(txn)
    assert same_bytes(signed, sdk_signed(txn, private_key))

    # Adopted keys are never re-tagged to another network.
    with pytest.raises(CommandError, match="is a mainnet key"):
        call_command("kms_setup", "--adopt", "old-sponsor", "--network", "testnet")
    assert kms_tags(key_id)["AlgorandNetwork"] == "mainnet"


def test_adopt_refuses_a_key_whose_material_is_not_the_tagged_account() -> None:
    _, _, key_id = legacy_layout.create("old-sponsor")
    _, other = new_account()
    boto3.client("kms").tag_resource(
        KeyId=key_id, Tags=[{"TagKey": "AlgorandAddress", "TagValue": other}]
    )
    with pytest.raises(CommandError, match="belongs to"):
        call_command("kms_setup", "--adopt", "old-sponsor", "--network", "mainnet")
    assert "AlgorandNetwork" not in kms_tags(key_id)


def test_adopt_refuses_a_network_the_alias_contradicts() -> None:
    _, _, key_id = legacy_layout.create("confio-testnet-sponsor")
    with pytest.raises(exceptions.NetworkMismatchError, match="is a testnet key"):
        AlgorandKMSManager().adopt_key("confio-testnet-sponsor", "mainnet")
    assert "AlgorandNetwork" not in kms_tags(key_id)


def test_create_called_the_old_way_takes_the_network_from_the_alias(
    manager: AlgorandKMSManager,
) -> None:
    key_id, _, _ = manager.create_algorand_key("confio-mainnet-sponsor", "desc")
    assert kms_tags(key_id)["AlgorandNetwork"] == "mainnet"
    with pytest.raises(exceptions.NetworkMismatchError, match="names a mainnet key"):
        manager.create_algorand_key("confio-mainnet-other", network="testnet")
    private_key, _ = new_account()
    with pytest.raises(exceptions.NetworkMismatchError):
        manager.import_existing_key(
            "confio-testnet-x", mnemonic.from_private_key(private_key), network="mainnet"
        )
    key_id, _ = manager.import_existing_key(
        "confio-testnet-x", mnemonic.from_private_key(private_key)
    )
    assert kms_tags(key_id)["AlgorandNetwork"] == "testnet"


def test_listing_skips_keys_the_credentials_may_not_read(session: boto3.Session) -> None:
    # The generated IAM policy lets confio-kms read only its own keys' tags.
    _, address, _ = legacy_layout.create("confio-testnet-sponsor")
    kms = boto3.client("kms")
    stranger = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/other-app", TargetKeyId=stranger)
    denied = json_response(
        "https://injected/", 400, error_body("AccessDeniedException", "not yours"), {}
    )

    def deny_strangers(request: Any, **kwargs: Any) -> Any:
        return denied if stranger.encode() in request.body else None

    session.events.register("before-send.kms.ListResourceTags", deny_strangers)
    records = AlgorandKMSManager(session=session).list_keys()
    assert [r.address for r in records] == [address]
