"""kms_rotate on the sandbox ledger: dry run, submit, and kms_list afterwards."""

from __future__ import annotations

import io

import pytest
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
def test_dry_run_prints_the_signed_rekey_and_keeps_the_alias() -> None:
    created = AlgorandKMSManager().create_algorand_key(ALIAS)
    out = io.StringIO()

    call_command("kms_rotate", "--dry-run", stdout=out)

    lines = out.getvalue().splitlines()
    rekey = rotation.decode_signed(lines[-1])
    assert rekey.transaction.sender == created.address and rekey.transaction.rekey_to
    assert "still signs with" in out.getvalue()
    assert AlgorandKMSManager().get_key(ALIAS).key_id == created.key_id


def test_submit_or_dry_run_is_required() -> None:
    with pytest.raises(CommandError, match="one of the arguments --submit --dry-run"):
        call_command("kms_rotate")
