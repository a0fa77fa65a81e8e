"""kms_policy: the runtime policy allows exactly the AWS actions signing makes, and the
two policies together exactly what the library and its commands call (recorded), plus
the three actions AWS performs on the caller's behalf."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from algosdk import mnemonic, transaction
from django.core.management import call_command
from django.test import override_settings

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.core.aws import AWSClients
from confio_kms.lifecycle import policies as iam
from confio_kms.sandbox import LocalLedger
from confio_kms.sponsor import AlgorandSponsorService

from . import legacy_layout
from .helpers import new_account


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every AWS action the library sends (observed, not changed)."""
    actions: set[str] = set()
    send = AWSClients._call

    def observe(self: AWSClients, service: str, operation: str, *args: Any) -> Any:
        actions.add(f"{service}:{operation}")
        return send(self, service, operation, *args)

    monkeypatch.setattr(AWSClients, "_call", observe)
    return actions


def policy_documents(*aliases: str) -> dict[str, Any]:
    out = io.StringIO()
    args = [f"--alias={a}" for a in aliases]
    call_command("kms_policy", *args, "--account-id=123456789012", stdout=out)
    parsed: dict[str, Any] = json.loads(out.getvalue())
    return parsed


# The aliases the two runs below create (and adopt: "old", a key of the old scripts).
ALIASES = ("env", "nat", "imp", "old")


def run_administration(tmp_path: Path) -> None:
    """Everything the commands and the manager do, on keys of both kinds."""
    legacy_layout.create("old")
    call_command("kms_setup", "--adopt", "old", "--network", "mainnet", stdout=io.StringIO())
    call_command("kms_setup", "--create-new", "--alias", "env", f"--mnemonic-out={tmp_path}/a",
                 stdout=io.StringIO())  # fmt: skip
    call_command("kms_setup", "--create-new", "--native", "--alias", "nat", stdout=io.StringIO())
    private_key, _ = new_account()
    call_command("kms_setup", "--import-existing", "--alias", "imp", stdout=io.StringIO(),
                 stdin=io.StringIO(mnemonic.from_private_key(private_key)))  # fmt: skip
    call_command("kms_list", stdout=io.StringIO())
    call_command("kms_rotate", "--alias", "imp", "--submit", f"--mnemonic-out={tmp_path}/b",
                 stdout=io.StringIO())  # fmt: skip
    call_command("kms_rotate", "--alias", "env", "--native", "--submit", stdout=io.StringIO())
    manager = AlgorandKMSManager()
    manager.delete_key("nat", pending_window_days=7)
    manager.cancel_key_deletion("nat")
    manager.delete_key("imp", pending_window_days=7)
    manager.cancel_key_deletion("imp")


def run_runtime() -> None:
    """Signing with both kinds, through the library, a command and the sponsor."""
    from confio_kms import factory as conf

    conf.reset()
    for name in ("env", "nat", "imp"):
        signer = KMSSigner(name)
        sp = LocalLedger.suggested_params()
        signer.sign_transactions([transaction.PaymentTxn(signer.address, sp, signer.address, 0)])
        signer.sign_logicsig(transaction.LogicSigAccount(b"\x08\x81\x01"))
        call_command("kms_test_sign", "--alias", name, stdout=io.StringIO())
    with override_settings(USE_KMS_SIGNING=True, KMS_KEY_ALIAS_TESTNET="nat"):
        service = AlgorandSponsorService()
        txn = transaction.PaymentTxn(service.sponsor_address, sp, service.sponsor_address, 0)
        service.sign_transaction(txn)


@override_settings(CONFIO_SANDBOX=True, CONFIO_KMS_ALLOW_DELEGATION="every-network")
def test_policies_cover_exactly_what_is_called(recorded: set[str], tmp_path: Path) -> None:
    run_administration(tmp_path)
    admin_calls = set(recorded)
    recorded.clear()
    run_runtime()
    runtime_calls = set(recorded)

    documents = policy_documents(*ALIASES)
    runtime = iam.actions(documents["runtime"])
    administration = iam.actions(documents["administration"])
    assert runtime == runtime_calls | {"kms:Decrypt"}
    assert runtime_calls <= runtime
    assert administration | runtime == admin_calls | runtime_calls | iam.SERVER_SIDE_ACTIONS


def test_policy_names_the_configured_aliases_region_and_prefix() -> None:
    with override_settings(KMS_REGION="eu-west-1", KMS_SSM_PREFIX="/acme/keys"):
        documents = policy_documents()
    text = json.dumps(documents)
    assert "alias/confio-testnet-sponsor" in text and "alias/confio-mainnet-sponsor" in text
    assert (
        "arn:aws:ssm:eu-west-1:123456789012:parameter/acme/keys/confio-testnet-sponsor/private-key*"
        in text
    )
    decrypts = [s for s in documents["runtime"]["Statement"] if s["Action"] == ["kms:Decrypt"]]
    # One statement per alias: its key decrypts only its own parameters' ciphertexts,
    # through SSM or directly (no kms:ViaService).
    assert [d["Condition"] for d in decrypts] == [
        {
            "ForAnyValue:StringEquals": {"kms:ResourceAliases": [f"alias/{name}"]},
            "StringLike": {
                "kms:EncryptionContext:PARAMETER_ARN": [
                    f"arn:aws:ssm:eu-west-1:123456789012:parameter/acme/keys/{name}/private-key",
                    f"arn:aws:ssm:eu-west-1:123456789012:parameter/acme/keys/{name}/private-key-*",
                ]
            },
        }
        for name in ("confio-testnet-sponsor", "confio-mainnet-sponsor")
    ]
    assert "kms:ViaService" not in json.dumps(documents["runtime"])
