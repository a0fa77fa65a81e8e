"""OpenTelemetry: a span per signing call and metrics, read with the SDK's in-memory
exporter and reader; AWS request counts equal those botocore's events count; silent
(and optional) without an SDK."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from algosdk import transaction
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.common import exceptions
from confio_kms.core import telemetry
from confio_kms.sandbox import LocalAWS, LocalLedger

from .helpers import NativeKey, RequestCounter, inject_error
from .test_coalescing import concurrently, hold_first_decrypt, payments
from .test_secret_hygiene import FORMS, SENTINEL_ADDRESS, SENTINEL_MNEMONIC

ROOT = Path(__file__).resolve().parent.parent


class Otel:
    """The SDK's in-memory span exporter and metric reader, reported to by confio_kms."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        telemetry.use(tracer_provider, MeterProvider(metric_readers=[self.reader]))

    def spans(self) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name == telemetry.SPAN]

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, value or histogram point) of each data point of metric ``name``."""
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            value = getattr(point, "value", point)
                            found.append((dict(point.attributes or {}), value))
        return found

    def requests(self) -> Counter[str]:
        """AWS requests by ``service.Operation``, as the RequestCounter names them."""
        counted: Counter[str] = Counter()
        for attributes, value in self.points("confio_kms.aws.requests"):
            counted[f"{attributes['rpc.service']}.{attributes['rpc.method']}"] += value
        return counted

    def total(self, name: str, attribute: str = "") -> Counter[str]:
        counted: Counter[str] = Counter()
        for attributes, value in self.points(name):
            counted[str(attributes.get(attribute, ""))] += value
        return counted

    def assert_no_secret(self) -> None:
        texts = [repr(dict(s.attributes or {})) for s in self.exporter.get_finished_spans()]
        texts += [repr(self.reader.get_metrics_data())]
        joined = "\n".join(texts)
        for form in FORMS:
            assert form not in joined, "a form of the sentinel key is in an attribute"


@pytest.fixture
def otel() -> Iterator[type[Otel]]:
    yield Otel
    telemetry.use()  # back to the global providers (the API's no-op proxies here)


@pytest.mark.parametrize("native", [False, True], ids=["envelope", "native"])
def test_a_span_per_call_and_aws_requests_counted_as_botocore_counts_them(
    manager: AlgorandKMSManager,
    native_key: NativeKey,
    session: boto3.Session,
    counter: RequestCounter,
    ledger: LocalLedger,
    otel: type[Otel],
    native: bool,
) -> None:
    if native:
        address = native_key("traced").address
    else:
        address = manager.create_algorand_key("traced").address
    # The first signing request is throttled once, then retried by botocore.
    inject_error(
        session, "kms", "Sign" if native else "Decrypt", "ThrottlingException", "slow", 400, 1
    )
    seen: list[Any] = []  # the span current where each request is sent (a worker thread)
    session.events.register("before-send", lambda **kw: seen.append(otel_trace.get_current_span()))
    signer = KMSSigner("traced", session=session)
    txns = [
        transaction.PaymentTxn(address, ledger.suggested_params(), address, i) for i in range(3)
    ]
    transaction.assign_group_id(txns)
    counter.reset()
    traced = otel()

    signed = signer.sign_transactions(txns)

    ledger.fund(address, 10_000_000)
    ledger.evaluate(signed)
    (span,) = traced.spans()
    attributes = dict(span.attributes or {})
    kind = "native" if native else "envelope"
    assert attributes["confio_kms.alias"] == "alias/traced"
    assert attributes["confio_kms.kind"] == kind
    assert attributes["confio_kms.address"] == address
    assert attributes["confio_kms.group_size"] == 3
    assert attributes["confio_kms.outcome"] == "signed"
    request_ids = attributes["confio_kms.aws.request_ids"]
    assert len(request_ids) == (3 if native else 1) and all(request_ids)
    # Exactly the requests botocore sent, retries included, by operation.
    assert traced.requests() == counter.by_operation()
    assert counter.by_operation()["kms.Sign" if native else "kms.Decrypt"] == (4 if native else 2)
    assert traced.total("confio_kms.aws.throttles", "rpc.method") == {
        ("Sign" if native else "Decrypt"): 1
    }
    ((latency_attributes, latency),) = traced.points("confio_kms.signing.duration")
    assert latency_attributes == {"confio_kms.kind": kind, "confio_kms.outcome": "signed"}
    assert latency.count == 1 and latency.sum > 0
    # Every request was sent inside the call's span: an instrumented botocore nests.
    assert seen and all(s.get_span_context() == span.get_span_context() for s in seen)


def test_refusals_counted_by_rule_and_no_secret_in_any_attribute(
    manager: AlgorandKMSManager, session: boto3.Session, otel: type[Otel]
) -> None:
    manager.import_existing_key("sentinel", SENTINEL_MNEMONIC, network="localnet")
    signer = KMSSigner("sentinel", session=session)
    sp = LocalLedger.suggested_params()
    refused = [
        transaction.PaymentTxn(
            SENTINEL_ADDRESS, sp, SENTINEL_ADDRESS, 0, rekey_to=SENTINEL_ADDRESS
        ),
        transaction.PaymentTxn(
            SENTINEL_ADDRESS, sp, SENTINEL_ADDRESS, 0, close_remainder_to=SENTINEL_ADDRESS
        ),
        transaction.PaymentTxn(SENTINEL_ADDRESS, sp, SENTINEL_ADDRESS, 1),
    ]
    refused[2].fee = 10**9
    traced = otel()
    for txn in refused:
        with pytest.raises(exceptions.PolicyViolationError):
            signer.sign_transaction(txn)
    lsig = transaction.LogicSigAccount(b"\x06\x81\x01")  # pragma version 6; int 1
    with pytest.raises(exceptions.PolicyViolationError):
        signer.sign_logicsig(lsig)
    signer.sign_transaction(transaction.PaymentTxn(SENTINEL_ADDRESS, sp, SENTINEL_ADDRESS, 2))

    assert traced.total("confio_kms.refusals", "confio_kms.rule") == {
        "rekey": 1,
        "close": 1,
        "max_fee": 1,
        "delegation": 1,
    }
    spans = traced.spans()
    assert [dict(s.attributes or {}).get("confio_kms.rule") for s in spans] == [
        "rekey",
        "close",
        "max_fee",
        "delegation",
        None,
    ]
    assert [dict(s.attributes or {})["confio_kms.outcome"] for s in spans] == ["refused"] * 4 + [
        "signed"
    ]
    latencies = traced.points("confio_kms.signing.duration")
    assert {a["confio_kms.outcome"]: p.count for a, p in latencies} == {"refused": 4, "signed": 1}
    traced.assert_no_secret()


def test_coalesced_waits_are_counted(
    manager: AlgorandKMSManager, session: boto3.Session, counter: RequestCounter, otel: type[Otel]
) -> None:
    manager.import_existing_key("sentinel", SENTINEL_MNEMONIC, network="localnet")
    hold_first_decrypt(session, 4)  # the first decrypt waits until 4 calls share it
    signer = KMSSigner("sentinel", session=session)
    assert signer.address == SENTINEL_ADDRESS
    counter.reset()
    traced = otel()
    results = concurrently([lambda t=t: signer.sign_transaction(t) for t in payments(4)])
    assert all(isinstance(r, transaction.SignedTransaction) for r in results)
    assert traced.total("confio_kms.coalesced_waits") == {"": 3}
    assert traced.requests() == counter.by_operation() == {"ssm.GetParameter": 1, "kms.Decrypt": 1}
    assert len(traced.spans()) == 4
    traced.assert_no_secret()


def test_silent_without_an_sdk(
    manager: AlgorandKMSManager, session: boto3.Session, otel: type[Otel]
) -> None:
    """With the API and no SDK (the global providers are the API's proxies) a call's
    span does not record; nothing is written anywhere."""
    if type(otel_trace.get_tracer_provider()).__name__ != "ProxyTracerProvider":
        pytest.skip("a global tracer provider was set in this process")
    address = manager.create_algorand_key("quiet").address
    seen: list[Any] = []
    session.events.register("before-send", lambda **kw: seen.append(otel_trace.get_current_span()))
    telemetry.use()
    signer = KMSSigner("quiet", session=session)
    signer.sign_transaction(
        transaction.PaymentTxn(address, LocalLedger.suggested_params(), address, 0)
    )
    assert seen and not any(s.is_recording() for s in seen)


def test_the_core_signs_without_opentelemetry_installed(
    manager: AlgorandKMSManager, aws_env: LocalAWS
) -> None:
    """The extra is optional: with ``opentelemetry`` unimportable the package imports,
    the hooks are no-ops, and a signing call works."""
    address = manager.create_algorand_key("plain").address
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["opentelemetry"] = None  # as if not installed
        import django
        django.setup()
        from algosdk import transaction
        from confio_kms import KMSSigner
        from confio_kms.core import telemetry
        from confio_kms.sandbox import LocalLedger
        assert not telemetry.enabled()
        txn = transaction.PaymentTxn(
            "{address}", LocalLedger.suggested_params(), "{address}", 0
        )
        signed = KMSSigner("plain").sign_transaction(txn)
        print(signed.transaction.get_txid())
        """
    )
    assert len(_run(script)) == 52  # a transaction id


def test_no_span_is_started_until_a_global_provider_is_set(
    manager: AlgorandKMSManager, aws_env: LocalAWS
) -> None:
    """With the API and no SDK provider set, a signing call asks the API for no span
    at all (the proxies would drop it; it cost about 20 us a call); once the
    application sets global providers, the next call reports to them. In a process of
    its own: a global provider can be set only once per process."""
    address = manager.create_algorand_key("later").address
    script = textwrap.dedent(
        f"""
        import django
        django.setup()
        from algosdk import transaction
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from confio_kms import KMSSigner
        from confio_kms.sandbox import LocalLedger

        started = []
        proxy_start = trace.ProxyTracer.start_as_current_span
        def counted(self, *args, **kwargs):
            started.append(args)
            return proxy_start(self, *args, **kwargs)
        trace.ProxyTracer.start_as_current_span = counted
        txn = transaction.PaymentTxn(
            "{address}", LocalLedger.suggested_params(), "{address}", 0
        )
        signer = KMSSigner("later")
        signer.sign_transaction(txn)
        assert started == [], started
        exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        signer.sign_transaction(txn)
        (span,) = exporter.get_finished_spans()
        assert span.attributes["confio_kms.outcome"] == "signed"
        names = [m.name for r in reader.get_metrics_data().resource_metrics
                 for s in r.scope_metrics for m in s.metrics]
        assert "confio_kms.signing.duration" in names, names
        print("ok")
        """
    )
    assert _run(script) == "ok"


def _run(script: str) -> str:
    """Run ``script`` in a Python process of its own (the test settings, no provider
    named by the environment); its standard output, stripped."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "tests.settings"}
    env.pop("OTEL_PYTHON_TRACER_PROVIDER", None)
    env.pop("OTEL_PYTHON_METER_PROVIDER", None)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()
