"""docs/deployment.md states what a process's signing calls cost, and quotes the quota
benchmark: both are checked here, the costs by counting requests at botocore."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import boto3
from algosdk import transaction
from django.core.cache import cache as django_cache

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms import factory as conf
from confio_kms.sandbox import LocalLedger

from .helpers import NativeKey, RequestCounter

DOCS = Path(__file__).resolve().parent.parent / "docs"


def cell(counted: Counter[str]) -> str:
    """A table cell as the page writes it: the total, then each operation."""
    names = [
        f"{service}:{operation}" + (f" x{n}" if n > 1 else "")
        for service, _, operation in (name.partition(".") for name in counted)
        for n in [counted[f"{service}.{operation}"]]
    ]
    return f"{counted.total()} ({', '.join(names)})"


def test_the_costs_on_the_deployment_page_are_counted(
    manager: AlgorandKMSManager, native_key: NativeKey
) -> None:
    page = (DOCS / "deployment.md").read_text()
    keys = {
        "envelope": manager.create_algorand_key("costed", network="localnet").address,
        "native": native_key("costed-native", network="localnet").address,
    }
    sp = LocalLedger.suggested_params()
    for kind, address in keys.items():
        conf.reset()  # a fresh process, with an empty shared cache
        django_cache.clear()
        counter = RequestCounter()
        session = boto3.Session()
        counter.attach(session)
        signer = KMSSigner("costed" if kind == "envelope" else "costed-native", session=session)
        calls = [
            [transaction.PaymentTxn(address, sp, address, 0)],
            [transaction.PaymentTxn(address, sp, address, 1)],
            [transaction.PaymentTxn(address, sp, address, i) for i in range(2, 6)],
        ]
        cells = []
        for txns in calls:
            counter.reset()
            signer.sign_transactions(txns)
            cells.append(cell(counter.by_operation()))
        assert f"| {kind} | {' | '.join(cells)} |" in page


def test_the_quoted_quota_figures_are_the_throughput_pages() -> None:
    page = (DOCS / "deployment.md").read_text()
    table = (DOCS / "throughput.md").read_text()

    def measured(approach: str, cell: str) -> str:
        row = re.search(rf"^\| {re.escape(approach)} \| {cell} \| ([\d.,]+) \|", table, re.M)
        assert row, (approach, cell)
        return row.group(1)

    direct, fallback = (
        "KMSSigner, direct KMS Decrypt",
        "KMSSigner via Parameter Store (fallback path)",
    )
    old = "old approach (GetParameter WithDecryption per call)"
    sync = (
        f"{measured(direct, '8 x 1')} signatures/s at 8 processes x 1 thread and "
        f"{measured(direct, '16 x 1')} at 16 x 1"
    )
    assert sync in " ".join(page.split())
    assert (
        f"sync workers stop at that quota: {measured(fallback, '8 x 1')} signatures/s"
        in " ".join(page.split())
    )
    threaded = f"measured {measured(direct, '4 x 8')} signatures/s at 4 processes x 8 threads"
    assert threaded in " ".join(page.split())
    assert f"and {measured(fallback, '4 x 8')} on the fallback path" in " ".join(page.split())
    assert f"made {measured(old, '4 x 8')}." in " ".join(page.split())
