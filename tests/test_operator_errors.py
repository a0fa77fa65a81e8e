"""Errors an operator meets (issue 25): each is typed, one line, and names a command
or a setting that fixes it."""

from __future__ import annotations

import http.server
import io
import json
import socket
import threading
import time
from collections.abc import Iterator

import boto3
import pytest
from algosdk import transaction
from django.core.management import CommandError, call_command
from django.test import override_settings

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.common import exceptions
from confio_kms.sandbox import LocalLedger

from .helpers import EnvelopeKey, NativeKey


@pytest.fixture
def web_server() -> Iterator[str]:
    """A plain HTTP server on loopback: every POST gets its 501 HTML page."""
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_web_server_at_the_endpoint_is_named_as_not_an_aws_api(web_server: str) -> None:
    manager = AlgorandKMSManager(endpoint_url=web_server)
    with pytest.raises(exceptions.NotAnAWSEndpointError) as raised:
        manager.get_address("confio-testnet-sponsor")
    text = str(raised.value)
    assert "HTTP 501" in text and "not an AWS API" in text and "KMS_ENDPOINT_URL" in text
    assert "kms_sandbox" in text and len(text) < 500  # the page is cut, not pasted


def test_import_with_standard_input_closed_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", None)  # what Python sets when descriptor 0 is closed
    with pytest.raises(CommandError, match=r"standard input is closed.*kms_setup"):
        call_command("kms_setup", "--import-existing", "--no-input")


@pytest.mark.parametrize("kind", ["envelope", "native"])  # a parameter path; a key id
def test_a_key_pending_deletion_names_the_command_that_cancels_it(
    manager: AlgorandKMSManager,
    envelope_key: EnvelopeKey,
    native_key: NativeKey,
    ledger: LocalLedger,
    kind: str,
) -> None:
    address = envelope_key("doomed")[1] if kind == "envelope" else native_key("doomed").address
    manager.delete_key("doomed", pending_window_days=7)
    txn = transaction.PaymentTxn(address, ledger.suggested_params(), address, 0)
    with pytest.raises(exceptions.KeyStateError) as raised:
        KMSSigner("doomed", session=boto3.Session()).sign_transaction(txn)
    assert "`manage.py kms_delete doomed --cancel`" in str(raised.value.fix)
    assert "AlgorandKMSManager" not in str(raised.value)


def test_kms_doctor_against_an_endpoint_that_never_answers_waits_one_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 25: each check waited out its own deadline (five of them, 42 s); after the
    first request is abandoned, the later checks say so without sending anything."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:  # accepts every connection and never answers
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    out = io.StringIO()
    started = time.monotonic()
    try:
        with override_settings(
            USE_KMS_SIGNING=True, KMS_ENDPOINT_URL=url, CONFIO_KMS_CALL_DEADLINE=1
        ):
            call_command("kms_doctor", "--json", stdout=out, stderr=io.StringIO())
        elapsed = time.monotonic() - started
    finally:
        listener.close()
        for connection in accepted:
            connection.close()
    findings = json.loads(out.getvalue())["findings"]
    unknown = [f["message"] for f in findings if f["status"] == "unknown"]
    assert "CONFIO_KMS_CALL_DEADLINE = 1 s" in unknown[0]  # abandoned, or its read timed out
    assert sum("was not sent: the endpoint did not answer" in m for m in unknown) >= 3
    assert len(accepted) == 1  # one request reached the endpoint, not one per check
    assert elapsed < 10  # generous: it waited one 1 s deadline (the count above is exact)
