"""A quota-emulating endpoint: an HTTP proxy on loopback in front of moto's server.

Every request is forwarded to the upstream endpoint (moto) unchanged, after an added
delay that stands in for the network round trip to AWS: half of it before the
request reaches the "service" (where the quota is checked) and half after the
answer, so that a throttled answer costs a round trip too, as it does against AWS.

Each quota is a token bucket shared by every client, for the operations
(``X-Amz-Target``) AWS counts against it (``Quota``; ``QUOTAS`` are the defaults):

- Parameter Store: 40 requests/s, burst 40, shared by GetParameter, GetParameters,
  GetParametersByPath and PutParameter (AWS's standard throughput); over it, HTTP 400
  ``{"__type": "ThrottlingException", "message": "Rate exceeded"}``.
- KMS symmetric cryptographic operations (Decrypt, Encrypt, GenerateDataKey, ...):
  10,000 requests/s, burst 10,000 (eu-central-2's default).
- KMS ECC cryptographic operations (Sign, Verify, GetPublicKey): 1,000 requests/s,
  burst 1,000, shared by all ECC keys. The proxy cannot see a key's type: every
  Sign, Verify and GetPublicKey counts here (the only asymmetric keys confio_kms
  uses are ECC_NIST_EDWARDS25519).

Over a KMS quota the answer is HTTP 400 ``ThrottlingException`` with KMS's message
("You have exceeded the rate at which you may call KMS. ..."). A throttled request
never reaches moto. AWS documents no burst; the burst here is one second of the rate.
Every answer has content type ``application/x-amz-json-1.1``.

Faults (benchmarks/proxy_faults.py: outage, hang, trickle, error, reset, throttle)
are switched on with ``QuotaProxy.fault(kind, operations=None, **params)`` and off
with ``QuotaProxy.clear_faults()``, or from another process with ``POST /__fault``
and a JSON body ``{"kind": ..., "operations": [...], ...params}`` (``{"kind": null}``
clears them all).

Counts of forwarded and throttled requests per operation, and of faulted requests
per kind, are read with ``QuotaProxy.stats()`` in the process, or ``GET /__stats``
(JSON). The proxy is a context manager: leaving it stops the server, ends every
hang and trickle and closes every open connection.

moto's server itself is started by ``benchmarks.endpoint.local_aws(ed25519=False)``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import struct
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.proxy_faults import ERROR_BODY, Fault, FaultTable, make_fault, parse_request  # noqa: E402
from confio_kms.core import aws_errors  # noqa: E402  (the quotas' operations)

DEFAULT_RATE = 40.0
DEFAULT_BURST = 40
DEFAULT_DELAY = 0.020
SSM_TARGETS = frozenset(f"AmazonSSM.{op}" for op in aws_errors.PARAMETER_STORE_OPERATIONS)
KMS_SYMMETRIC_TARGETS = frozenset(
    f"TrentService.{op}" for op in aws_errors.KMS_SYMMETRIC_OPERATIONS
)
KMS_ECC_TARGETS = frozenset(f"TrentService.{op}" for op in aws_errors.KMS_ECC_OPERATIONS)
THROTTLED_TARGETS = SSM_TARGETS  # the Parameter Store quota's, as before
KMS_SYMMETRIC_RATE = 10_000.0
KMS_ECC_RATE = 1_000.0
THROTTLE_BODY = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
KMS_THROTTLE_BODY = json.dumps(
    {
        "__type": "ThrottlingException",
        "message": "You have exceeded the rate at which you may call KMS. "
        "Reduce the frequency of your calls.",
    }
).encode()
AWS_JSON = "application/x-amz-json-1.1"
# An idle client connection is closed after this many seconds (keeps handler
# threads bounded when clients drop their connection pools without closing them).
IDLE_TIMEOUT = 5.0
UPSTREAM_TIMEOUT = 30.0
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` held; starts full. Thread-safe."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be above 0 and burst at least 1")
        self.rate = float(rate)
        self.burst = int(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """One token, if there is one."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False

    def refill(self) -> None:
        """Full again, as after ``burst / rate`` seconds without requests."""
        with self._lock:
            self._tokens = float(self.burst)
            self._stamp = self._clock()


@dataclass
class Quota:
    """One AWS request quota: a bucket shared by every client for ``targets``, and the
    body AWS answers a throttled request with."""

    name: str
    targets: frozenset[str]
    bucket: TokenBucket
    body: bytes

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rate": self.bucket.rate,
            "burst": self.bucket.burst,
            "operations": sorted(t.rsplit(".", 1)[-1] for t in self.targets),
        }


def default_quotas(
    rate: float = DEFAULT_RATE,
    burst: int = DEFAULT_BURST,
    *,
    ssm_targets: frozenset[str] = SSM_TARGETS,
    kms_rate: float = KMS_SYMMETRIC_RATE,
    ecc_rate: float = KMS_ECC_RATE,
    clock: Callable[[], float] = time.monotonic,
) -> list[Quota]:
    """Parameter Store's (``rate``, ``burst``), KMS symmetric and KMS ECC (burst: one
    second of the rate); a rate of 0 leaves that quota out."""
    quotas = [Quota("Parameter Store", ssm_targets, TokenBucket(rate, burst, clock), THROTTLE_BODY)]
    for name, targets, per_second in (
        ("KMS symmetric", KMS_SYMMETRIC_TARGETS, kms_rate),
        ("KMS ECC", KMS_ECC_TARGETS, ecc_rate),
    ):
        if per_second:
            bucket = TokenBucket(per_second, max(1, int(per_second)), clock)
            quotas.append(Quota(name, targets, bucket, KMS_THROTTLE_BODY))
    return quotas


@dataclass
class Stats:
    """Requests per operation: forwarded to the upstream, and answered throttled."""

    forwarded: dict[str, int] = field(default_factory=dict)
    throttled: dict[str, int] = field(default_factory=dict)
    upstream_errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "forwarded": dict(self.forwarded),
            "throttled": dict(self.throttled),
            "upstream_errors": self.upstream_errors,
        }


_REASONS = {200: "OK", 400: "Bad Request", 500: "Internal Server Error", 502: "Bad Gateway"}


def operation(target: str | None) -> str:
    """``AmazonSSM.GetParameter`` -> ``GetParameter``; no target -> ``(none)``."""
    return target.rsplit(".", 1)[-1] if target else "(none)"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    timeout = IDLE_TIMEOUT
    # Buffered: the status line, headers and body leave in one write when the
    # request's handling flushes (http.server does after each request).
    wbufsize = 1 << 16
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Answers go out at once: Nagle's algorithm against the client's delayed
        # acknowledgements would add up to 40 ms to every answer on a kept-alive
        # connection, more than the round trip being emulated.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)
        self._upstream: http.client.HTTPConnection | None = None

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.track(self.connection, False)
        if self._upstream is not None:
            self._upstream.close()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request on stderr is noise here

    def do_GET(self) -> None:
        if self.path == "/__stats":
            self._answer(200, {"Content-Type": "application/json"}, self.server.stats_json())
        else:
            self._proxy()

    def do_POST(self) -> None:
        if self.path == "/__fault":
            self._fault_request()
        else:
            self._proxy()

    def do_PUT(self) -> None:
        self._proxy()

    def do_DELETE(self) -> None:
        self._proxy()

    def do_HEAD(self) -> None:
        self._proxy()

    def _fault_request(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            kind, fault = parse_request(body)
        except (ValueError, TypeError) as error:
            self._answer(400, {"Content-Type": "text/plain"}, str(error).encode())
            return
        if fault is None:
            self.server.faults.clear()
        else:
            self.server.faults.add(fault)
        self._answer(200, {"Content-Type": "application/json"}, json.dumps({"kind": kind}).encode())

    def _proxy(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        target = self.headers.get("X-Amz-Target")
        name = operation(target)
        proxy = self.server
        fault = proxy.faults.take(target, body)
        half = proxy.delay / 2
        if half:
            time.sleep(half)  # the request on its way
        if fault is not None and fault.kind in ("outage", "hang", "reset"):
            self._drop(fault)
            return
        if fault is not None and fault.kind in ("error", "throttle"):
            status, headers = (500 if fault.kind == "error" else 400), {"Content-Type": AWS_JSON}
            answer = ERROR_BODY if fault.kind == "error" else THROTTLE_BODY
        elif (quota := proxy.quota_for(target)) is not None and not quota.bucket.take():
            proxy.count("throttled", name)
            status, headers, answer = 400, {"Content-Type": AWS_JSON}, quota.body
            headers["x-amzn-RequestId"] = f"quota-proxy-{time.monotonic_ns()}"
        else:
            try:
                status, headers, answer = self._forward(body)
            except (OSError, http.client.HTTPException) as error:
                proxy.count_upstream_error()
                status, headers = 502, {"Content-Type": "text/plain"}
                answer = f"quota proxy: upstream failed: {type(error).__name__}".encode()
            else:
                proxy.count("forwarded", name)
        if half:
            time.sleep(half)  # the answer on its way back
        if fault is not None and fault.kind == "trickle":
            self._trickle(fault, status, headers, answer)
        else:
            self._answer(status, headers, answer)

    def _drop(self, fault: Fault) -> None:
        """No answer: the connection closed (outage), held then closed (hang), or reset."""
        self.close_connection = True
        if fault.kind == "hang":
            while not fault.released.wait(0.1) and not self.server.stopping.is_set():
                pass
        if fault.kind == "reset":
            # Linger 0 makes close() send RST; detach so the handler's own files
            # cannot keep the descriptor open.
            linger = struct.pack("ii", 1, 0)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            os.close(self.connection.detach())
        else:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def _trickle(self, fault: Fault, status: int, headers: dict[str, str], body: bytes) -> None:
        """The whole answer, status line and headers included, a byte at a time."""
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
        lines += [f"{key}: {value}" for key, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        pause = 1 / fault.bytes_per_second
        try:
            for index in range(len(raw)):
                if fault.released.is_set():  # cleared: the rest at once
                    self.connection.sendall(raw[index:])
                    break
                self.connection.sendall(raw[index : index + 1])
                if self.server.stopping.wait(pause):
                    self.close_connection = True
                    return
        except OSError:
            self.close_connection = True  # the client gave up

    def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """The upstream's answer; one new connection and one retry if a kept-alive
        connection turned out closed."""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        for attempt in range(2):
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(
                    self.server.upstream_host, self.server.upstream_port, timeout=UPSTREAM_TIMEOUT
                )
            try:
                self._upstream.request(self.command, self.path, body, headers)
                response = self._upstream.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                self._upstream.close()
                self._upstream = None
                if attempt:
                    raise
                continue
            kept = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
            if response.will_close:
                self._upstream.close()
                self._upstream = None
            return response.status, kept, data
        raise AssertionError("unreachable")  # pragma: no cover

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, quotas: list[Quota], delay: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream_host = parsed.hostname or "127.0.0.1"
        self.upstream_port = parsed.port or 80
        self._quotas = {target: quota for quota in quotas for target in quota.targets}
        self.delay = delay
        self._stats = Stats()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.faults = FaultTable()
        self.stopping = threading.Event()  # ends every hang and trickle

    def quota_for(self, target: str | None) -> Quota | None:
        return self._quotas.get(target or "")

    def count(self, kind: str, name: str) -> None:
        with self._lock:
            counts = self._stats.forwarded if kind == "forwarded" else self._stats.throttled
            counts[name] = counts.get(name, 0) + 1

    def count_upstream_error(self) -> None:
        with self._lock:
            self._stats.upstream_errors += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            stats = self._stats.as_dict()
        stats["faulted"] = self.faults.counts()
        return stats

    def stats_json(self) -> bytes:
        return json.dumps(self.stats()).encode()

    def track(self, conn: socket.socket, opened: bool) -> None:
        with self._lock:
            if opened:
                self._open.add(conn)
            else:
                self._open.discard(conn)

    def close_connections(self) -> None:
        with self._lock:
            conns = list(self._open)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class QuotaProxy:
    """The proxy on a free loopback port; ``url`` once entered.

    Parameter Store's quota: ``rate`` tokens per second and ``burst`` at most, for the
    operations in ``throttled_targets`` (``X-Amz-Target`` values); KMS's symmetric and
    ECC quotas: ``kms_rate`` and ``ecc_rate`` per second (0: not emulated); or
    ``quotas`` given whole. ``delay`` seconds added to every request (the round trip,
    half each way).
    """

    def __init__(
        self,
        upstream: str,
        *,
        rate: float = DEFAULT_RATE,
        burst: int = DEFAULT_BURST,
        delay: float = DEFAULT_DELAY,
        throttled_targets: frozenset[str] = THROTTLED_TARGETS,
        kms_rate: float = KMS_SYMMETRIC_RATE,
        ecc_rate: float = KMS_ECC_RATE,
        quotas: list[Quota] | None = None,
    ) -> None:
        if delay < 0:
            raise ValueError("delay must be 0 or more seconds")
        self.upstream = upstream
        self.quotas = quotas or default_quotas(
            rate, burst, ssm_targets=throttled_targets, kms_rate=kms_rate, ecc_rate=ecc_rate
        )
        self.bucket = self.quotas[0].bucket  # the first quota's (Parameter Store's)
        self.delay = delay
        self.throttled_targets = self.quotas[0].targets
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "rate": self.bucket.rate,
            "burst": self.bucket.burst,
            "delay_ms": self.delay * 1000,
            "throttled": sorted(self.throttled_targets),
            "quotas": [quota.settings for quota in self.quotas],
        }

    def stats(self) -> dict[str, Any]:
        """Forwarded and throttled requests per operation so far (a copy)."""
        assert self._server is not None, "the proxy is not running"
        return self._server.stats()

    def refill(self) -> None:
        """Fill every bucket, as if no request had come for a while."""
        for quota in self.quotas:
            quota.bucket.refill()

    def fault(self, kind: str, operations: Any = None, **params: Any) -> None:
        """Inject ``kind`` into the requests for ``operations`` (``X-Amz-Target``
        values; None = all) until ``clear_faults``; see benchmarks/proxy_faults.py for
        the kinds and ``params`` (``count``, ``contains``, ``bytes_per_second``)."""
        assert self._server is not None, "the proxy is not running"
        self._server.faults.add(make_fault(kind, operations, **params))

    def clear_faults(self) -> None:
        """No more faults; a held hang is closed, a trickle sends the rest at once."""
        assert self._server is not None, "the proxy is not running"
        self._server.faults.clear()

    def __enter__(self) -> QuotaProxy:
        self._server = _Server(self.upstream, self.quotas, self.delay)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="quota-proxy",
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.stopping.set()
        self._server.shutdown()  # serve_forever returns within poll_interval
        self._server.close_connections()
        self._server.server_close()
        self._thread.join(timeout=10)


def stats_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What happened between two ``stats()`` snapshots."""

    def minus(kind: str) -> dict[str, int]:
        first, last = before.get(kind, {}), after.get(kind, {})
        delta = {n: last.get(n, 0) - first.get(n, 0) for n in sorted(set(first) | set(last))}
        return {n: v for n, v in delta.items() if v}

    return {
        "forwarded": minus("forwarded"),
        "throttled": minus("throttled"),
        "upstream_errors": after["upstream_errors"] - before["upstream_errors"],
        "faulted": minus("faulted"),
    }
