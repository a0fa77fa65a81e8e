"""The legacy-secret scan (confio_kms.ops.secrets) that kms_doctor's settings.mnemonic and
check's W003 share: a mnemonic or key in its common written forms, inside containers,
named by setting and path; never a value in what they print."""

from __future__ import annotations

import base64
import io
import json
import re

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from confio_kms import checks
from confio_kms.ops import secrets
from confio_kms.ops.secrets import MNEMONIC_LIKE

from .test_secret_hygiene import SEED, SENTINEL_KEY, SENTINEL_MNEMONIC

RAW_KEY = base64.b64decode(SENTINEL_KEY)
WORDS = SENTINEL_MNEMONIC.split()
URLSAFE_KEY = base64.urlsafe_b64encode(RAW_KEY).decode()
assert URLSAFE_KEY != SENTINEL_KEY  # the sentinel's base64 has a "+": the rows differ
# A name that says nothing, and one that says the value is the sponsor's (a seed's
# context); neither is named like a secret for W003 or the doctor.
PLAIN = "BACKUP_BLOB"
SPONSOR = "ALGORAND_SPONSOR_BLOB"

# (setting name, value, the names the scan reports)
FOUND = {
    "mnemonic, commas": (PLAIN, ",".join(WORDS), [PLAIN]),
    "mnemonic, comma and space": (PLAIN, ", ".join(WORDS), [PLAIN]),
    "mnemonic, a comma and a newline": (PLAIN, ",\n".join(WORDS), [PLAIN]),
    "mnemonic, double quotes": (PLAIN, f'"{SENTINEL_MNEMONIC}"', [PLAIN]),
    "mnemonic, single quotes": (PLAIN, f"'{SENTINEL_MNEMONIC}'", [PLAIN]),
    "mnemonic, JSON list": (PLAIN, json.dumps(WORDS), [PLAIN]),
    "mnemonic, Python list": (PLAIN, repr(WORDS), [PLAIN]),
    "mnemonic, upper case, commas": (PLAIN, ",".join(WORDS).upper(), [PLAIN]),
    "mnemonic, title case, JSON": (PLAIN, json.dumps([w.title() for w in WORDS]), [PLAIN]),
    "key, hex": (PLAIN, RAW_KEY.hex(), [PLAIN]),
    "key, upper-case hex": (PLAIN, RAW_KEY.hex().upper(), [PLAIN]),
    "key, 0x hex": (PLAIN, "0x" + RAW_KEY.hex(), [PLAIN]),
    "key, urlsafe base64": (PLAIN, URLSAFE_KEY, [PLAIN]),
    "key, urlsafe base64 unpadded": (PLAIN, URLSAFE_KEY.rstrip("="), [PLAIN]),
    "key, quoted base64": (PLAIN, f'"{SENTINEL_KEY}"', [PLAIN]),
    "key, raw bytes": (PLAIN, RAW_KEY, [PLAIN]),
    "seed, base64": (SPONSOR, base64.b64encode(SEED).decode(), [SPONSOR]),
    "seed, base64 unpadded": (SPONSOR, base64.b64encode(SEED).decode().rstrip("="), [SPONSOR]),
    "seed, urlsafe base64": (SPONSOR, base64.urlsafe_b64encode(SEED).decode(), [SPONSOR]),
    "seed, hex": (SPONSOR, SEED.hex(), [SPONSOR]),
    "seed, raw bytes": (SPONSOR, SEED, [SPONSOR]),
    "mnemonic in a dict": (PLAIN, {"algorand": SENTINEL_MNEMONIC}, [f"{PLAIN}['algorand']"]),
    "key in a list": (PLAIN, ["x", SENTINEL_KEY], [f"{PLAIN}[1]"]),
    "key in a tuple": (PLAIN, (RAW_KEY.hex(),), [f"{PLAIN}[0]"]),
    "mnemonic in a set": (PLAIN, {"x", SENTINEL_MNEMONIC}, [f"{PLAIN}{{...}}"]),
    "key nested": (PLAIN, {"a": [{"b": SENTINEL_KEY}]}, [f"{PLAIN}['a'][0]['b']"]),
    "seed under a dict key that says seed": (
        PLAIN,
        {"sponsor": {"seed": SEED.hex()}},
        [f"{PLAIN}['sponsor']['seed']"],
    ),
    "secret as a dict key": (PLAIN, {SENTINEL_MNEMONIC: 1}, [f"{PLAIN}[?] (a key)"]),
}

# Values that are not an Algorand secret, or not told apart from one.
NOT_FOUND = {
    "a typo'd mnemonic, commas": (PLAIN, ",".join([*WORDS[:24], WORDS[0]])),
    "64 bytes that are no key pair": (PLAIN, base64.b64encode(bytes(range(64))).decode()),
    "a hash, hex": (PLAIN, SEED.hex()),
    "a genesis hash under a sponsor name": (
        "ALGORAND_SPONSOR_GENESIS",
        base64.b64encode(SEED).decode(),
    ),
    "an algod token under a sponsor key": (PLAIN, {"sponsor": {"token": SEED.hex()}}),
    "a placeholder seed": (SPONSOR, base64.b64encode(bytes(32)).decode()),
    "deeper than the bound": (PLAIN, [[[[[[[[[[SENTINEL_KEY]]]]]]]]]]),
}


def doctor_names(name: str, value: object) -> list[str]:
    """What the doctor's scan reports for one setting (it hides no name)."""
    return secrets.secret_names({name: value}, {}, MNEMONIC_LIKE)


@pytest.mark.parametrize("name, value, expected", FOUND.values(), ids=FOUND.keys())
def test_each_form_is_found_and_named(name: str, value: object, expected: list[str]) -> None:
    assert doctor_names(name, value) == expected
    if isinstance(value, str):  # the same text in an environment variable
        found = secrets.secret_names({}, {name: value}, MNEMONIC_LIKE)
        assert found == [f"{name} (environment)"]


@pytest.mark.parametrize("name, value", NOT_FOUND.values(), ids=NOT_FOUND.keys())
def test_the_boundaries(name: str, value: object) -> None:
    assert doctor_names(name, value) == []


def test_w003_leaves_out_dict_keys_the_filter_hides() -> None:
    """As Django's reports do: a key named like SECRET is cleansed, a key named
    'algorand' is shown; confio_kms's filter hides a key named seed too."""
    value = {"api_secret": SENTINEL_MNEMONIC, "algorand": SENTINEL_KEY, "seed": SEED.hex()}
    django_hidden = re.compile("API|TOKEN|KEY|SECRET|PASS|SIGNATURE", re.IGNORECASE)
    assert secrets.secret_paths(SPONSOR, value, django_hidden) == [
        f"{SPONSOR}['algorand']",
        f"{SPONSOR}['seed']",
    ]
    assert secrets.secret_paths(SPONSOR, value, checks.SECRET_SETTING) == [f"{SPONSOR}['algorand']"]


# Every written form of the sentinel that must never be printed.
SENTINEL_FORMS = [
    SENTINEL_KEY,
    URLSAFE_KEY.rstrip("="),
    RAW_KEY.hex(),
    SEED.hex(),
    base64.b64encode(SEED).decode().rstrip("="),
    *(" ".join(WORDS[i : i + 3]) for i in range(len(WORDS) - 2)),
    *(",".join(WORDS[i : i + 3]) for i in range(len(WORDS) - 2)),
]
EVERY_FORM = {
    "BACKUP_WORDS": ", ".join(WORDS).upper(),
    "BACKUP_HEX": RAW_KEY.hex(),
    "BACKUPS": {"algorand": [URLSAFE_KEY.rstrip("=")], "sponsor": {"seed": SEED.hex()}},
}


def test_the_doctor_and_w003_name_every_form_and_print_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BACKUP_LIST", json.dumps(WORDS))
    outputs: list[str] = []
    with override_settings(USE_KMS_SIGNING=True, **EVERY_FORM):
        (warning,) = checks.check_error_reports()
        outputs += [warning.msg, warning.hint or ""]
        for args in ((), ("--json",)):
            out, err = io.StringIO(), io.StringIO()
            with pytest.raises(CommandError):
                call_command("kms_doctor", *args, stdout=out, stderr=err)
            outputs += [out.getvalue(), err.getvalue()]
    names = (
        "BACKUPS['algorand'][0], BACKUPS['sponsor']['seed'], BACKUP_HEX, BACKUP_WORDS, "
        "BACKUP_LIST (environment)"
    )
    assert warning.msg.startswith(f"{names} would be shown")
    doctor_text, document = outputs[2], outputs[4]
    (line,) = [line for line in doctor_text.splitlines() if "settings.mnemonic" in line]
    assert names in line
    finding = {f["check"]: f for f in json.loads(document)["findings"]}["settings.mnemonic"]
    assert names in finding["message"]
    printed = "\n".join(outputs).lower()
    leaked = [i for i, form in enumerate(SENTINEL_FORMS) if form.lower() in printed]
    assert leaked == [], f"form(s) {leaked} of the sentinel printed"
