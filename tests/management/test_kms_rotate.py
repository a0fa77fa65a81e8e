"""kms_rotate on the sandbox ledger: dry run, sign-only, submit, and kms_list afterwards."""

from __future__ import annotations

import io
import json
from pathlib import Path

import boto3
import pytest
from algosdk import account, mnemonic
from django.core.management import CommandError, call_command
from django.test import override_settings

from confio_kms import AlgorandKMSManager
from confio_kms.lifecycle import rotation

from ..helpers import key_count, kms_tags

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
def test_sign_only_prints_the_signed_rekey_and_keeps_the_alias(tmp_path: Path) -> None:
    created = AlgorandKMSManager().create_algorand_key(ALIAS)
    out = io.StringIO()

    call_command("kms_rotate", "--sign-only", f"--mnemonic-out={tmp_path}/new", stdout=out)

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


def test_submit_dry_run_or_sign_only_is_required() -> None:
    with pytest.raises(CommandError, match="one of the arguments --submit --dry-run --sign-only"):
        call_command("kms_rotate")


def _state() -> tuple[list[str], list[str], dict[str, dict[str, str]]]:
    kms = boto3.client("kms")
    key_ids = sorted(k["KeyId"] for k in kms.list_keys()["Keys"])
    aliases = sorted(
        f"{a['AliasName']}={a.get('TargetKeyId')}" for a in kms.list_aliases()["Aliases"]
    )
    return key_ids, aliases, {k: kms_tags(k) for k in key_ids}


@override_settings(CONFIO_SANDBOX=True)
@pytest.mark.parametrize("native", [False, True])
def test_dry_run_shows_the_plan_and_changes_nothing(native: bool) -> None:
    created = AlgorandKMSManager().create_algorand_key(ALIAS)
    before = _state()
    out = io.StringIO()

    call_command("kms_rotate", "--dry-run", *(["--native"] if native else []), stdout=out)

    assert _state() == before  # no key, alias or tag
    text = out.getvalue()
    assert text.startswith(f"dry run: nothing was created, tagged or signed (alias/{ALIAS})")
    assert f"would:   rotate, to {'a native' if native else 'an envelope'} key" in text
    assert f"sender: {created.address}" in text and "rekey_to: None" in text
    assert ("backup mnemonic shown once" in text) is not native


@override_settings(CONFIO_SANDBOX=True)
def test_dry_run_json_is_the_plan_with_real_types(tmp_path: Path) -> None:
    created = AlgorandKMSManager().create_algorand_key(ALIAS)
    out = io.StringIO()

    call_command("kms_rotate", "--dry-run", "--json", stdout=out)

    plan = json.loads(out.getvalue())
    assert plan["dry_run"] is True and plan["action"] == "rotate"
    assert plan["current_key_id"] == created.key_id and plan["account"] == created.address
    assert plan["rekey"]["amount"] == 0 and plan["rekey"]["rekey_to"] is None
    assert isinstance(plan["rekey"]["last_valid"], int) and len(plan["steps"]) == 4


@override_settings(CONFIO_SANDBOX=True)
def test_submit_json_has_no_mnemonic_and_progress_goes_to_stderr(tmp_path: Path) -> None:
    created = AlgorandKMSManager().create_algorand_key(ALIAS)
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "kms_rotate", "--submit", "--json", f"--mnemonic-out={tmp_path}/new",
        stdout=out, stderr=err,
    )  # fmt: skip

    result = json.loads(out.getvalue())
    phrase = (tmp_path / "new").read_text().strip()
    assert result["state"] == "completed" and result["account"] == created.address
    assert "backup_mnemonic" not in result and phrase not in out.getvalue() + err.getvalue()
    steps = [line for line in err.getvalue().splitlines() if line.startswith("... ")]
    assert [s for s in steps if "alias/confio-testnet-sponsor:" in s] == [
        f"... alias/{ALIAS}: creating the new envelope key",
        f"... alias/{ALIAS}: signing the rekey with the current key",
        f"... alias/{ALIAS}: submitting the rekey {result['rekey_txid']} and waiting for its "
        "confirmation",
        f"... alias/{ALIAS}: switching the alias to the new key",
    ]


# An algod address that is never reached: the confirmation refuses first (the sandbox
# ledger refuses mainnet keys outright: tests/test_sandbox_guard.py).
@override_settings(ALGOD_ADDRESS="http://127.0.0.1:9")
@pytest.mark.parametrize("how", ["--submit", "--sign-only"])
def test_mainnet_rotation_needs_confirmation(how: str, tmp_path: Path) -> None:
    AlgorandKMSManager().create_algorand_key("confio-mainnet-sponsor")
    with pytest.raises(CommandError, match=r"mainnet account .* needs confirmation.*--yes"):
        call_command(
            "kms_rotate", how, "--alias", "confio-mainnet-sponsor", "--no-input",
            f"--mnemonic-out={tmp_path}/new", stdout=io.StringIO(),
        )  # fmt: skip
    assert key_count() == 1 and not (tmp_path / "new").exists()
