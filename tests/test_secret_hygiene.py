"""Secret hygiene, proven: every code path runs with a sentinel key and mnemonic,
with DEBUG logging on for every logger (botocore and urllib3 included) and the
commands at verbosity 3; the sentinel never appears in a log record, stdout,
stderr, exception text or the repr of anything returned."""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from algosdk import account, mnemonic, transaction
from django.core.management import CommandError, call_command
from django.test import override_settings
from nacl.signing import SigningKey

from confio_kms import AlgorandKMSManager, KMSSigner, checks
from confio_kms.common import exceptions
from confio_kms.core import cache
from confio_kms.sandbox import LedgerChain, LocalLedger
from confio_kms.sponsor import AlgorandSponsorService

from .helpers import inject_error
from .test_redaction import Capture

SEED = bytes(range(7, 39))  # the sentinel account's seed
SENTINEL_KEY = base64.b64encode(SEED + bytes(SigningKey(SEED).verify_key)).decode()
SENTINEL_MNEMONIC = mnemonic.from_private_key(SENTINEL_KEY)
SENTINEL_ADDRESS = account.address_from_private_key(SENTINEL_KEY)
FORMS = [SENTINEL_KEY, SENTINEL_MNEMONIC, SEED.hex(), base64.b64encode(SEED).decode()]


@pytest.fixture
def scanned(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Collects every text produced; at the end, asserts no form of the sentinel is in it."""
    texts: list[str] = []
    capture = Capture()
    root = logging.getLogger()
    levels = {n: logging.getLogger(n).level for n in ("", "botocore", "urllib3", "boto3")}
    root.addHandler(capture)
    for name in levels:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield texts
    root.removeHandler(capture)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    texts.extend(capture.texts())
    assert len(capture.records) > 100, "DEBUG logging was not captured"
    assert any(r.name.startswith("urllib3") for r in capture.records)
    joined = "\n".join(texts)
    for form in FORMS:
        assert form not in joined, "a form of the sentinel key leaked"


def run(texts: list[str], action: Callable[[], Any]) -> Any:
    """Run ``action``; record the repr of its result, or the text of its error."""
    try:
        result = action()
    except Exception as error:
        texts.extend([str(error), repr(error), str(error.__cause__), str(error.__context__)])
        return error
    texts.append(repr(result))
    texts.append(str(result))
    return result


def command(texts: list[str], *args: str, **kwargs: Any) -> None:
    out, err = io.StringIO(), io.StringIO()
    run(texts, lambda: call_command(*args, verbosity=3, stdout=out, stderr=err, **kwargs))
    texts.extend([out.getvalue(), err.getvalue()])


@override_settings(CONFIO_SANDBOX=True)
def test_no_path_leaks_the_sentinel(
    scanned: list[str], session: boto3.Session, ledger: LocalLedger, tmp_path: Path
) -> None:
    texts = scanned
    manager = AlgorandKMSManager(session=session)
    texts.append(repr(manager))

    # Import (library and command), create both kinds, list.
    run(texts, lambda: manager.import_existing_key("sentinel", SENTINEL_MNEMONIC))
    stored = boto3.client("ssm").get_parameter(
        Name="/confio/algorand/sentinel/private-key", WithDecryption=True
    )["Parameter"]["Value"]
    assert stored == SENTINEL_KEY  # the sentinel really went through the code paths
    command(texts, "kms_setup", "--import-existing", "--alias", "piped",
            stdin=io.StringIO(SENTINEL_MNEMONIC))  # fmt: skip
    run(texts, lambda: manager.create_algorand_key("fresh"))
    run(texts, lambda: manager.create_algorand_key("native", native=True))
    command(texts, "kms_setup", "--create-new", "--alias", "filed",
            f"--mnemonic-out={tmp_path}/m")  # fmt: skip
    run(texts, manager.list_keys)
    command(texts, "kms_list", "--json")

    # Sign with both kinds, through the library and the commands.
    sp = ledger.suggested_params()
    for name in ("sentinel", "native"):
        signer = KMSSigner(name, session=session)
        txns = [transaction.PaymentTxn(signer.address, sp, signer.address, i) for i in range(3)]
        run(texts, lambda s=signer, t=txns: s.sign_transactions(t))
        texts.append(repr(signer))
        command(texts, "kms_test_sign", "--alias", name, "--submit")

    # Failures: bad mnemonics, a duplicate, a corrupt and a swapped parameter, denied writes.
    words = SENTINEL_MNEMONIC.split()
    for bad in (" ".join(words[:24]), " ".join([*words[:24], words[0]]), SENTINEL_MNEMONIC + " x"):
        run(texts, lambda b=bad: manager.import_existing_key("bad", b))
        command(texts, "kms_setup", "--import-existing", "--alias", "bad", stdin=io.StringIO(bad))
    run(texts, lambda: manager.import_existing_key("sentinel", SENTINEL_MNEMONIC))
    denied = boto3.Session()
    inject_error(denied, "ssm", "PutParameter", "AccessDeniedException", "no")
    run(texts, lambda: AlgorandKMSManager(session=denied).import_existing_key(
        "denied", SENTINEL_MNEMONIC))  # fmt: skip
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/confio/algorand/fresh/private-key", Value=SENTINEL_KEY,
                      Type="SecureString", Overwrite=True)  # fmt: skip
    fresh = KMSSigner("fresh", session=session)
    err = run(texts, lambda: fresh.sign_transaction(
        transaction.PaymentTxn(fresh.address, sp, fresh.address, 0)))  # fmt: skip
    assert isinstance(err, exceptions.AddressMismatchError)
    ssm.put_parameter(Name="/confio/algorand/fresh/private-key", Value=SENTINEL_KEY[:-4],
                      Type="SecureString", Overwrite=True)  # fmt: skip
    cache.clear_process_cache()  # the mismatch is remembered for 1 s: not what is tested
    err = run(texts, lambda: fresh.sign_transaction(
        transaction.PaymentTxn(fresh.address, sp, fresh.address, 0)))  # fmt: skip
    assert isinstance(err, exceptions.KeyMaterialError)

    # Rotation (library and command) and the sponsor service in both modes.
    ledger.fund(SENTINEL_ADDRESS, 1_000_000)
    run(texts, lambda: manager.rotate_key("sentinel", LedgerChain(ledger), sign_only=True))
    command(texts, "kms_rotate", "--alias", "piped", "--submit", f"--mnemonic-out={tmp_path}/r")
    with override_settings(USE_KMS_SIGNING=False, ALGORAND_ADMIN_MNEMONIC=SENTINEL_MNEMONIC):
        service = run(texts, AlgorandSponsorService)
        run(texts, lambda: service.sign_transaction(
            transaction.PaymentTxn(SENTINEL_ADDRESS, sp, SENTINEL_ADDRESS, 0)))  # fmt: skip
    with override_settings(USE_KMS_SIGNING=True, ALGORAND_ADMIN_MNEMONIC=SENTINEL_MNEMONIC):
        run(texts, checks.check_settings)
    assert isinstance(run(texts, lambda: call_command("kms_setup")), CommandError)


def frame_locals(error: BaseException) -> str:
    """Every local of every frame an error reporter would record, for the whole chain."""
    texts = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            if "/tests/" in tb.tb_frame.f_code.co_filename:  # the test's own frames
                tb = tb.tb_next
                continue
            for name, value in tb.tb_frame.f_locals.items():
                if name != "private_key":  # error reporters scrub this name by default
                    texts.append(f"{name}={value!r}")
            tb = tb.tb_next
        current = current.__cause__ or current.__context__
    return "\n".join(texts)


def test_failures_leave_no_secret_in_traceback_frames(session: boto3.Session) -> None:
    denied = boto3.Session()
    inject_error(denied, "ssm", "PutParameter", "AccessDeniedException", "no")
    with pytest.raises(exceptions.ProvisioningError) as write_failed:
        AlgorandKMSManager(session=denied).import_existing_key("denied", SENTINEL_MNEMONIC)

    AlgorandKMSManager(session=session).create_algorand_key("corrupt")
    boto3.client("ssm").put_parameter(
        Name="/confio/algorand/corrupt/private-key",
        Value=SENTINEL_KEY[:-4],  # holds the sentinel's seed, but is not a whole key
        Type="SecureString",
        Overwrite=True,
    )
    signer = KMSSigner("corrupt", session=session)
    with pytest.raises(exceptions.KeyMaterialError) as read_failed:
        signer.sign_transaction(
            transaction.PaymentTxn(
                signer.address, LocalLedger.suggested_params(), signer.address, 0
            )
        )

    for raised in (write_failed.value, read_failed.value):
        recorded = frame_locals(raised)
        assert len(recorded) > 200  # the frames were really walked
        for form in (*FORMS, SENTINEL_KEY[:-4]):
            assert form not in recorded


def test_a_parameter_tag_outside_the_alias_is_refused(
    manager: AlgorandKMSManager, session: boto3.Session
) -> None:
    key_id, _, _ = manager.create_algorand_key("own")
    manager.create_algorand_key("victim")
    boto3.client("kms").tag_resource(
        KeyId=key_id,
        Tags=[{"TagKey": "SSMParameter", "TagValue": "/confio/algorand/victim/private-key"}],
    )
    signer = KMSSigner("own", session=session)
    with pytest.raises(exceptions.KeyMaterialError, match="outside"):
        signer.sign_transaction(
            transaction.PaymentTxn(
                signer.address, LocalLedger.suggested_params(), signer.address, 0
            )
        )
