"""One door for settings: the core works from explicit ``Options`` without Django, one
module reads settings, and one region rule serves every way of building a signer."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from algosdk import transaction
from django.test import override_settings

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms import factory as conf
from confio_kms import settings as config
from confio_kms.common import exceptions
from confio_kms.core import signer as core_signer
from confio_kms.core.options import DEFAULT_REGION, Options
from confio_kms.lifecycle import manager as core_manager
from confio_kms.sandbox import DUMMY_CREDENTIALS, LocalAWS, LocalLedger

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "confio_kms"

_WORKER = """
import base64, json, sys
from algosdk import encoding, transaction
from nacl.signing import VerifyKey

from confio_kms.algorand import networks
from confio_kms.common.exceptions import PolicyViolationError
from confio_kms.core.options import Options
from confio_kms.core.signer import KMSSigner
from confio_kms.lifecycle.manager import AlgorandKMSManager


class Shared(dict):
    def get(self, key, default=None):
        return super().get(key, default)

    def set(self, key, value, timeout=None):
        self[key] = value

    def delete(self, key):
        self.pop(key, None)


records, shared = [], Shared()
options = Options(region="eu-west-1", cache=shared, audit_sink=records.append, max_fee=2_000,
                  cache_mac_key=b"k" * 32)
endpoint = sys.argv[1]
manager = AlgorandKMSManager(endpoint_url=endpoint, options=options)
created = manager.create_algorand_key("worker-key", network="testnet")
signer = KMSSigner("worker-key", endpoint_url=endpoint, options=options)
params = transaction.SuggestedParams(
    1_000, 1, 1_000, networks.GENESIS_HASH["testnet"], "testnet-v1.0", flat_fee=True
)
txn = transaction.PaymentTxn(created.address, params, created.address, 0)
signed = signer.sign_transaction(txn)
VerifyKey(encoding.decode_address(created.address)).verify(
    txn.bytes_to_sign(), base64.b64decode(signed.signature)
)
params.fee = 5_000
try:
    signer.sign_transaction(transaction.PaymentTxn(created.address, params, created.address, 0))
    refused = False
except PolicyViolationError:
    refused = True

from django.conf import settings

print(json.dumps({
    "configured": settings.configured,
    "models_imported": "confio_kms.models" in sys.modules,
    "region": signer.region_name,
    "outcomes": [r["outcome"] for r in records],
    "shared_entries": sorted(k.split(":")[1] for k in shared),
    "refused": refused,
    "verified": True,
}))
"""


def test_the_core_signs_outside_django_with_explicit_options(aws_env: LocalAWS) -> None:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DJANGO_SETTINGS_MODULE", "AWS_ENDPOINT_URL")
    }
    # The options' region must win over the environment's.
    env.update(DUMMY_CREDENTIALS, AWS_DEFAULT_REGION="us-east-1", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", _WORKER, aws_env.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {
        "configured": False,
        "models_imported": False,
        "region": "eu-west-1",
        "outcomes": ["signed", "refused"],
        "shared_entries": ["generation", "key", "key"],  # the alias, the ciphertext
        "refused": True,
        "verified": True,
    }


# Modules of other changes that still read settings themselves; this list may only shrink.
NOT_YET: dict[str, str] = {}
# The settings door's readers: a call of one of these on confio_kms.settings reads a
# setting by its name.
READERS = {"setting", "_autoconfig"}


def reads_settings(path: Path) -> bool:
    """Whether the module imports django.conf or decouple, or looks a setting up by name
    (calls ``setting``: re-exporting it, as the factory does, is no reading)."""
    tree = ast.parse(path.read_text())
    imported = {
        a.asname or a.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "confio_kms.settings"
        for a in node.names
        if a.name in READERS
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "decouple":
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "django.conf":
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "django"
            and any(a.name == "conf" for a in node.names)
        ):
            return True
        if isinstance(node, ast.Import) and any(
            a.name.startswith(("django.conf", "decouple")) for a in node.names
        ):
            return True
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in imported
        ):
            return True
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in READERS
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in ("config", "settings", "conf")
        ):
            return True
    return False


def setting_readers() -> set[str]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).with_suffix("")
        if relative.parts[0] == "migrations":
            continue
        if reads_settings(path):
            found.add(".".join(relative.parts))
    return found


def test_one_module_reads_settings() -> None:
    assert setting_readers() - set(NOT_YET) == {"settings"}


def test_the_modules_not_yet_moved_still_read_settings() -> None:
    assert set(NOT_YET) - setting_readers() == set(), "done: remove them from NOT_YET"


def test_the_reader_count_sees_each_way_of_reading(tmp_path: Path) -> None:
    cases = {
        "from django.conf import settings": True,
        "import decouple": True,
        "from confio_kms import settings as config\nconfig.setting('X', 1)": True,
        "from confio_kms import settings as config\nconfig.options()": False,
        "from confio_kms.settings import setting\nsetting('X')": True,
        "from confio_kms.settings import setting\n__all__ = ['setting']": False,
    }
    for number, (source, expected) in enumerate(cases.items()):
        module = tmp_path / f"m{number}.py"
        module.write_text(source)
        assert reads_settings(module) is expected, source


def test_the_options_defaults_are_the_settings_defaults() -> None:
    built = config.options()
    plain = Options()
    different = {
        f.name
        for f in dataclasses.fields(Options)
        if getattr(built, f.name) != getattr(plain, f.name)
    }
    # Django's cache is shared (its entries authenticated under a key from SECRET_KEY);
    # the test settings trust the ledger evaluator's genesis.
    assert different == {"cache", "cache_mac_key", "trusted_genesis"}
    assert built.cache == config.DjangoCache("default")


def test_the_core_classes_read_no_settings() -> None:
    with override_settings(CONFIO_KMS_MAX_FEE=1, KMS_REGION="ap-south-1", CONFIO_KMS_AUDIT_DB=True):
        plain = core_signer.KMSSigner("k")
        manager = core_manager.AlgorandKMSManager()
        edge = KMSSigner("k")
    assert plain.options == manager.options == Options()
    assert plain.policy.max_fee == Options().max_fee and plain.region_name != "ap-south-1"
    assert edge.policy.max_fee == 1 and edge.region_name == "ap-south-1"
    assert edge.options.audit_sink is config.store_signing_record


def test_settings_are_read_when_built_not_per_call(
    manager: AlgorandKMSManager, caplog: pytest.LogCaptureFixture
) -> None:
    address = manager.create_algorand_key("k").address
    txn = transaction.PaymentTxn(address, LocalLedger.suggested_params(), address, 0)
    signer = KMSSigner("k")
    # A setting that would fail if it were read during the call.
    with override_settings(CONFIO_KMS_AUDIT_DB="sometimes", CONFIO_KMS_CACHE_TIMEOUT="x"):
        assert signer.sign_transaction(txn).transaction is txn
    assert "CONFIO_KMS" not in caplog.text


@pytest.mark.parametrize(
    "environment, configured, expected",
    [
        ({}, None, DEFAULT_REGION),
        ({"AWS_DEFAULT_REGION": "us-east-1"}, None, DEFAULT_REGION),
        ({"AWS_DEFAULT_REGION": "us-east-1"}, "ap-southeast-2", "ap-southeast-2"),
    ],
)
def test_one_region_rule_for_every_way_of_building(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    environment: dict[str, str],
    configured: str | None,
    expected: str,
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with override_settings(**({"KMS_REGION": configured} if configured else {})):
        regions = {
            "factory signer": conf.kms_signer().region_name,
            "factory manager": conf.kms_manager().region_name,
            "settings snapshot": conf.kms_settings().region,
            "signer": KMSSigner("k").region_name,
            "manager": AlgorandKMSManager().region_name,
            "core signer": core_signer.KMSSigner(
                "k", options=Options(region=configured)
            ).region_name,
        }
        assert KMSSigner("k", "eu-west-3").region_name == "eu-west-3"  # explicit wins
    assert set(regions.values()) == {expected}, regions


@pytest.mark.parametrize(
    "field, value",
    [
        ("region", "Zurich"),
        ("read_timeout", 0),
        ("max_attempts", 11),
        ("native_concurrency", 0),
        ("cache_timeout", -1),
        ("key_policy_account", "12345"),
    ],
)
def test_invalid_options_name_the_field(field: str, value: object) -> None:
    with pytest.raises(exceptions.ConfigurationError, match=rf"Invalid Options: {field}="):
        Options(**{field: value})  # type: ignore[arg-type]
