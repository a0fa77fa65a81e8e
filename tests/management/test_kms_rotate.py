"""kms_rotate on the sandbox ledger: dry run, submit, and kms_list afterwards."""

from __future__ import annotations

import io
from pathlib import Path

import boto3
import pytest
from algosdk import account, mnemonic
from django.core.management import CommandError, call_command
from django.test import override_settings

from confio_kms import AlgorandKMSManager, rotation

ALIAS = "confio-testnet-sponsor"


@override_settings(CONFIO_SANDBOX=True)
def test_submit_rotates_and_list_shows_the_authorizer() -> None:
    _, address, _ = AlgorandKMSManager().create_algorand_key(ALIAS)
    out = io.StringIO()

    call_command("kms_rotate", "--native", "--submit", stdout=out)

    text = out.getvalue()
    assert f"account: {address} (unchanged)" in text and "(native)" in text
    signer_address = text.split("signer:  ")[1].split()[0]
    assert f"now signs for {address}" in text
    listed = io.StringIO()
    call_command("kms_list", stdout=listed)
    row = listed.getvalue().splitlines()[1].split()
    assert row[:5] == [ALIAS, address, signer_address, "testnet", "native"]
    # (The sandbox ledger lives for one command, so later commands cannot see the rekey;
    # tests/test_rotation.py checks signing after rotation on one ledger.)


@override_settings(CONFIO_SANDBOX=True)
def test_dry_run_prints_the_signed_rekey_and_keeps_the_alias(tmp_path: Path) -> None:
    created = AlgorandKMSManager().create_algorand_key(ALIAS)
    out = io.StringIO()

    call_command("kms_rotate", "--dry-run", f"--mnemonic-out={tmp_path}/new", stdout=out)

    lines = out.getvalue().splitlines()
    rekey = rotation.decode_signed(lines[-1])
    assert rekey.transaction.sender == created.address
    phrase = (tmp_path / "new").read_text().strip()
    new_key = account.address_from_private_key(mnemonic.to_private_key(phrase))
    assert rekey.transaction.rekey_to == new_key  # the backup is the new key's
    assert phrase not in out.getvalue() and "still signs with" in out.getvalue()
    assert AlgorandKMSManager().get_key(ALIAS).key_id == created.key_id


@override_settings(CONFIO_SANDBOX=True)
def test_envelope_rotation_needs_a_backup_destination_first() -> None:
    AlgorandKMSManager().create_algorand_key(ALIAS)
    with pytest.raises(CommandError, match="--mnemonic-out FILE"):
        call_command("kms_rotate", "--submit", stdout=io.StringIO())
    assert len(boto3.client("kms").list_keys()["Keys"]) == 1  # nothing created


def test_submit_or_dry_run_is_required() -> None:
    with pytest.raises(CommandError, match="one of the arguments --submit --dry-run"):
        call_command("kms_rotate")
