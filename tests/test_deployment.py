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

    def measured(approach: str, processes: int, threads: int) -> str:
        row = re.search(rf"^\| {approach} \| {processes} \| {threads} \| ([\d.,]+) \|", table, re.M)
        assert row, (approach, processes, threads)
        return row.group(1)

    coalescing = "KMSSigner, coalescing"
    assert f'"{coalescing}, 4 processes x 1 thread" row: {measured(coalescing, 4, 1)} ' in page
    quoted = (
        f"measured {measured(coalescing, 1, 4)} signatures/s at 1 process x 4 threads, "
        f"{measured(coalescing, 1, 8)} at\n1 x 8, {measured(coalescing, 4, 8)} at 4 processes "
        "x 8 threads"
    )
    assert quoted in page
    assert f"made {measured('KMSSigner, no coalescing', 4, 8)}/s" in page
