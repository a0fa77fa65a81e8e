"""Helpers for running the commands as an operator would."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


class Terminal(io.StringIO):
    """A captured stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def manage_py(aws_env):  # type: ignore[no-untyped-def]
    """Run example_project/manage.py in a child process against the local endpoint."""

    def run(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(ROOT),
            **aws_env.environ(),
            "USE_KMS_SIGNING": "true",
            "DJANGO_SETTINGS_MODULE": "example_project.settings",
            **extra_env,
        }
        return subprocess.run(
            [sys.executable, str(ROOT / "example_project" / "manage.py"), *args],
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )

    return run
