"""The sandbox tools and the README's main job, run as a user would."""

from __future__ import annotations

import base64
import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from algosdk import account, encoding, transaction
from algosdk.atomic_transaction_composer import (
    AccountTransactionSigner,
    sign_transaction_with_signer,
)
from botocore.exceptions import ClientError
from nacl.signing import VerifyKey

from benchmarks.endpoint import local_aws
from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.common.exceptions import AlgodError
from confio_kms.core.signing import signing_bytes
from confio_kms.sandbox import SANDBOX_REGION, LedgerChain, LocalLedger

from .helpers import new_account

ROOT = Path(__file__).resolve().parents[1]
SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")  # Ed25519 SubjectPublicKeyInfo


@contextlib.contextmanager
def fresh_local_aws(*, ed25519: bool = True) -> Iterator[tuple[str, boto3.Session]]:
    """``LocalAWS(ed25519=...)`` started in a new process (the benchmarks' way): nothing
    this test process patched (its own endpoint) is involved. Yields the server's URL
    and a session with dummy credentials."""
    with local_aws(ed25519=ed25519) as endpoint:
        assert endpoint.url.startswith("http://127.0.0.1:")
        yield (
            endpoint.url,
            boto3.Session(
                aws_access_key_id="sandbox",
                aws_secret_access_key="sandbox",
                region_name=SANDBOX_REGION,
            ),
        )


def test_native_key_on_a_fresh_sandbox_endpoint_is_real_ed25519_and_the_ledger_agrees() -> None:
    with fresh_local_aws() as (url, session):
        kms = session.client("kms", endpoint_url=url)
        manager = AlgorandKMSManager(SANDBOX_REGION, endpoint_url=url, session=session)
        created = manager.create_algorand_key("confio-testnet-native", native=True)
        assert (created.kind, created.backup_mnemonic) == ("native", None)
        metadata = kms.describe_key(KeyId="alias/confio-testnet-native")["KeyMetadata"]
        assert (metadata["KeySpec"], metadata["KeyUsage"]) == (
            "ECC_NIST_EDWARDS25519",
            "SIGN_VERIFY",
        )
        spki = kms.get_public_key(KeyId=created.key_id)["PublicKey"]
        assert len(spki) == 44 and spki.startswith(SPKI_PREFIX)
        public = spki[len(SPKI_PREFIX) :]
        assert encoding.encode_address(public) == created.address
        assert boto3.client("kms").list_keys()["Keys"] == []  # not the suite's endpoint

        ledger = LocalLedger()
        _, receiver = new_account()
        for address in (created.address, receiver):
            ledger.fund(address, 1_000_000)
        txn = transaction.PaymentTxn(
            created.address, ledger.suggested_params(), receiver, 250_000, note=b"sandbox"
        )
        signer = KMSSigner(
            "confio-testnet-native", SANDBOX_REGION, endpoint_url=url, session=session
        )
        signed = signer.sign_transaction(txn)
        signature = base64.b64decode(signed.signature)
        # Checked by PyNaCl with the key GetPublicKey gave, and by the endpoint's Verify.
        VerifyKey(public).verify(signing_bytes(txn), signature)
        assert kms.verify(
            KeyId=created.key_id,
            Message=signing_bytes(txn),
            MessageType="RAW",
            Signature=signature,
            SigningAlgorithm="ED25519_SHA_512",
        )["SignatureValid"]
        # Ed25519 is deterministic: the same key and transaction, the same bytes.
        assert signer.sign_transaction(txn).signature == signed.signature

    tampered = transaction.SignedTransaction(
        txn, base64.b64encode(bytes([signature[0] ^ 1]) + signature[1:]).decode()
    )
    with pytest.raises(Exception, match="signature didn't pass verification"):
        ledger.evaluate([tampered])
    assert ledger.balance(receiver) == 1_000_000
    ledger.evaluate([signed])
    assert ledger.balance(receiver) == 1_250_000


def test_without_the_stand_in_moto_has_no_ed25519_keys() -> None:
    # What the benchmark's quota run serves (LocalAWS(ed25519=False)): moto as it
    # ships, which is why LocalAWS installs the stand-in by default.
    with fresh_local_aws(ed25519=False) as (url, session):
        kms = session.client("kms", endpoint_url=url)
        with pytest.raises(ClientError) as raised:
            kms.create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")
        assert raised.value.response["Error"]["Code"] == "ValidationException"


def test_main_job_runs_end_to_end_on_the_sandbox() -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT)}  # no AWS settings at all
    out = subprocess.run(
        [sys.executable, str(ROOT / "example_project" / "run_sandbox.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "BACKUP MNEMONIC" not in text  # it went to the 0600 file
    # Each step's command line and its output.
    steps = [part.split("\n", 1) for part in text.split("$ manage.py ")[1:]]
    assert [command.split()[0] for command, _ in steps] == [
        "migrate",
        "kms_setup",
        "kms_list",
        "kms_test_sign",
        "kms_setup",
        "kms_test_sign",
        "kms_test_sign",
        "kms_pause",
        "kms_test_sign",
        "kms_resume",
        "kms_test_sign",
        "kms_sponsor_status",
        "kms_rotate",
        "kms_list",
        "check",
    ]
    outputs = [output for _, output in steps]
    (_, setup, listed, signed, native_setup, native_signed, limited, paused, refused,
     resumed, signed_again, status, rotated, relisted, checked) = outputs  # fmt: skip
    accepted = "ledger:  accepted by Algorand's ledger evaluator (sandbox)"

    # The envelope account: created, listed, signed for and accepted.
    address = setup.split("address: ")[1].split()[0]
    assert "kind:    envelope" in setup
    assert address in listed and address in signed and accepted in signed

    # The native key: created in the endpoint's KMS, no mnemonic, accepted by the ledger.
    assert steps[4][0].split() == [
        "kms_setup",
        "--create-new",
        "--native",
        "--alias",
        "confio-testnet-native",
        "--no-input",
    ]
    native = native_setup.split("address: ")[1].split()[0]
    assert native != address
    assert "kind:    native (Ed25519 inside KMS)" in native_setup
    assert "No backup mnemonic" in native_setup
    assert "alias:   alias/confio-testnet-native" in native_signed
    assert f"address: {native}" in native_signed and accepted in native_signed

    # Its limit of one call an hour refuses the second, typed and on one line.
    assert limited.startswith(
        "refused (exit status 1): CommandError: alias/confio-testnet-native refused: calls "
        "would reach 2 of its limit 1 per 3600 s window (used 1, this call 1)"
    )
    assert len(limited.splitlines()) == 1
    # Paused with a reason: the next call is refused with it; resumed: it signs again.
    assert paused == "alias/confio-testnet-sponsor: paused.\n"
    assert refused == (
        "refused (exit status 1): CommandError: alias/confio-testnet-sponsor is paused: "
        "sandbox drill; nothing was signed. Fix: Resume it when it is safe: manage.py "
        "kms_resume confio-testnet-sponsor.\n"
    )
    assert resumed == "alias/confio-testnet-sponsor: resumed.\n"
    assert address in signed_again and accepted in signed_again
    # Two self-payments at the minimum fee counted against the sponsor's fee limit.
    assert f"sponsor:      alias/confio-testnet-sponsor {address} (testnet)" in status
    assert "balance:      10,000,000 microalgos" in status
    assert "limits:       fees: 2,000 / 1,000,000 per 3600 s" in status

    # The envelope account rotated to a new native key: same address, rekey confirmed.
    signer = rotated.split("signer:  ")[1].split()[0]
    assert signer not in (address, native)
    assert f"account: {address} (unchanged)" in rotated
    assert "(native)" in rotated.split("new key: ")[1].splitlines()[0]
    assert f"confirmed; alias/confio-testnet-sponsor now signs for {address}" in rotated
    rows = {line.split()[0]: line.split() for line in relisted.splitlines()[1:]}
    assert rows["confio-testnet-sponsor"][1:5] == [address, signer, "testnet", "native"]
    assert rows["confio-testnet-native"][1:5] == [native, "self", "testnet", "native"]

    assert "System check identified no issues" in checked


def test_ledger_rejects_what_it_should() -> None:
    ledger = LocalLedger()
    key, address = account.generate_account()
    ledger.fund(address, 1_000_000)
    overdraft = transaction.PaymentTxn(address, ledger.suggested_params(), address, 2_000_000)

    with pytest.raises(Exception, match="overspend"):
        ledger.evaluate([sign_transaction_with_signer(overdraft, AccountTransactionSigner(key))])


def test_ledger_chain_rejection_is_a_typed_error() -> None:
    ledger = LocalLedger()
    key, address = account.generate_account()
    ledger.fund(address, 1_000_000)
    overdraft = transaction.PaymentTxn(address, ledger.suggested_params(), address, 2_000_000)
    chain = LedgerChain(ledger)

    with pytest.raises(AlgodError, match="sandbox ledger rejected") as raised:
        chain.submit(sign_transaction_with_signer(overdraft, AccountTransactionSigner(key)))
    assert "overspend" in str(raised.value)
    assert chain.current_round() == 1  # nothing was applied
