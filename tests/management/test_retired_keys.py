"""Keys no alias names (issue 25): a rotation's retired key and an interrupted
creation's orphan are listed by ``kms_list --all`` and deleted by key id with
``kms_delete``, with the same confirmation, window, cancel and --json."""

from __future__ import annotations

import io
import json

import boto3
import pytest
from algosdk import account, transaction
from django.core.management import CommandError, call_command

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.sandbox import LedgerChain, LocalLedger

from ..helpers import EnvelopeKey, RequestCounter
from .conftest import Terminal

ALIAS = "confio-testnet-sponsor"


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def state(key_id: str) -> str:
    return str(boto3.client("kms").describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"])


@pytest.fixture
def unaliased(
    manager: AlgorandKMSManager, envelope_key: EnvelopeKey, ledger: LocalLedger
) -> tuple[str, str]:
    """(retired key id, orphan key id): a rotation's old key and an unfinished creation's."""
    _, address = envelope_key(ALIAS)
    ledger.fund(address, 10_000_000)
    retired = manager.rotate_key(ALIAS, LedgerChain(ledger)).previous_key_id
    # As if it were an old setup script's key: only the rotation's tag says it is ours.
    boto3.client("kms").untag_resource(KeyId=retired, TagKeys=["ManagedBy"])
    # What a kms_setup killed after CreateKey leaves: the key, marked pending, no alias.
    tags = {
        "ManagedBy": "confio-kms",
        "CreationState": "pending:ghost",
        "AlgorandAddress": account.generate_account()[1],
    }
    orphan = boto3.client("kms").create_key(
        Tags=[{"TagKey": k, "TagValue": v} for k, v in tags.items()]
    )["KeyMetadata"]["KeyId"]
    boto3.client("kms").create_key()  # another application's key: never listed
    return retired, orphan


def test_kms_list_all_shows_retired_and_orphaned_keys(unaliased: tuple[str, str]) -> None:
    retired, orphan = unaliased
    assert [row["name"] for row in json.loads(run("kms_list", "--json"))] == [ALIAS]
    rows = json.loads(run("kms_list", "--all", "--json"))
    assert [(r["name"], r["status"], r.get("alias_before")) for r in rows] == [
        (ALIAS, "active", None),
        (None, "retired", f"alias/{ALIAS}"),
        (None, "orphaned", "alias/ghost"),
    ]
    assert [r["key_id"] for r in rows[1:]] == [retired, orphan]
    table = run("kms_list", "--all")
    assert f"{retired}  retired   alias/{ALIAS}" in table
    assert f"{orphan}  orphaned  alias/ghost" in table


def test_kms_delete_takes_a_retired_keys_id_with_the_same_rules(
    unaliased: tuple[str, str], ledger: LocalLedger
) -> None:
    retired, _ = unaliased
    with pytest.raises(CommandError, match="--yes"):
        run("kms_delete", retired, "--no-input")
    with pytest.raises(CommandError, match="from 7 to 30 days"):
        run("kms_delete", retired, "--days", "3", "--yes")
    assert state(retired) == "Enabled"
    done = json.loads(run("kms_delete", retired, "--days", "7", "--yes", "--json"))
    assert (done["key_id"], done["alias"], done["state"]) == (retired, None, "PendingDeletion")
    assert state(retired) == "PendingDeletion"
    with pytest.raises(CommandError, match=f"kms_delete {retired} --cancel"):
        run("kms_delete", retired, "--yes")
    # The alias signs with its new key throughout.
    signer = KMSSigner(ALIAS)
    txn = transaction.PaymentTxn(signer.address, ledger.suggested_params(), signer.address, 0)
    ledger.evaluate([signer.sign_transaction(txn)])
    assert "deletion cancelled" in run("kms_delete", retired, "--cancel")
    assert state(retired) == "Enabled"
    # A key an alias names is deleted by its name, never by id.
    active = boto3.client("kms").describe_key(KeyId=f"alias/{ALIAS}")["KeyMetadata"]["KeyId"]
    with pytest.raises(CommandError, match=r"not an unaliased key.*kms_delete NAME"):
        run("kms_delete", active, "--yes")
    assert state(active) == "Enabled"


def test_kms_list_all_costs_one_tags_read_per_key_and_a_describe_per_key_listed(
    unaliased: tuple[str, str], manager: AlgorandKMSManager, counter: RequestCounter
) -> None:
    counter.reset()
    found = manager.unaliased().keys()
    assert [key.status for key in found] == ["retired", "orphaned"]
    # 4 customer keys (the alias's new key, the retired, the orphan, another
    # application's): each one's tags are read, only the 2 listed are described.
    assert counter.by_operation() == {
        "kms.ListAliases": 1,
        "kms.ListKeys": 1,
        "kms.ListResourceTags": 4,
        "kms.DescribeKey": 2,
    }


def test_kms_delete_by_key_id_at_a_terminal_asks_for_the_key_id(
    unaliased: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    retired, _ = unaliased
    monkeypatch.setattr("sys.stdin", Terminal(f"{retired}\n"))
    err = io.StringIO()
    call_command("kms_delete", retired, stdout=io.StringIO(), stderr=err)
    assert f"Type the key id ({retired}) to go on: " in err.getvalue()
    assert state(retired) == "PendingDeletion"
