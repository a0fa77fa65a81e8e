"""Faults the quota proxy (benchmarks/quota_proxy.py) injects on request.

A fault has a ``kind``, the operations it applies to (``X-Amz-Target`` values such as
``AmazonSSM.GetParameter`` or ``TrentService.Sign``; None = every request) and its
parameters:

- ``outage``: the connection is closed without an answer (the request never reaches
  the upstream).
- ``hang``: the connection is held without an answer until the fault is cleared (or
  the proxy stops); then it is closed without an answer. The request never reaches
  the upstream.
- ``trickle``: the request is forwarded; its answer (status line and headers
  included) is sent ``bytes_per_second`` bytes a second (default 1). Clearing the
  fault sends the rest at once; stopping the proxy abandons it.
- ``error``: HTTP 500 ``{"__type": "InternalFailure"}``, not forwarded.
- ``reset``: TCP RST (SO_LINGER 0, then close), not forwarded.
- ``throttle``: HTTP 400 ``ThrottlingException`` for every matching request, whatever
  the token bucket holds; not forwarded.

Every fault also takes ``count`` (fault only the first ``count`` matching requests,
then the fault is spent; default: every one until cleared) and ``contains`` (fault
only requests whose body contains this text, e.g. one parameter's name). Faults add
up; the oldest one that matches a request applies to it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

KINDS = ("outage", "hang", "trickle", "error", "reset", "throttle")
ERROR_BODY = json.dumps({"__type": "InternalFailure", "message": "Injected fault"}).encode()


@dataclass
class Fault:
    kind: str
    operations: frozenset[str] | None = None
    count: int | None = None
    contains: bytes | None = None
    bytes_per_second: float = 1.0
    # Set when the fault is cleared or the proxy stops: a hang ends, a trickle speeds up.
    released: threading.Event = field(default_factory=threading.Event)

    def matches(self, target: str | None, body: bytes) -> bool:
        if self.operations is not None and target not in self.operations:
            return False
        return self.contains is None or self.contains in body


def make_fault(kind: str, operations: Any = None, **params: Any) -> Fault:
    """A checked ``Fault``; ValueError naming what is wrong otherwise."""
    if kind not in KINDS:
        raise ValueError(f"unknown fault kind {kind!r}: use one of {', '.join(KINDS)}")
    unknown = set(params) - {"count", "contains", "bytes_per_second"}
    if unknown:
        raise ValueError(f"unknown fault parameters {sorted(unknown)}")
    if operations is not None:
        if isinstance(operations, str) or not all(isinstance(o, str) for o in operations):
            raise ValueError("operations must be a list of X-Amz-Target values, or null")
        operations = frozenset(operations)
    count = params.get("count")
    if count is not None and (not isinstance(count, int) or count < 1):
        raise ValueError("count must be a whole number of requests, 1 or more")
    rate = float(params.get("bytes_per_second", 1.0))
    if rate <= 0:
        raise ValueError("bytes_per_second must be above 0")
    contains = params.get("contains")
    return Fault(
        kind,
        operations,
        count,
        contains.encode() if isinstance(contains, str) else contains,
        rate,
    )


class FaultTable:
    """The active faults, thread-safe, with counts of faulted requests per kind."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.faulted: dict[str, int] = {}

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            faults, self._faults = self._faults, []
        for fault in faults:
            fault.released.set()

    def take(self, target: str | None, body: bytes) -> Fault | None:
        """The fault for this request (counted, and spent if its count is reached)."""
        if not self._faults:  # the common case: no lock taken
            return None
        with self._lock:
            for fault in self._faults:
                if fault.matches(target, body):
                    if fault.count is not None:
                        fault.count -= 1
                        if fault.count == 0:
                            self._faults.remove(fault)
                    self.faulted[fault.kind] = self.faulted.get(fault.kind, 0) + 1
                    return fault
        return None

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.faulted)


def parse_request(body: bytes) -> tuple[str | None, Fault | None]:
    """``POST /__fault``'s JSON: (None, None) clears; else the fault to add."""
    try:
        spec = json.loads(body or b"{}")
    except ValueError as error:
        raise ValueError(f"the body is not JSON: {error}") from None
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ValueError('send {"kind": ..., "operations": [...], ...} or {"kind": null}')
    kind = spec.pop("kind")
    if kind is None:
        return None, None
    return kind, make_fault(kind, spec.pop("operations", None), **spec)
