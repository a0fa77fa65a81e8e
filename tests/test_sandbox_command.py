"""The local endpoint for a user's own project: ``manage.py kms_sandbox``, run as a user
would (a real process, its printed settings, Ctrl-C)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from algosdk import transaction

from confio_kms import factory as conf
from confio_kms.sandbox import LocalLedger

from .conftest import SPONSOR_ALIAS

ROOT = Path(__file__).resolve().parents[1]


def test_kms_sandbox_prints_settings_that_sign_and_stops_on_ctrl_c(
    monkeypatch: pytest.MonkeyPatch, ledger: LocalLedger
) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "django", "kms_sandbox"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        printed: dict[str, str] = {}
        for line in child.stdout:  # the settings come after the warm-up, then the hint
            if line.startswith("# Optional"):
                break
            if not line.startswith("#"):
                name, _, value = line.strip().partition("=")
                printed[name] = value
        assert set(printed) == {
            "KMS_ENDPOINT_URL",
            "KMS_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "USE_KMS_SIGNING",
        }
        # This process reaches the endpoint only through the printed settings.
        monkeypatch.delenv("AWS_ENDPOINT_URL")
        for name, value in printed.items():
            monkeypatch.setenv(name, value)
        conf.reset()
        created = conf.kms_manager().create_algorand_key(SPONSOR_ALIAS, native=True)
        signer = conf.kms_signer()
        assert signer.address == created.address
        ledger.fund(signer.address, 1_000_000)
        payment = transaction.PaymentTxn(
            signer.address, ledger.suggested_params(), signer.address, 0
        )
        ledger.evaluate([signer.sign_transaction(payment)])  # accepted by the ledger
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=60) == 0, child.stderr.read() if child.stderr else ""
        assert child.stdout.read().endswith("\n# confio-kms sandbox: stopped.\n")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    address = urlsplit(printed["KMS_ENDPOINT_URL"])
    with pytest.raises(ConnectionRefusedError), socket.socket() as sock:
        sock.connect((address.hostname, address.port))


WARMED = """
from moto.core import DEFAULT_ACCOUNT_ID
from moto.kms.models import kms_backends
from moto.ssm.models import ssm_backends
from confio_kms.sandbox import SANDBOX_REGION, LocalAWS

with LocalAWS():
    # moto builds a region's backend on its first request: built means served.
    print(all(
        dict.__contains__(backends[DEFAULT_ACCOUNT_ID], SANDBOX_REGION)
        for backends in (kms_backends, ssm_backends)
    ))
"""


def test_local_aws_serves_each_services_first_request_before_it_is_used() -> None:
    """Issue 25: moto's first request outran the 10 s signing deadline on a busy machine;
    ``start()`` now serves it (with slack) before returning, in a fresh process here."""
    done = subprocess.run(
        [sys.executable, "-c", WARMED],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout == "True\n"
