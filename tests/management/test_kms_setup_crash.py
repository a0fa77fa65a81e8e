"""kms_setup killed (SIGKILL) right after each of its AWS writes, and with standard
output closed or broken: the backup file is complete or absent, never empty, and one
rerun converges (a key that signs, verified by the ledger evaluator, or a clean state).

The command runs as a real process against moto's server; the kill comes from a
test-only sitecustomize (tests/management/crashhook) on the child's PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from algosdk import account, mnemonic, transaction

from confio_kms import KMSSigner
from confio_kms.sandbox import LocalAWS, LocalLedger

from .conftest import ROOT

ALIAS = "confio-testnet-sponsor"
ENVELOPE_WRITES = ["CreateKey", "CreateAlias", "PutParameter", "TagResource"]
NATIVE_WRITES = ["CreateKey", "TagResource", "CreateAlias", "TagResource"]


def run(aws: LocalAWS, *args: str, kill_after: int = 0, log: Path | None = None,
        **popen: Any) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(ROOT),
        **aws.environ(),
        "USE_KMS_SIGNING": "true",
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        # This worktree's code, and the fault hook (imported as sitecustomize).
        "PYTHONPATH": f"{ROOT / 'tests' / 'management' / 'crashhook'}:{ROOT}",
        "CONFIO_TEST_KILL_AFTER_WRITE": str(kill_after),
        "CONFIO_TEST_WRITE_LOG": str(log or ""),
    }
    command = [sys.executable, str(ROOT / "example_project" / "manage.py"), "kms_setup", *args]
    # The mnemonic of an import goes in through standard input (``input=``), never argv.
    options: dict[str, Any] = {"capture_output": True, **popen}
    if "input" not in options:
        options["stdin"] = subprocess.DEVNULL
    return subprocess.run(command, env=env, text=True, timeout=120, **options)


def backup(path: Path) -> dict[str, str] | None:
    """The parsed backup file, None when absent; asserts it is never empty or partial."""
    if not path.exists():
        return None
    lines = path.read_text().splitlines()
    fields = dict(line.split(": ", 1) for line in lines if not line.startswith("#"))
    assert set(fields) == {"alias", "network", "address", "mnemonic"}, fields
    own = account.address_from_private_key(mnemonic.to_private_key(fields["mnemonic"]))
    assert own == fields["address"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    return fields


def keys_state() -> list[dict[str, Any]]:
    """Every key not pending deletion: its tags and aliases."""
    kms = boto3.client("kms")
    aliases: dict[str, list[str]] = {}
    for entry in kms.list_aliases()["Aliases"]:
        if entry.get("TargetKeyId"):
            aliases.setdefault(entry["TargetKeyId"], []).append(entry["AliasName"])
    found = []
    for entry in kms.list_keys()["Keys"]:
        metadata = kms.describe_key(KeyId=entry["KeyId"])["KeyMetadata"]
        if metadata["KeyState"] == "PendingDeletion":
            continue
        tags = kms.list_resource_tags(KeyId=entry["KeyId"])["Tags"]
        found.append(
            {
                "key_id": entry["KeyId"],
                "tags": {t["TagKey"]: t["TagValue"] for t in tags},
                "aliases": aliases.get(entry["KeyId"], []),
                "spec": metadata["KeySpec"],
            }
        )
    return found


def assert_converged(ledger: LocalLedger, address: str | None = None) -> str:
    """One complete key under ALIAS that signs (the ledger accepts it); no orphan key,
    no alias without its key's parameter."""
    (key,) = keys_state()
    assert key["aliases"] == [f"alias/{ALIAS}"] and key["tags"]["CreationState"] == "complete"
    if key["spec"] == "SYMMETRIC_DEFAULT":
        boto3.client("ssm").get_parameter(Name=f"/confio/algorand/{ALIAS}/private-key")
    tagged = key["tags"]["AlgorandAddress"]
    assert address in (None, tagged)
    signer = KMSSigner(ALIAS)
    txn = transaction.PaymentTxn(tagged, ledger.suggested_params(), tagged, 0)
    ledger.fund(tagged, 1_000_000)
    ledger.evaluate([signer.sign_transaction(txn)])
    return str(tagged)


def test_the_writes_counted_are_those_the_kill_tests_cover(
    aws_env: LocalAWS, tmp_path: Path
) -> None:
    envelope, native = tmp_path / "envelope.log", tmp_path / "native.log"
    made = run(aws_env, "--create-new", "--no-input", f"--mnemonic-out={tmp_path}/b", log=envelope)
    assert made.returncode == 0, made.stderr
    made = run(aws_env, "--create-new", "--native", "--alias", "n", log=native)
    assert made.returncode == 0, made.stderr
    assert envelope.read_text().split() == ENVELOPE_WRITES
    assert native.read_text().split() == NATIVE_WRITES


@pytest.mark.parametrize("kill_after", range(1, len(ENVELOPE_WRITES) + 1))
def test_envelope_killed_after_each_write_keeps_its_backup_and_the_rerun_finishes(
    aws_env: LocalAWS, tmp_path: Path, ledger: LocalLedger, kill_after: int
) -> None:
    path = tmp_path / "backup.txt"
    args = ("--create-new", "--no-input", f"--mnemonic-out={path}")

    killed = run(aws_env, *args, kill_after=kill_after)

    assert killed.returncode == -signal.SIGKILL
    fields = backup(path)
    assert fields is not None  # written whole before the first AWS write
    for key in keys_state():
        assert key["tags"]["AlgorandAddress"] == fields["address"]
    rerun = run(aws_env, *args, "--json")
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout)
    assert result["address"] == fields["address"] and backup(path) == fields
    said = "already complete" if kill_after == len(ENVELOPE_WRITES) else "completed: "
    assert said in rerun.stderr
    assert result["recovery"]["completed"] or result["recovery"]["already_complete"]
    assert fields["mnemonic"] not in rerun.stdout + rerun.stderr
    assert_converged(ledger, fields["address"])


@pytest.mark.parametrize("kill_after", range(1, len(ENVELOPE_WRITES)))
def test_a_rerun_without_the_backup_cleans_up_and_creates_anew(
    aws_env: LocalAWS, tmp_path: Path, ledger: LocalLedger, kill_after: int
) -> None:
    first = tmp_path / "first.txt"
    killed = run(aws_env, "--create-new", "--no-input", f"--mnemonic-out={first}",
                 kill_after=kill_after)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL
    old = backup(first)
    assert old is not None

    rerun = run(aws_env, "--create-new", "--no-input", "--json", f"--mnemonic-out={tmp_path}/2")

    assert rerun.returncode == 0, rerun.stderr
    assert "cleaned up: envelope key" in rerun.stderr
    assert len(json.loads(rerun.stdout)["recovery"]["cleaned_up"]) == 1
    new = backup(tmp_path / "2")
    assert new is not None and new["address"] != old["address"]
    assert_converged(ledger, new["address"])
    assert backup(first) == old  # never deleted: the old key is only pending deletion


@pytest.mark.parametrize("kill_after", range(1, len(NATIVE_WRITES) + 1))
def test_native_killed_after_each_write_converges_on_rerun(
    aws_env: LocalAWS, ledger: LocalLedger, kill_after: int
) -> None:
    killed = run(aws_env, "--create-new", "--native", kill_after=kill_after)
    assert killed.returncode == -signal.SIGKILL

    rerun = run(aws_env, "--create-new", "--native", "--json")

    if kill_after == len(NATIVE_WRITES):  # complete already: nothing to finish
        assert rerun.returncode == 1 and "already exists" in rerun.stderr
    else:
        assert rerun.returncode == 0, rerun.stderr
        assert "completed: native key" in rerun.stderr
        assert json.loads(rerun.stdout)["recovery"]["completed"]
    assert_converged(ledger)


def test_closed_stdout_keeps_the_backup_and_is_one_line(
    aws_env: LocalAWS, tmp_path: Path, ledger: LocalLedger
) -> None:
    path = tmp_path / "backup.txt"
    result = run(aws_env, "--create-new", "--no-input", "-v", "0", f"--mnemonic-out={path}",
                 capture_output=False, stdout=None, stderr=subprocess.PIPE,
                 preexec_fn=lambda: os.close(1))  # fmt: skip
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "Could not print the result" in line and str(path) in line and "Traceback" not in line
    fields = backup(path)
    assert fields is not None
    assert_converged(ledger, fields["address"])


def test_broken_pipe_keeps_the_backup_and_is_one_line(
    aws_env: LocalAWS, tmp_path: Path, ledger: LocalLedger
) -> None:
    path = tmp_path / "backup.txt"
    reader, writer = os.pipe()
    os.close(reader)  # nobody will read the result: the first write is a broken pipe
    result = run(aws_env, "--create-new", "--no-input", "-v", "0", f"--mnemonic-out={path}",
                 capture_output=False, stdout=writer, stderr=subprocess.PIPE)  # fmt: skip
    os.close(writer)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "Could not print the result" in line and "Broken pipe" in line
    fields = backup(path)
    assert fields is not None
    assert_converged(ledger, fields["address"])


def new_mnemonic() -> tuple[str, str]:
    private_key, address = account.generate_account()
    return mnemonic.from_private_key(private_key), address


def test_an_import_makes_the_writes_the_kill_tests_cover(aws_env: LocalAWS, tmp_path: Path) -> None:
    log = tmp_path / "import.log"
    phrase, _ = new_mnemonic()
    made = run(aws_env, "--import-existing", "--no-input", log=log, input=phrase)
    assert made.returncode == 0, made.stderr
    assert log.read_text().split() == ENVELOPE_WRITES


@pytest.mark.parametrize("kill_after", range(1, len(ENVELOPE_WRITES) + 1))
def test_an_import_killed_after_each_write_is_finished_by_its_rerun(
    aws_env: LocalAWS, ledger: LocalLedger, kill_after: int
) -> None:
    phrase, address = new_mnemonic()
    killed = run(aws_env, "--import-existing", "--no-input", kill_after=kill_after, input=phrase)
    assert killed.returncode == -signal.SIGKILL

    rerun = run(aws_env, "--import-existing", "--no-input", "--json", input=phrase)

    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout)
    assert result["address"] == address
    if kill_after == len(ENVELOPE_WRITES):  # complete already: nothing to finish
        assert f"already complete: alias/{ALIAS} holds key " in rerun.stderr
        assert result["recovery"] == {
            "cleaned_up": [], "completed": [], "already_complete": True,
        }  # fmt: skip
    else:
        assert "completed: envelope key " in rerun.stderr
        assert len(result["recovery"]["completed"]) == 1
        assert result["recovery"]["cleaned_up"] == []
    assert result["also_under"] == []
    assert phrase not in rerun.stdout + rerun.stderr
    assert_converged(ledger, address)


@pytest.mark.parametrize("kill_after", range(1, len(ENVELOPE_WRITES)))
def test_an_import_of_another_account_cleans_up_what_the_killed_one_left(
    aws_env: LocalAWS, ledger: LocalLedger, kill_after: int
) -> None:
    first, _ = new_mnemonic()
    killed = run(aws_env, "--import-existing", "--no-input", kill_after=kill_after, input=first)
    assert killed.returncode == -signal.SIGKILL
    phrase, address = new_mnemonic()

    rerun = run(aws_env, "--import-existing", "--no-input", "--json", input=phrase)

    assert rerun.returncode == 0, rerun.stderr
    assert "cleaned up: envelope key " in rerun.stderr
    result = json.loads(rerun.stdout)
    assert len(result["recovery"]["cleaned_up"]) == 1 and result["recovery"]["completed"] == []
    assert result["address"] == address
    assert_converged(ledger, address)


def test_a_mainnet_import_rerun_names_what_it_finishes_in_its_confirmation(
    aws_env: LocalAWS,
) -> None:
    phrase, address = new_mnemonic()
    alias = "confio-mainnet-sponsor"
    args = ("--import-existing", "--no-input", "--alias", alias)
    killed = run(aws_env, *args, "--yes", kill_after=2, input=phrase)  # after CreateAlias
    assert killed.returncode == -signal.SIGKILL
    before = keys_state()

    refused = run(aws_env, *args, input=phrase)

    assert refused.returncode == 1
    assert (
        f"Finish the interrupted creation of envelope key {before[0]['key_id']} made for "
        f"alias/{alias}, behind alias/{alias} (a stuck alias), its SSM parameter missing, on "
        "mainnet needs confirmation; nothing was done."
    ) in refused.stderr
    assert keys_state() == before
    done = run(aws_env, *args, "--yes", input=phrase)
    assert done.returncode == 0, done.stderr
    assert "completed: envelope key " in done.stderr
    (key,) = keys_state()
    assert key["tags"]["CreationState"] == "complete" and key["tags"]["AlgorandAddress"] == address
