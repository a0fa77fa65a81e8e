"""kms_delete: confirmation, native consent, the recovery window, cancel, --json."""

from __future__ import annotations

import io
import json
from datetime import datetime

import boto3
import pytest
from algosdk import transaction
from django.core.management import CommandError, call_command

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.sandbox import LocalLedger

from ..helpers import EnvelopeKey, NativeKey
from .conftest import Terminal

ALIAS = "confio-testnet-sponsor"


def state(name: str = ALIAS) -> str:
    metadata = boto3.client("kms").describe_key(KeyId=f"alias/{name}")["KeyMetadata"]
    return str(metadata["KeyState"])


def delete(*args: str, stdout: io.StringIO | None = None) -> str:
    out = stdout or io.StringIO()
    call_command("kms_delete", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def signs(ledger: LocalLedger, name: str = ALIAS) -> None:
    """The alias signs a payment the ledger evaluator accepts."""
    signer = KMSSigner(name)
    ledger.fund(signer.address, 1_000_000)
    txn = transaction.PaymentTxn(signer.address, ledger.suggested_params(), signer.address, 0)
    ledger.evaluate([signer.sign_transaction(txn)])


def test_delete_schedules_and_cancel_restores_signing(
    envelope_key: EnvelopeKey, ledger: LocalLedger
) -> None:
    envelope_key(ALIAS)

    text = delete(ALIAS, "--days", "7", "--yes")

    assert state() == "PendingDeletion"
    assert "is scheduled for deletion on 20" in text and "does not sign from now on" in text
    assert f"kms_delete {ALIAS} --cancel" in text and "offline backup mnemonic" in text
    parameter = f"/confio/algorand/{ALIAS}/private-key"
    assert boto3.client("ssm").get_parameter(Name=parameter)  # kept for the window

    assert "enabled again" in delete(ALIAS, "--cancel")
    assert state() == "Enabled"
    signs(ledger)


def test_delete_without_a_terminal_needs_yes(envelope_key: EnvelopeKey) -> None:
    envelope_key(ALIAS)
    with pytest.raises(
        CommandError,
        match=r"Schedule the deletion of alias/.* \(a configured alias: the app stops signing "
        r"with it\) needs confirmation",
    ):
        delete(ALIAS, "--no-input")
    assert state() == "Enabled"


@pytest.mark.parametrize(("typed", "expected"), [(ALIAS, "PendingDeletion"), ("y", "Enabled")])
def test_delete_at_a_terminal_needs_the_alias_typed(
    envelope_key: EnvelopeKey, monkeypatch: pytest.MonkeyPatch, typed: str, expected: str
) -> None:
    envelope_key(ALIAS)
    monkeypatch.setattr("sys.stdin", Terminal(f"{typed}\n"))
    if expected == "Enabled":
        with pytest.raises(CommandError, match="Not confirmed"):
            delete(ALIAS)
    else:
        delete(ALIAS)
    assert state() == expected


def test_native_key_needs_consent_that_there_is_no_backup(native_key: NativeKey) -> None:
    native_key(ALIAS)
    with pytest.raises(CommandError, match=r"native key.*--i-understand-there-is-no-backup"):
        delete(ALIAS, "--yes")
    assert state() == "Enabled"

    text = delete(ALIAS, "--yes", "--i-understand-there-is-no-backup")

    assert state() == "PendingDeletion" and "gone for good, with no backup" in text


def test_json_has_the_date_and_real_types(envelope_key: EnvelopeKey) -> None:
    _, address = envelope_key(ALIAS)

    result = json.loads(delete(ALIAS, "--yes", "--json", "--days", "10"))

    assert result["address"] == address and result["state"] == "PendingDeletion"
    deletion = datetime.fromisoformat(result["deletion_date"])
    listed = AlgorandKMSManager().get_key(ALIAS).deletion_date
    assert listed is not None and deletion == listed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--days", "3"], "from 7 to 30"),  # checked before asking: no --yes needed
        (["--cancel"], "is not scheduled for deletion"),
    ],
)
def test_refusals_are_one_line_and_change_nothing(
    envelope_key: EnvelopeKey, args: list[str], message: str
) -> None:
    envelope_key(ALIAS)
    with pytest.raises(CommandError, match=message) as raised:
        delete(ALIAS, *args)
    assert "\n" not in str(raised.value) and state() == "Enabled"


def test_deleting_twice_names_the_date_and_the_cancel(envelope_key: EnvelopeKey) -> None:
    envelope_key(ALIAS)
    delete(ALIAS, "--yes")
    with pytest.raises(CommandError, match=f"already scheduled.*kms_delete {ALIAS} --cancel"):
        delete(ALIAS, "--yes")


def test_missing_alias_is_one_line(manage_py) -> None:  # type: ignore[no-untyped-def]
    result = manage_py("kms_delete", "nothing-here", "--yes")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "alias/nothing-here" in result.stderr
