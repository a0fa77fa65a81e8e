"""The local AWS endpoint as a long-running command, for the user's own project.

``python -m confio_kms.sandbox`` and ``manage.py kms_sandbox`` both run ``serve``: it
starts ``LocalAWS`` (moto's KMS and SSM server on loopback with the Ed25519 and
Parameter Store stand-ins), warms it (each service's first request is served before
anything is printed), prints the settings that point a project at it in ``.env``
form, and runs until Ctrl-C (SIGINT) or SIGTERM, then stops the server and returns.
Keys live in this process's memory: they are gone when it stops.
"""

from __future__ import annotations

import json
import signal
import threading
from types import FrameType
from typing import Any, Protocol

from confio_kms.sandbox import DUMMY_CREDENTIALS, SANDBOX_REGION, LocalAWS


class Stream(Protocol):
    def write(self, text: str, /) -> Any: ...
    def flush(self) -> Any: ...


def settings_lines(url: str) -> list[str]:
    """The settings, as confio_kms's settings.py reads them, for an endpoint at ``url``."""
    return [
        f"KMS_ENDPOINT_URL={url}",
        f"KMS_REGION={SANDBOX_REGION}",
        *(f"{name}={value}" for name, value in DUMMY_CREDENTIALS.items()),
        "USE_KMS_SIGNING=true",
    ]


def serve(out: Stream, port: int = 0, host: str = "127.0.0.1", *, as_json: bool = False) -> None:
    """Run the endpoint until SIGINT or SIGTERM; ``port`` 0 picks a free one.
    ``as_json``: the settings as one JSON object on ``out``, and nothing else."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Handlers set an event (never raise mid-request); restored on the way out.
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    aws = LocalAWS(host, port)
    try:
        url = aws.start()  # warmed: the first request is already served
        if as_json:
            pairs = (line.split("=", 1) for line in settings_lines(url))
            out.write(json.dumps({"settings": dict(pairs)}) + "\n")
        else:
            _write_settings(out, url)
        out.flush()
        while not stop.wait(0.5):  # a bounded wait so the handler's event is seen
            pass
    finally:
        aws.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if not as_json:
        out.write("# confio-kms sandbox: stopped.\n")
        out.flush()


def _write_settings(out: Stream, url: str) -> None:
    out.write(
        f"# confio-kms sandbox: a local AWS endpoint (KMS and SSM) at {url}, ready.\n"
        "# Point your project at it with these settings (environment, .env or Django\n"
        "# settings); the credentials are dummies the endpoint accepts:\n"
    )
    out.write("".join(line + "\n" for line in settings_lines(url)))
    out.write(
        "# Optional: CONFIO_SANDBOX=true makes kms_test_sign and kms_rotate submit to\n"
        "# the local ledger evaluator. Keys live in this process only. Ctrl-C stops it.\n"
    )
