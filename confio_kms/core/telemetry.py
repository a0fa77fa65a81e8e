"""OpenTelemetry spans and metrics of signing calls, through ``opentelemetry-api``.

Optional (``pip install "confio-kms[otel]"``): without ``opentelemetry-api`` every hook
here returns at once; with the API but no SDK configured, the API's own no-op
providers make them silent. The application configures the SDK (exporters, resource)
as usual; ``use()`` points this module at other providers (tests do).

Fed from hooks that already exist, so each signing path is covered once:

- a span ``confio_kms.sign`` per signing call (``signing_call`` wraps the call; the
  audit record, one per call, gives it its attributes: ``confio_kms.alias``,
  ``confio_kms.kind``, ``confio_kms.address``, ``confio_kms.group_size``,
  ``confio_kms.aws.request_ids``, ``confio_kms.outcome``, ``confio_kms.rule`` for a
  refusal). An audit record made outside a wrapped call (a multisig sender refusal, the
  adopt probe) gets a span of its own. AWS requests are made in threads that carry the
  caller's context, so an instrumented botocore's spans are its children.
- metrics: ``confio_kms.signing.duration`` (histogram, seconds, by kind and outcome),
  ``confio_kms.aws.requests`` (every HTTP request, retries included, by ``rpc.service``,
  ``rpc.method`` and ``aws.error_code``, "" when it succeeded), ``confio_kms.aws.throttles``
  (requests AWS throttled, by service and method), ``confio_kms.coalesced_waits`` (calls
  that waited for another call's decrypt instead of making their own) and
  ``confio_kms.refusals`` (by policy ``rule``).

Attributes are public facts only (the audit record's, and AWS's error codes): never
key material, request or response bodies, or exception messages.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from confio_kms.core.aws_errors import THROTTLED

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace as otel_trace
except ImportError:  # the optional extra is not installed: every hook is a no-op
    otel_metrics = otel_trace = None  # type: ignore[assignment]
try:  # where the API keeps its global meter provider (None until set)
    from opentelemetry.metrics import _internal as _otel_metrics_state
except ImportError:  # another API version: the global providers are always fed (as before)
    _otel_metrics_state = None  # type: ignore[assignment]

F = TypeVar("F", bound=Callable[..., Any])
SCOPE = "confio_kms"
SPAN = "confio_kms.sign"
DURATION, REQUESTS, THROTTLES, COALESCED, REFUSALS = METRICS = (
    "confio_kms.signing.duration",
    "confio_kms.aws.requests",
    "confio_kms.aws.throttles",
    "confio_kms.coalesced_waits",
    "confio_kms.refusals",
)


class _Instruments:
    """The tracer and the metric instruments, from one pair of providers."""

    def __init__(self, tracer_provider: Any, meter_provider: Any) -> None:
        self.tracer = otel_trace.get_tracer(SCOPE, tracer_provider=tracer_provider)
        meter = otel_metrics.get_meter(SCOPE, meter_provider=meter_provider)
        self.duration = meter.create_histogram(
            DURATION, unit="s", description="Signing call latency"
        )
        self.requests = meter.create_counter(
            REQUESTS, unit="{request}", description="AWS HTTP requests"
        )
        self.throttles = meter.create_counter(
            THROTTLES, unit="{request}", description="Requests AWS throttled"
        )
        self.coalesced = meter.create_counter(
            COALESCED,
            unit="{call}",
            description="Calls that shared another call's decrypt",
        )
        self.refusals = meter.create_counter(
            REFUSALS, unit="{call}", description="Calls the signing policy refused"
        )


_instruments: _Instruments | None = None
# Whether ``use`` was given a provider: then it is fed even when no global one is set.
_given = False


def enabled() -> bool:
    """Whether ``opentelemetry-api`` is installed (the hooks do something)."""
    return otel_trace is not None


def use(tracer_provider: Any = None, meter_provider: Any = None) -> None:
    """Report to these providers from now on; None: the global ones (the default)."""
    global _instruments, _given
    _instruments = _Instruments(tracer_provider, meter_provider) if enabled() else None
    _given = tracer_provider is not None or meter_provider is not None


def _get() -> _Instruments | None:
    """The instruments to feed; None when feeding them would do nothing: no API, or
    only the global providers and neither is set (the API's proxies drop everything:
    a span and a duration per call cost about 20 us for nothing)."""
    if _instruments is None and enabled():
        use()  # the API's proxies: they follow a global SDK provider set later
    if _given or _instruments is None or not _unset():
        return _instruments
    return None


def _unset() -> bool:
    """Whether neither global provider is set nor named by the environment (the API
    loads it on first use); checked on each call, since one may be set later. Reads the
    API's module globals: its getters cost about 5 us per call."""
    return (
        not _NAMED
        and getattr(otel_trace, "_TRACER_PROVIDER", True) is None
        and getattr(_otel_metrics_state, "_METER_PROVIDER", True) is None
    )


# Whether the environment names providers for the API to load (read once: a lookup in
# os.environ costs about 2 us, and deployments set it before the process starts).
_NAMED = any(
    name in os.environ for name in ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER")
)


class _Call:
    __slots__ = ("fields", "span")

    def __init__(self, span: Any) -> None:
        self.span = span
        self.fields: Mapping[str, Any] | None = None


_current: ContextVar[_Call | None] = ContextVar("confio_kms_signing_call", default=None)


def signing_call(function: F) -> F:
    """Wrap a signing function: one span around it, and its latency measured."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        instruments = _get()
        if instruments is None:
            return function(*args, **kwargs)
        with _traced(instruments):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@contextmanager
def _traced(instruments: _Instruments) -> Iterator[None]:
    started = time.perf_counter()
    with instruments.tracer.start_as_current_span(
        SPAN, record_exception=False, set_status_on_exception=False
    ) as span:
        call = _Call(span)
        token = _current.set(call)
        error: BaseException | None = None
        try:
            yield
        except BaseException as raised:
            error = raised
            raise
        finally:
            _current.reset(token)
            attributes = _finish(instruments, span, call.fields, error)
            instruments.duration.record(time.perf_counter() - started, attributes)


def _finish(
    instruments: _Instruments,
    span: Any,
    fields: Mapping[str, Any] | None,
    error: BaseException | None,
) -> dict[str, str]:
    """Set the span's attributes from the call's audit record; return the metrics'."""
    if fields is None:  # no record: nothing to sign, or an error outside the library's
        outcome = "failed" if error is not None else "empty"
        kind = ""
        span.set_attribute("confio_kms.outcome", outcome)
    else:
        outcome, kind = str(fields["outcome"]), str(fields["kind"])
        span.set_attributes(_span_attributes(fields))
        _count_refusal(instruments, fields)
    if error is not None:
        span.set_attribute("error.type", type(error).__name__)
    if outcome != "signed":
        span.set_status(otel_trace.StatusCode.ERROR, outcome)
    return {"confio_kms.kind": kind, "confio_kms.outcome": outcome}


def _span_attributes(fields: Mapping[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "confio_kms.alias": str(fields["alias"]),
        "confio_kms.kind": str(fields["kind"]),
        "confio_kms.address": str(fields["address"]),
        "confio_kms.group_size": len(fields["txids"]),
        "confio_kms.aws.request_ids": [str(r) for r in fields["request_ids"]],
        "confio_kms.outcome": str(fields["outcome"]),
    }
    if fields.get("rule"):
        attributes["confio_kms.rule"] = str(fields["rule"])
    return attributes


def _count_refusal(instruments: _Instruments, fields: Mapping[str, Any]) -> None:
    if fields["outcome"] == "refused":
        instruments.refusals.add(1, {"confio_kms.rule": str(fields.get("rule") or "policy")})


def recorded(fields: Mapping[str, Any]) -> None:
    """The audit hook: the record of the signing call in progress (or a call of its own)."""
    instruments = _get()
    if instruments is None:
        return
    call = _current.get()
    if call is not None and call.fields is None:
        call.fields = fields
        return
    # A record outside a wrapped call: a span of its own, ended at once.
    with instruments.tracer.start_as_current_span(SPAN) as span:
        span.set_attributes(_span_attributes(fields))
        if fields["outcome"] != "signed":
            span.set_status(otel_trace.StatusCode.ERROR, str(fields["outcome"]))
        _count_refusal(instruments, fields)


def coalesced() -> None:
    """A call joined another call's decrypt instead of making its own."""
    instruments = _get()
    if instruments is not None:
        instruments.coalesced.add(1)


def watch(client: Any) -> None:
    """Count every HTTP request of a botocore client (retries included), and throttles."""
    if not enabled():
        return
    name = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(
        f"response-received.{name}", _on_response, unique_id="confio-kms-telemetry"
    )


def _on_response(
    event_name: str, parsed_response: Any = None, exception: Any = None, **kwargs: Any
) -> None:
    instruments = _get()
    if instruments is None:
        return
    _, service, operation = event_name.split(".", 2)
    code = ""
    if isinstance(parsed_response, dict):
        code = str(parsed_response.get("Error", {}).get("Code", "") or "")
    elif exception is not None:
        code = type(exception).__name__
    attributes = {"rpc.service": service, "rpc.method": operation}
    instruments.requests.add(1, {**attributes, "aws.error_code": code})
    if code in THROTTLED:
        instruments.throttles.add(1, attributes)
