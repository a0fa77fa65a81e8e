"""The Celery app tests/test_celery.py starts a worker with: the example project's app
and task, plus a task that reports the AWS requests its worker process made
(confio_kms's telemetry, read with the SDK's in-memory reader)."""

from __future__ import annotations

import os
from typing import Any

from celery.signals import worker_process_init
from example_project.celery import app
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from payments.tasks import sign_transaction

from confio_kms.core import telemetry

__all__ = ["app", "counted_sign"]
_reader: list[InMemoryMetricReader] = []


@worker_process_init.connect
def _count_requests(**kwargs: Any) -> None:
    reader = InMemoryMetricReader()
    telemetry.use(meter_provider=MeterProvider(metric_readers=[reader]))
    _reader.append(reader)


@app.task
def counted_sign(unsigned: str) -> dict[str, Any]:
    """The example's task, run in this worker process; with this process's requests."""
    signed = sign_transaction(unsigned)
    requests: dict[str, int] = {}
    data = _reader[0].get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "confio_kms.aws.requests":
                    for point in metric.data.data_points:
                        name = f"{point.attributes['rpc.service']}.{point.attributes['rpc.method']}"
                        requests[name] = requests.get(name, 0) + int(point.value)
    return {"signed": signed, "pid": os.getpid(), "requests": requests}
