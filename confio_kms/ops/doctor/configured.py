"""The settings checks: KMS signing on, and no mnemonic or private key left configured
(``Configuration.secrets``: names only, found by ``confio_kms.ops.secrets``)."""

from __future__ import annotations

from confio_kms.common import progress
from confio_kms.ops.doctor.report import Finding, Status
from confio_kms.ops.doctor.state import Checkup
from confio_kms.ops.secrets import LEGACY_MNEMONIC


def check_settings(doctor: Checkup) -> list[Finding]:
    progress.step("reading the settings")
    found = []
    if doctor.conf.use_kms_signing:
        found.append(Finding("settings.kms_signing", Status.PASS, "USE_KMS_SIGNING is on."))
    else:
        found.append(
            Finding(
                "settings.kms_signing",
                Status.FAIL,
                "USE_KMS_SIGNING is off: the app does not sign with the KMS key.",
                "Set USE_KMS_SIGNING=true where the app reads its settings (settings, "
                "the environment or .env) and restart every app process "
                "(docs/migration.md, Switch).",
            )
        )
    # Settings and environment variables named like a mnemonic, seed, phrase or
    # private key, or whose value is an Algorand mnemonic or private key (names only).
    names = list(doctor.conf.secrets)
    if doctor.conf.legacy_mnemonic and not any(n.startswith(LEGACY_MNEMONIC) for n in names):
        names.append(f"{LEGACY_MNEMONIC} (.env or settings.ini)")
    if names:
        found.append(
            Finding(
                "settings.mnemonic",
                Status.FAIL,
                f"A mnemonic or private key is still configured: {', '.join(names)}.",
                "Remove it from settings, the environment, .env files, secret stores and "
                "CI variables, keep only the offline backup, and restart the app.",
            )
        )
    else:
        found.append(
            Finding(
                "settings.mnemonic",
                Status.PASS,
                "No Django setting or environment variable of this process is named like "
                "a mnemonic, seed, phrase or private key or holds an Algorand mnemonic or "
                f"base64 private key, and {LEGACY_MNEMONIC} is not in .env or settings.ini "
                "(other hosts, secret stores and CI variables are not checked).",
            )
        )
    return found
