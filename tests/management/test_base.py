"""What every confio_kms command shares (management/base.py)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command, load_command_class

from confio_kms.management.base import SHARED, KMSCommand

from .conftest import Terminal

FOLDER = Path(__file__).resolve().parents[2] / "confio_kms/management/commands"
COMMANDS = sorted(path.stem for path in FOLDER.glob("kms_*.py"))


def test_there_are_commands() -> None:
    assert {"kms_setup", "kms_list", "kms_delete", "kms_rotate"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_takes_json_and_verbosity(name: str) -> None:
    command = load_command_class("confio_kms", name)
    assert isinstance(command, KMSCommand)
    options = {a.dest for a in command.create_parser("manage.py", name)._actions}
    assert {"json", "verbosity"} <= options
    # Those that can spend money, destroy a key, or stop or resume signing fleet-wide
    # have --yes.
    assert ("yes" in options) is (
        name
        in {"kms_setup", "kms_test_sign", "kms_rotate", "kms_delete", "kms_pause", "kms_resume"}
    )
    assert ("interactive" in options) is ("yes" in options)  # --no-input goes with --yes


@pytest.mark.parametrize("name", COMMANDS)
def test_shared_arguments_are_declared_once_in_the_base(name: str) -> None:
    # kms_policy's --alias (repeatable) and kms_cost's --native mean something else there.
    own = {"kms_policy": {"--alias"}, "kms_cost": {"--native"}}.get(name, set())
    source = (FOLDER / f"{name}.py").read_text()
    for flags, _ in SHARED.values():
        for flag in set(flags) - own:
            assert f'"{flag}"' not in source, f"{name} declares {flag}: name it in arguments"
    command = load_command_class("confio_kms", name)
    actions = {a.dest: a for a in command.create_parser("manage.py", name)._actions}
    for shared in command.arguments:
        _, declaration = SHARED[shared]
        assert actions[declaration.get("dest", shared)].help == declaration["help"]


def test_closed_input_at_the_prompt_is_not_a_confirmation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", Terminal(""))  # a terminal whose input is closed
    with pytest.raises(CommandError, match="Not confirmed"):
        call_command(
            "kms_setup", "--create-new", "--native", "--network", "mainnet",
            stdout=io.StringIO(), stderr=io.StringIO(),
        )  # fmt: skip
