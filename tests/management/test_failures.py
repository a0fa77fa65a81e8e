"""Expected failures, run as real processes: exit status 1, one line on stderr,
no traceback (unless --traceback)."""

from __future__ import annotations

import json
import socket

import pytest


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "args, env, needle",
    [
        (["kms_test_sign", "--alias", "no-such-key"], {}, "does not exist"),
        (
            ["kms_setup", "--create-new", "--alias", "bad alias", "--no-input"],
            {},
            "not a valid key alias",
        ),
        (["kms_list"], {"KMS_ENDPOINT_URL": "http://127.0.0.1:{port}"}, "Could not reach AWS"),
        (["kms_list"], {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, "credentials"),
        (["kms_setup", "--import-existing"], {}, "has 0"),
        (["kms_list"], {"KMS_REGION": "nowhere"}, "KMS_REGION"),
    ],
)
def test_expected_failures_are_one_line(manage_py, args, env, needle) -> None:  # type: ignore[no-untyped-def]
    env = {k: v.format(port=closed_port()) for k, v in env.items()}
    if env.get("AWS_ACCESS_KEY_ID") == "":
        env.update(AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE="/nonexistent")

    result = manage_py(*args, **env)

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("CommandError: "), result.stderr
    assert needle in lines[0] and "Fix:" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_traceback_flag_shows_the_chain(manage_py) -> None:  # type: ignore[no-untyped-def]
    result = manage_py("kms_test_sign", "--alias", "no-such-key", "--traceback")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "AliasNotFoundError" in result.stderr


def test_existing_alias_is_refused(manage_py, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = manage_py("kms_setup", "--create-new", "--no-input", f"--mnemonic-out={tmp_path}/a")
    assert first.returncode == 0, first.stderr
    second = manage_py("kms_setup", "--create-new", "--no-input", f"--mnemonic-out={tmp_path}/b")
    assert second.returncode == 1
    assert "alias/confio-testnet-sponsor already exists; nothing was changed" in second.stderr


def test_example_view_uses_the_sponsor_service(manage_py, tmp_path) -> None:  # type: ignore[no-untyped-def]
    refused = manage_py("kms_setup", "--create-new", "--no-input", "--mnemonic-out=/dev/null")
    assert refused.returncode == 1 and "already exists" in refused.stderr  # never overwritten
    setup = manage_py("kms_setup", "--create-new", "--no-input", f"--mnemonic-out={tmp_path}/m")
    assert setup.returncode == 0, setup.stderr
    address = setup.stdout.split("address: ")[1].split()[0]
    shell = (
        "from django.test import Client; import json; "
        "print(json.dumps(json.loads(Client().get('/sponsor/').content)))"
    )
    result = manage_py("shell", "-c", shell)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "sponsor_address": address,
        "settings_address": address,  # the lazy settings one-liner
        "signing": "kms",
    }
