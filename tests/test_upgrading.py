"""docs/upgrading.md: its "After" examples run, on keys made as the original code does."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import decouple
import pytest
from algosdk import encoding, transaction
from algosdk.atomic_transaction_composer import AtomicTransactionComposer, TransactionWithSigner
from django.conf import settings
from django.test import override_settings

from confio_kms.core.aws import AWSClients
from confio_kms.factory import sponsor_address
from confio_kms.sandbox import LocalLedger
from confio_kms.sponsor import AlgorandSponsorService

from . import legacy_layout
from .helpers import new_account

PAGE = Path(__file__).resolve().parent.parent / "docs" / "upgrading.md"
BLOCK = re.compile(r'```python title="After: ([^"]+)"\n(.*?)```', re.DOTALL)


def examples() -> dict[str, str]:
    return dict(BLOCK.findall(PAGE.read_text()))


def test_the_page_has_its_examples() -> None:
    assert set(examples()) == {
        "imports",
        "call sites, unchanged",
        "settings.py",
        "the sponsor service",
    }


@pytest.fixture
def deployment(ledger: LocalLedger) -> dict[str, Any]:
    _, sponsor, _ = legacy_layout.create("confio-testnet-sponsor")
    _, admin, _ = legacy_layout.create("confio-testnet-admin")
    ledger.fund(sponsor, 10_000_000)
    ledger.fund(admin, 10_000_000)
    sp = ledger.suggested_params()
    zero_fee = ledger.suggested_params()
    zero_fee.fee, zero_fee.flat_fee = 0, True
    _, user = new_account()
    ledger.fund(user, 1_000_000)
    return {
        "settings": settings,
        "AtomicTransactionComposer": AtomicTransactionComposer,
        "TransactionWithSigner": TransactionWithSigner,
        "AlgorandSponsorService": AlgorandSponsorService,
        "sponsor_payment": transaction.PaymentTxn(sponsor, sp, sponsor, 0),
        "admin_call": transaction.PaymentTxn(admin, sp, admin, 0),
        "user_payment": transaction.PaymentTxn(user, zero_fee, user, 0),
        "zero_fee_params": sp,
        "sponsor": sponsor,
        "admin": admin,
    }


def run(name: str, namespace: dict[str, Any]) -> dict[str, Any]:
    exec(compile(examples()[name], f"docs/upgrading.md ({name})", "exec"), namespace)
    return namespace


def test_imports_and_call_sites_run_unchanged(
    deployment: dict[str, Any], ledger: LocalLedger
) -> None:
    with override_settings(
        USE_KMS_SIGNING=True,
        KMS_KEY_ALIAS="confio-testnet-sponsor",
        KMS_ADMIN_KEY_ALIAS="confio-testnet-admin",
        ALGORAND_SPONSOR_ADDRESS=deployment["sponsor"],
        ALGORAND_ADMIN_ADDRESS=deployment["admin"],
    ):
        run("imports", deployment)
        done = run("call sites, unchanged", deployment)
    assert isinstance(done["sponsor_signed_b64"], str)
    ledger.evaluate(done["signed_group"])
    ledger.evaluate([encoding.msgpack_decode(done["sponsor_signed_b64"])])


def test_settings_block_makes_no_request_at_import(
    deployment: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    requests: list[str] = []
    call = AWSClients.call

    def counted(self: AWSClients, service: str, operation: str, *args: Any, **kw: Any) -> Any:
        requests.append(operation)
        return call(self, service, operation, *args, **kw)

    monkeypatch.setattr(AWSClients, "call", counted)
    monkeypatch.setenv("USE_KMS_SIGNING", "true")
    namespace: dict[str, Any] = {
        "INSTALLED_APPS": [],
        "config": decouple.config,
        "sponsor_address": sponsor_address,
        "ENV": "testnet",
    }
    run("settings.py", namespace)
    assert namespace["INSTALLED_APPS"] == ["confio_kms"]
    assert namespace["USE_KMS_SIGNING"] is True and namespace["CONFIO_ENV"] == "testnet"
    assert requests == []  # the address is lazy
    with override_settings(USE_KMS_SIGNING=True):
        assert str(namespace["ALGORAND_SPONSOR_ADDRESS"]) == deployment["sponsor"]
    assert requests == ["DescribeKey", "ListResourceTags"]  # on first use


def test_the_sponsor_service_example(deployment: dict[str, Any], ledger: LocalLedger) -> None:
    with override_settings(USE_KMS_SIGNING=True, CONFIO_ENV="testnet"):
        done = run("the sponsor service", deployment)
    assert done["service"].sponsor_address == deployment["sponsor"]
    ledger.evaluate([done["signed_payment"]])
    assert done["user_txns"][0].group == done["sponsor_signed"].transaction.group
