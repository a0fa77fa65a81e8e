"""Servers the benchmark starts on loopback, each in its own process.

The AWS endpoint is the sandbox's ``LocalAWS`` (moto's server with the KMS Ed25519
stand-in, ``confio_kms.sandbox.ed25519``: moto lacks ECC_NIST_EDWARDS25519), in a
separate process so that, as with real AWS, the endpoint's work does not share the
benchmark's interpreter. Redis and memcached are Debian's servers (``apt-get install
redis-server memcached``), started with persistence off.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Endpoint:
    url: str
    pid: int

    def cpu_reader(self) -> Callable[[], float] | None:
        """``cpu_seconds`` where /proc exists (Linux), else None: not measured."""
        return self.cpu_seconds if Path(f"/proc/{self.pid}/stat").exists() else None

    def cpu_seconds(self) -> float:
        """CPU time the server's process has used so far, all threads (Linux /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of stat(5)
        return (utime + stime) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def local_aws(*, ed25519: bool = True) -> Iterator[Endpoint]:
    """Start moto's server in a child process; yield its URL and process id.

    ``ed25519``: with the sandbox's KMS Ed25519 stand-in (moto lacks the key spec);
    without it, moto as it ships (enough for envelope keys: the quota run).
    """
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "serve" if ed25519 else "serve-plain"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError("moto's server did not start")
        yield Endpoint(url, child.pid)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def cache_server(kind: str) -> Iterator[dict[str, str] | None]:
    """Start Redis or memcached on loopback; yield Django's CACHES entry, or None
    when the server or its Python client is not installed."""
    port = free_port()
    client = importlib.util.find_spec("redis" if kind == "redis" else "pymemcache")
    if kind == "redis":
        binary = shutil.which("redis-server")
        command = [f"{binary}", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        config = {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}",
        }
    else:
        binary = shutil.which("memcached")
        command = [f"{binary}", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-u", "nobody"]
        config = {
            "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
            "LOCATION": f"127.0.0.1:{port}",
        }
    if binary is None or client is None:
        yield None
        return
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind} did not start on port {port}")
            time.sleep(0.05)
        yield config
    finally:
        server.terminate()
        server.wait(timeout=10)


def _serve(ed25519: bool) -> None:
    sys.path.insert(0, str(ROOT))
    from confio_kms.sandbox import LocalAWS

    with LocalAWS(ed25519=ed25519) as aws:
        print(aws.url, flush=True)
        sys.stdin.read()  # until the benchmark closes our stdin


if __name__ == "__main__":
    _serve(ed25519=sys.argv[1:] != ["serve-plain"])
