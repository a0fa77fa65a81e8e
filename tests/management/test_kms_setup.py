"""kms_setup: create (terminal or file backup), import (hidden or piped), list,
and refusals; the mnemonic only ever appears in the one deliberate display."""

from __future__ import annotations

import io
import json
import logging
import os
import stat
from pathlib import Path

import pytest
from algosdk import account, mnemonic
from django.core.management import CommandError, call_command

from confio_kms import AlgorandKMSManager

from ..helpers import key_count, new_account
from .conftest import Terminal

ALIAS = "confio-testnet-sponsor"


def backup_fields(path: Path) -> dict[str, str]:
    """The ``name: value`` lines of a kms_setup backup file."""
    lines = path.read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if not line.startswith("#"))


def test_create_at_a_terminal_shows_the_mnemonic_once_and_asks_to_confirm(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    answers = iter(["later", "saved"])
    prompts: list[str] = []
    monkeypatch.setattr("builtins.input", lambda p: prompts.append(p) or next(answers))
    out, err = Terminal(), io.StringIO()
    caplog.set_level(logging.DEBUG)

    call_command("kms_setup", "--create-new", "--description", "ops test", stdout=out, stderr=err)

    text = out.getvalue()
    (line,) = [ln for ln in text.splitlines() if len(ln.split()) == 25]
    phrase = line.strip()
    address = account.address_from_private_key(mnemonic.to_private_key(phrase))
    assert f"address: {address}" in text and f"alias:   alias/{ALIAS}" in text
    assert text.count(phrase) == 1
    assert len(prompts) == 2 and "Confirmed" in text
    assert phrase not in err.getvalue() + caplog.text and len(caplog.records) > 10
    assert mnemonic.to_private_key(phrase) not in text + caplog.text
    assert AlgorandKMSManager().get_address(ALIAS) == address


def test_create_without_a_terminal_needs_a_backup_file() -> None:
    with pytest.raises(CommandError, match="--mnemonic-out FILE"):
        call_command("kms_setup", "--create-new", "--no-input", stdout=io.StringIO())
    assert key_count() == 0


def test_create_writes_the_mnemonic_to_a_new_private_file(tmp_path: Path) -> None:
    backup = tmp_path / "backup.txt"
    out = io.StringIO()

    call_command(
        "kms_setup", "--create-new", "--no-input", "--network", "mainnet", "--yes",
        "--mnemonic-out", str(backup), stdout=out,
    )  # fmt: skip

    fields = backup_fields(backup)
    phrase = fields["mnemonic"]
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    assert (fields["alias"], fields["network"]) == ("confio-mainnet-sponsor", "mainnet")
    assert phrase not in out.getvalue()
    assert "alias/confio-mainnet-sponsor" in out.getvalue()  # the network's default alias
    address = account.address_from_private_key(mnemonic.to_private_key(phrase))
    (record,) = AlgorandKMSManager().list_keys()
    assert (
        (record.address, record.network) == (address, "mainnet") == (fields["address"], "mainnet")
    )


def test_existing_backup_file_is_never_overwritten(tmp_path: Path) -> None:
    backup = tmp_path / "backup.txt"
    backup.write_text("an older backup\n")
    with pytest.raises(CommandError, match="already exists; nothing was created"):
        call_command("kms_setup", "--create-new", "--mnemonic-out", str(backup))
    assert backup.read_text() == "an older backup\n" and key_count() == 0


def test_failed_create_removes_the_empty_backup_file(tmp_path: Path) -> None:
    AlgorandKMSManager().create_algorand_key(ALIAS)
    backup = tmp_path / "backup.txt"
    with pytest.raises(CommandError, match="already exists; nothing was changed"):
        call_command("kms_setup", "--create-new", "--mnemonic-out", str(backup))
    assert not backup.exists()


def test_import_from_piped_stdin_never_echoes(caplog: pytest.LogCaptureFixture) -> None:
    private_key, address = new_account()
    phrase = mnemonic.from_private_key(private_key)
    out, err = io.StringIO(), io.StringIO()
    caplog.set_level(logging.DEBUG)

    call_command(
        "kms_setup", "--import-existing", "--alias", "imported",
        stdin=io.StringIO(phrase + "\n"), stdout=out, stderr=err,
    )  # fmt: skip

    assert f"address: {address}" in out.getvalue()
    for text in (out.getvalue(), err.getvalue(), caplog.text):
        assert phrase not in text and private_key not in text
    assert len(caplog.records) > 10  # botocore's DEBUG logging was on


def test_import_at_a_terminal_reads_hidden_input(monkeypatch: pytest.MonkeyPatch) -> None:
    private_key, address = new_account()
    asked: list[str] = []
    monkeypatch.setattr(
        "getpass.getpass",
        lambda prompt: asked.append(prompt) or mnemonic.from_private_key(private_key),
    )
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("visible input used"))
    out = Terminal()

    call_command("kms_setup", "--import-existing", stdin=Terminal(), stdout=out)

    assert asked == ["25-word mnemonic (input hidden): "]
    assert f"address: {address}" in out.getvalue()
    assert mnemonic.from_private_key(private_key) not in out.getvalue()


def test_bad_mnemonic_is_refused_before_any_aws_call() -> None:
    words = mnemonic.from_private_key(new_account()[0]).split()
    with pytest.raises(CommandError, match="has 24") as raised:
        call_command("kms_setup", "--import-existing", stdin=io.StringIO(" ".join(words[:24])))
    assert str(raised.value) == (  # fixed text: nothing of the phrase
        "An Algorand mnemonic has 25 words; this one has 24. "
        "Fix: Paste the whole backup phrase, words separated by spaces."
    )
    assert key_count() == 0


@pytest.mark.parametrize("command", [["kms_setup", "--list"], ["kms_list"]])
def test_list_as_table_and_json(command: list[str]) -> None:
    created = AlgorandKMSManager().create_algorand_key(ALIAS, network="testnet")
    table, as_json = io.StringIO(), io.StringIO()

    call_command(*command, stdout=table)
    call_command(*command, "--json", stdout=as_json)

    header, row = table.getvalue().splitlines()
    assert header.split() == [
        "NAME", "ADDRESS", "AUTHORIZED_BY", "NETWORK", "KIND", "KEY_STATE", "CREATED",
    ]  # fmt: skip
    assert row.split()[:6] == [ALIAS, created.address, "self", "testnet", "envelope", "Enabled"]
    (parsed,) = json.loads(as_json.getvalue())
    assert parsed["address"] == created.address and parsed["key_id"] == created.key_id
    assert parsed["kind"] == parsed["mode"] == "envelope" and parsed["created"].startswith("20")
    # Real JSON types: a boolean, and null for "signs for itself".
    assert parsed["managed_by_confio_kms"] is True and parsed["authorized_by"] is None


def test_empty_list() -> None:
    out = io.StringIO()
    call_command("kms_list", stdout=out)
    assert "No Algorand keys" in out.getvalue()


def test_create_native_needs_no_backup_and_says_so() -> None:
    out = io.StringIO()  # not a terminal: fine, there is nothing secret to show

    call_command("kms_setup", "--create-new", "--native", "--alias", "nat", stdout=out)

    text = out.getvalue()
    assert "kind:    native" in text and "No backup mnemonic" in text and "SSM:" not in text
    (record,) = AlgorandKMSManager().list_keys()
    assert (record.name, record.kind) == ("nat", "native")
    assert f"address: {record.address}" in text
    listed = io.StringIO()
    call_command("kms_list", stdout=listed)
    assert listed.getvalue().splitlines()[1].split()[4] == "native"


def test_native_with_mnemonic_out_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="native key has no mnemonic"):
        call_command("kms_setup", "--create-new", "--native", f"--mnemonic-out={tmp_path}/m")
    assert key_count() == 0 and not (tmp_path / "m").exists()


@pytest.mark.parametrize("flag", ["--native", "--mnemonic-out=never-written"])
def test_import_refuses_flags_that_do_not_apply(flag: str, tmp_path: Path) -> None:
    phrase = mnemonic.from_private_key(new_account()[0])
    os.chdir(tmp_path)
    with pytest.raises(CommandError, match="does not apply to --import-existing") as raised:
        call_command("kms_setup", "--import-existing", flag, stdin=io.StringIO(phrase))
    name = flag.split("=")[0]
    assert str(raised.value) == (  # fixed text: nothing of the phrase
        f"{name} does not apply to --import-existing (an imported key is an envelope key, "
        "and its mnemonic is already yours); nothing was imported. "
        f"Fix: drop {name}."
    )
    assert key_count() == 0 and not (tmp_path / "never-written").exists()


def test_a_network_without_an_alias_setting_needs_an_alias() -> None:
    with pytest.raises(CommandError, match="pass --alias NAME for the localnet key"):
        call_command("kms_setup", "--create-new", "--network", "localnet", "--no-input")
    assert key_count() == 0


# --- mainnet confirmation --------------------------------------------------------------


def test_mainnet_create_without_a_terminal_needs_yes(tmp_path: Path) -> None:
    backup = tmp_path / "backup.txt"
    with pytest.raises(CommandError, match=r"needs confirmation; nothing was done.*--yes"):
        call_command(
            "kms_setup", "--create-new", "--no-input", "--network", "mainnet",
            "--mnemonic-out", str(backup), stdout=io.StringIO(), stderr=io.StringIO(),
        )  # fmt: skip
    assert key_count() == 0 and not backup.exists()


@pytest.mark.parametrize(("typed", "created"), [("confio-mainnet-sponsor", 1), ("yes", 0)])
def test_mainnet_create_at_a_terminal_needs_the_alias_typed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, typed: str, created: int
) -> None:
    monkeypatch.setattr("sys.stdin", Terminal(f"{typed}\n"))
    out, err = io.StringIO(), io.StringIO()
    run = lambda: call_command(  # noqa: E731
        "kms_setup", "--create-new", "--network", "mainnet", "--json",
        "--mnemonic-out", str(tmp_path / "backup.txt"), stdout=out, stderr=err,
    )  # fmt: skip

    if created:
        run()
        assert json.loads(out.getvalue())["network"] == "mainnet"  # stdout holds JSON only
    else:
        with pytest.raises(CommandError, match="Not confirmed"):
            run()

    # The question is asked on stderr: stdout is the result's.
    assert "Type the alias (confio-mainnet-sponsor) to go on: " in err.getvalue()
    assert "on mainnet" in err.getvalue() and "billed monthly" in err.getvalue()
    assert key_count() == created


def test_mainnet_create_checks_the_backup_file_before_asking(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    backup = tmp_path / "backup.txt"
    backup.write_text("an older backup\n")
    monkeypatch.setattr("sys.stdin", Terminal("confio-mainnet-sponsor\n"))
    err = io.StringIO()
    with pytest.raises(CommandError, match="already exists; nothing was created"):
        call_command(
            "kms_setup", "--create-new", "--network", "mainnet",
            "--mnemonic-out", str(backup), stdout=io.StringIO(), stderr=err,
        )  # fmt: skip
    assert "Type the alias" not in err.getvalue() and key_count() == 0


class Unread(Terminal):
    def readline(self, *args: object) -> str:
        raise AssertionError("the command read standard input")


def test_testnet_create_asks_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", Unread())
    call_command(
        "kms_setup", "--create-new", "--mnemonic-out", str(tmp_path / "b"), stdout=io.StringIO()
    )
    assert key_count() == 1


# --- --json, progress ----------------------------------------------------------------------


def test_create_json_has_real_types_and_no_mnemonic(tmp_path: Path) -> None:
    backup = tmp_path / "backup.txt"
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "kms_setup", "--create-new", "--json", "--mnemonic-out", str(backup),
        stdout=out, stderr=err,
    )  # fmt: skip

    result = json.loads(out.getvalue())  # stdout is the JSON document alone
    phrase = backup_fields(backup)["mnemonic"]
    assert result["address"] == account.address_from_private_key(mnemonic.to_private_key(phrase))
    assert result["kind"] == result["mode"] == "envelope" and result["deletion_needs_mfa"] is False
    assert result["ssm_parameter"] == f"/confio/algorand/{ALIAS}/private-key"
    assert phrase not in out.getvalue() + err.getvalue()
    assert "Backup mnemonic written to" in err.getvalue()


def test_create_json_needs_a_backup_file_first() -> None:
    with pytest.raises(CommandError, match=r"With --json.*--mnemonic-out FILE"):
        call_command("kms_setup", "--create-new", "--json", stdout=Terminal())
    assert key_count() == 0


def test_native_create_json_has_null_parameter() -> None:
    out = io.StringIO()
    call_command("kms_setup", "--create-new", "--native", "--alias", "nat", "--json", stdout=out)
    result = json.loads(out.getvalue())
    assert result["kind"] == result["mode"] == "native" and result["ssm_parameter"] is None


def test_slow_steps_print_progress_on_stderr_unless_verbosity_0(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "kms_setup", "--create-new", "--mnemonic-out", str(tmp_path / "a"),
        stdout=out, stderr=err,
    )  # fmt: skip
    steps = err.getvalue().splitlines()
    assert [line.split("(")[-1] for line in steps[3:]] == [
        "CreateKey)", "CreateAlias)", "PutParameter)", "MarkComplete)",
    ]  # fmt: skip
    assert steps[0].startswith(f"... alias/{ALIAS}: looking for unfinished creations")
    assert steps[1].startswith(f"... alias/{ALIAS}: checking")
    assert steps[2].startswith("... backup of ") and "before any AWS change" in steps[2]
    assert not any(line.startswith("...") for line in out.getvalue().splitlines())

    quiet = io.StringIO()
    call_command(
        "kms_setup", "--create-new", "--alias", "b", "--mnemonic-out", str(tmp_path / "b"),
        "-v", "0", stdout=io.StringIO(), stderr=quiet,
    )  # fmt: skip
    assert quiet.getvalue() == ""


# --- import of an account already stored ------------------------------------------------


def test_import_of_an_account_under_another_alias_warns() -> None:
    phrase = mnemonic.from_private_key(new_account()[0])
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "kms_setup", "--import-existing", "--alias", "first",
        stdin=io.StringIO(phrase), stdout=io.StringIO(), stderr=err,
    )  # fmt: skip
    assert "warning" not in err.getvalue()

    call_command(
        "kms_setup", "--import-existing", "--alias", "second", "--json",
        stdin=io.StringIO(phrase), stdout=out, stderr=err,
    )  # fmt: skip

    address = account.address_from_private_key(mnemonic.to_private_key(phrase))
    (warning,) = [line for line in err.getvalue().splitlines() if line.startswith("warning")]
    assert address in warning and "alias/first" in warning and "kms_delete" in warning
    assert json.loads(out.getvalue())["also_under"] == ["alias/first"]
    assert phrase not in out.getvalue() + err.getvalue()
    assert sorted(r.name for r in AlgorandKMSManager().list_keys()) == ["first", "second"]
