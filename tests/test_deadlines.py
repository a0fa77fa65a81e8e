"""Time limits of AWS requests: connect and read timeouts and attempts from the
settings, and a deadline per signing call that covers its lookups, requests and
retries together.

Against an endpoint that accepts connections and never answers (a local socket),
and against the local endpoint made slow or throttling with botocore events. Each
call runs in a thread that the test waits for with a generous bound, so a call that
ignores its limits fails the test at that bound instead of hanging it; no assertion
looks at a duration below its bound.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from algosdk import account, transaction
from botocore.awsrequest import AWSResponse
from pytest_django.fixtures import Settings as SettingsWrapper

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms import settings as config
from confio_kms.common import exceptions
from confio_kms.core.aws import AWSClients
from confio_kms.sandbox import LocalLedger

ALIAS = "deadline"
# Small limits keep the tests fast; bounds add a generous margin for a loaded machine.
READ_TIMEOUT = 0.2
DEADLINE = 1.0
MARGIN = 1.5


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._body


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An http URL whose server accepts connections and never answers."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    server.settimeout(0.05)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(connection)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    acceptor.join()
    for connection in held:  # a request still waiting (old code) now fails at once
        connection.close()
    server.close()


def attempts_of(session: boto3.Session) -> list[str]:
    """Every HTTP attempt (retries included) of clients built from ``session``."""
    sent: list[str] = []
    session.events.register("before-send", lambda event_name, **kw: sent.append(event_name))
    return sent


def finish_within(bound: float, call: Callable[[], object]) -> dict[str, Any]:
    """Run ``call`` in a thread; fail unless it ends within ``bound`` seconds.

    Returns {"error": the exception it raised or None, "elapsed": seconds}.
    """
    outcome: dict[str, Any] = {"error": None}

    def run() -> None:
        start = time.monotonic()
        try:
            call()
        except BaseException as error:
            outcome["error"] = error
        outcome["elapsed"] = time.monotonic() - start

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(bound)
    assert not worker.is_alive(), f"the call was still waiting for AWS after {bound} s"
    return outcome


def settings_clients() -> AWSClients:
    """Clients as the Django app builds them: options from the settings, read now."""
    return AWSClients(options=config.options())


def payment(sender: str) -> transaction.PaymentTxn:
    return transaction.PaymentTxn(sender, LocalLedger.suggested_params(), sender, 0)


def test_client_timeouts_and_attempts_come_from_settings(settings: SettingsWrapper) -> None:
    config = settings_clients().kms.meta.config
    # Defaults for a web request: a hung connection or request is given up quickly.
    assert (config.connect_timeout, config.read_timeout) == (2, 5)
    assert config.retries == {"mode": "standard", "total_max_attempts": 4}

    settings.CONFIO_KMS_CONNECT_TIMEOUT = 0.5
    settings.CONFIO_KMS_READ_TIMEOUT = "1.5"
    settings.CONFIO_KMS_MAX_ATTEMPTS = 2
    for client in (settings_clients().kms, settings_clients().ssm):
        config = client.meta.config
        assert (config.connect_timeout, config.read_timeout) == (0.5, 1.5)
        assert config.retries == {"mode": "standard", "total_max_attempts": 2}


@pytest.mark.parametrize(
    "name, value",
    [
        ("CONFIO_KMS_READ_TIMEOUT", 0),
        ("CONFIO_KMS_CONNECT_TIMEOUT", "soon"),
        ("CONFIO_KMS_MAX_ATTEMPTS", 0),
        ("CONFIO_KMS_CALL_DEADLINE", -1),
    ],
)
def test_an_invalid_limit_is_a_configuration_error(
    settings: SettingsWrapper, name: str, value: object
) -> None:
    setattr(settings, name, value)
    with pytest.raises(exceptions.ConfigurationError, match=name):
        settings_clients().call("kms", "ListAliases", "aliases")


def test_a_signing_call_against_a_silent_endpoint_ends_at_its_deadline(
    settings: SettingsWrapper, silent_endpoint: str
) -> None:
    settings.CONFIO_KMS_READ_TIMEOUT = READ_TIMEOUT
    settings.CONFIO_KMS_CONNECT_TIMEOUT = READ_TIMEOUT
    settings.CONFIO_KMS_CALL_DEADLINE = DEADLINE
    settings.CONFIO_KMS_MAX_ATTEMPTS = 10  # the deadline, not the attempts, must end it
    session = boto3.Session()
    sent = attempts_of(session)
    signer = KMSSigner(ALIAS, endpoint_url=silent_endpoint, session=session)
    _, sender = account.generate_account()

    outcome = finish_within(
        DEADLINE + READ_TIMEOUT + MARGIN, lambda: signer.sign_transaction(payment(sender))
    )

    error = outcome["error"]
    assert isinstance(error, exceptions.AWSConnectionError), error
    assert type(error).__name__ == "DeadlineExceededError" and isinstance(error, TimeoutError)
    assert "CONFIO_KMS_CALL_DEADLINE = 1 s" in str(error) and "Fix:" in str(error)
    assert silent_endpoint in str(error)
    # The cold lookup's DescribeKey was retried within the deadline, then given up.
    assert set(sent) == {"before-send.kms.DescribeKey"}
    assert 2 <= len(sent) < 10


def test_max_attempts_bounds_each_request(settings: SettingsWrapper, silent_endpoint: str) -> None:
    settings.CONFIO_KMS_READ_TIMEOUT = READ_TIMEOUT
    settings.CONFIO_KMS_MAX_ATTEMPTS = 2
    settings.CONFIO_KMS_CALL_DEADLINE = 60  # out of the way
    session = boto3.Session()
    sent = attempts_of(session)
    manager = AlgorandKMSManager(endpoint_url=silent_endpoint, session=session)

    outcome = finish_within(2 * READ_TIMEOUT + MARGIN, lambda: manager.get_address(ALIAS))

    error = outcome["error"]
    assert isinstance(error, exceptions.AWSConnectionError), error
    assert type(error).__name__ == "AWSConnectionError"  # attempts ran out, not the deadline
    assert sent == ["before-send.kms.DescribeKey"] * 2


def test_the_deadline_covers_every_request_of_a_call(
    settings: SettingsWrapper, manager: AlgorandKMSManager
) -> None:
    address = manager.create_algorand_key(ALIAS).address  # nothing cached: signing looks up
    settings.CONFIO_KMS_CALL_DEADLINE = DEADLINE
    session = boto3.Session()
    sent = attempts_of(session)
    # Every request answers, each after 0.6 s: the second lookup request is still in
    # flight at the deadline, so it is abandoned then and the decrypt is never sent.
    session.events.register("before-send", lambda **kw: time.sleep(0.6))
    signer = KMSSigner(ALIAS, session=session)

    outcome = finish_within(
        DEADLINE + 0.6 + MARGIN, lambda: signer.sign_transaction(payment(address))
    )

    error = outcome["error"]
    assert type(error).__name__ == "DeadlineExceededError", error
    assert "AWS kms:ListResourceTags on alias/deadline" in str(error)
    assert "had not answered completely when the deadline of the signing call" in str(error)
    assert sent == ["before-send.kms.DescribeKey", "before-send.kms.ListResourceTags"]


def test_no_retry_starts_when_its_backoff_would_pass_the_deadline(
    settings: SettingsWrapper, manager: AlgorandKMSManager
) -> None:
    manager.create_algorand_key(ALIAS)
    address = manager.get_address(ALIAS)
    settings.CONFIO_KMS_CALL_DEADLINE = DEADLINE
    session = boto3.Session()
    sent = attempts_of(session)
    body = json.dumps({"__type": "ThrottlingException", "message": "slow down"}).encode()

    def throttle(request: Any, **kwargs: Any) -> AWSResponse:
        # AWS asks for 4 s before the retry: more than the call has left.
        headers = {"x-amz-retry-after": "4000", "x-amzn-RequestId": "injected"}
        return AWSResponse(request.url, 400, headers, _Body(body))

    session.events.register("before-send.ssm.GetParameter", throttle)
    signer = KMSSigner(ALIAS, session=session)
    signer.address  # noqa: B018  (cached: the call below is the decrypt alone)
    sent.clear()

    outcome = finish_within(DEADLINE + MARGIN, lambda: signer.sign_transaction(payment(address)))

    error = outcome["error"]
    assert type(error).__name__ == "DeadlineExceededError", error
    assert "left no time to retry" in str(error) and "ThrottlingException" in str(error)
    assert sent == ["before-send.ssm.GetParameter"]
