"""No private key or mnemonic in any log record, even with DEBUG on for every
logger (botocore prints request and response bodies at DEBUG)."""

from __future__ import annotations

import base64
import logging
import logging.config
from collections.abc import Iterator

import boto3
import pytest
from algosdk import mnemonic, transaction

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.common.redaction import _FILTER, REDACTED, install_redaction, redact
from confio_kms.sandbox import LocalLedger

from .helpers import new_account


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self) -> list[str]:
        return [self.format(r) for r in self.records]


@pytest.fixture
def debug_everything() -> Iterator[Capture]:
    """DEBUG on the root and on every logger that exists, botocore's included."""
    capture = Capture()
    root = logging.getLogger()
    saved = (
        root.level,
        {
            name: logger.level
            for name, logger in logging.root.manager.loggerDict.items()
            if isinstance(logger, logging.Logger)
        },
    )
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    for name in saved[1]:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield capture
    root.removeHandler(capture)
    root.setLevel(saved[0])
    for name, level in saved[1].items():
        logging.getLogger(name).setLevel(level)


def secrets_of(private_key: str) -> list[str]:
    """Every form in which this key could leak."""
    raw = base64.b64decode(private_key)
    return [
        private_key,
        mnemonic.from_private_key(private_key),
        raw[:32].hex(),
        base64.b64encode(raw[:32]).decode(),
        repr(raw[:32])[2:-1],
    ]


def exercise(session: boto3.Session) -> list[str]:
    """Create, import and sign; return every secret involved."""
    manager = AlgorandKMSManager(session=session)
    created = manager.create_algorand_key("created-key")
    private_key, _ = new_account()
    manager.import_existing_key("imported-key", mnemonic.from_private_key(private_key))
    for name in ("created-key", "imported-key"):
        signer = KMSSigner(name, session=session)
        txn = transaction.PaymentTxn(
            signer.address, LocalLedger.suggested_params(), signer.address, 0
        )
        signer.sign_transactions([txn, txn])
    return secrets_of(mnemonic.to_private_key(created.backup_mnemonic)) + secrets_of(private_key)


def assert_clean(capture: Capture, secrets: list[str]) -> None:
    texts = capture.texts()
    assert len(texts) > 50, "DEBUG logging was not captured: the test would prove nothing"
    bodies = [r for r in capture.records if r.name == "botocore.parsers"]
    assert any(REDACTED in r.getMessage() for r in bodies), "no decrypted body was logged"
    for secret in secrets:
        leaking = [t for t in texts if secret in t]
        assert not leaking, f"secret found in {len(leaking)} log record(s)"


def test_debug_logging_never_shows_a_key(session: boto3.Session, debug_everything: Capture) -> None:
    secrets = exercise(session)
    assert_clean(debug_everything, secrets)


def test_redaction_survives_an_application_logging_config(session: boto3.Session) -> None:
    install_redaction()
    capture = Capture()
    # What a Django project's LOGGING typically looks like, applied after import.
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": True,
            "handlers": {"capture": {"()": lambda: capture, "level": "DEBUG"}},
            "loggers": {
                "botocore": {"handlers": ["capture"], "level": "DEBUG", "propagate": False},
                "urllib3": {"handlers": ["capture"], "level": "DEBUG", "propagate": False},
            },
            "root": {"handlers": ["capture"], "level": "DEBUG"},
        }
    )
    try:
        secrets = exercise(session)
        assert_clean(capture, secrets)
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
        for name in ("botocore", "urllib3"):
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True
            logging.getLogger(name).setLevel(logging.NOTSET)


def test_without_the_filter_botocore_would_leak(
    session: boto3.Session, debug_everything: Capture
) -> None:
    """The control: shows the tests above look where the leak would be."""
    manager = AlgorandKMSManager(session=session)  # installs the filter
    for name in ("botocore.endpoint", "botocore.parsers"):
        logging.getLogger(name).removeFilter(_FILTER)
    try:
        private_key, _ = new_account()
        manager.import_existing_key("leaky", mnemonic.from_private_key(private_key))
        session.client("ssm").get_parameter(
            Name=manager.parameter_path("leaky"), WithDecryption=True
        )
    finally:
        install_redaction()
    leaks = {r.name for r in debug_everything.records if private_key in r.getMessage()}
    assert leaks == {"botocore.endpoint", "botocore.parsers"}


def test_redact_handles_json_and_python_reprs() -> None:
    assert (
        redact('{"Name": "/p", "Value": "s3cr\\"et"}') == f'{{"Name": "/p", "Value": "{REDACTED}"}}'
    )
    assert redact("{'Value': 'abc', 'Name': 'x'}") == f"{{'Value': '{REDACTED}', 'Name': 'x'}}"
    assert redact("nothing secret here") == "nothing secret here"
