"""A lookup in flight while the alias moves must not put the old key back in a cache.

The lookup is paused inside its ListResourceTags request (a botocore before-send
handler waits on an event), after DescribeKey has told it the old key. Meanwhile the
alias moves to another key and the entry is forgotten (by a rotation, by hand, or by
another process sharing Django's cache); then the lookup is released. Neither this
process's cache nor Django's may hold the old key afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from algosdk import transaction
from django.test import override_settings

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms import settings as config
from confio_kms.core import cache
from confio_kms.sandbox import LedgerChain, LocalLedger

ALIAS = "raced"
WAIT = 30  # seconds; only reached if something hangs


class PausedLookup:
    """``KMSSigner(ALIAS).address`` in a thread, held inside ListResourceTags."""

    def __init__(self) -> None:
        self.session = boto3.Session()
        self.paused = threading.Event()
        self.release = threading.Event()
        self.session.events.register("before-send.kms.ListResourceTags", self._hold)
        self.signer = KMSSigner(ALIAS, session=self.session)
        self.result: list[Any] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _hold(self, **kwargs: Any) -> None:
        if not self.paused.is_set():  # the first request only
            self.paused.set()
            assert self.release.wait(WAIT)

    def _run(self) -> None:
        try:
            self.result.append(self.signer.address)
        except Exception as error:  # reported by finish()
            self.result.append(error)

    @property
    def scope(self) -> str:
        return self.signer.clients.scope

    def start(self) -> None:
        self.thread.start()
        assert self.paused.wait(WAIT), "the lookup never reached ListResourceTags"

    def finish(self) -> str:
        self.release.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()
        (address,) = self.result
        assert isinstance(address, str), address
        return address


@pytest.fixture
def lookup() -> Iterator[PausedLookup]:
    paused = PausedLookup()
    yield paused
    paused.release.set()  # never leave the thread waiting


def cached_address(scope: str) -> str | None:
    # In this process, else in Django's cache (the shared cache of the settings' options).
    info = cache.get(scope, ALIAS, config.options())
    return info.address if info is not None else None


def test_forget_after_the_alias_moved_beats_a_lookup_in_flight(
    manager: AlgorandKMSManager, lookup: PausedLookup
) -> None:
    old = manager.create_algorand_key(ALIAS)
    new = manager.create_algorand_key("replacement")

    lookup.start()  # has read alias -> old key, is reading its tags
    boto3.client("kms").update_alias(AliasName=f"alias/{ALIAS}", TargetKeyId=new.key_id)
    # What a rotation does once the alias has moved.
    cache.forget(lookup.scope, ALIAS, config.options())
    assert lookup.finish() == old.address  # it answered what it had read ...

    # ... but cached none of it: not in this process, not in Django's cache.
    assert cached_address(lookup.scope) is None
    cache.clear_process_cache()
    assert cached_address(lookup.scope) is None
    # The next lookup asks AWS, and it is the new key that gets cached.
    assert KMSSigner(ALIAS).address == new.address
    cache.clear_process_cache()
    assert cached_address(lookup.scope) == new.address


def test_a_rotation_during_a_lookup_leaves_the_new_key_signing(
    manager: AlgorandKMSManager, lookup: PausedLookup, ledger: LocalLedger
) -> None:
    address = manager.create_algorand_key(ALIAS).address
    ledger.fund(address, 10_000_000)

    lookup.start()
    result = manager.rotate_key(ALIAS, LedgerChain(ledger))  # rekeys, switches, forgets
    lookup.finish()

    info = cache.get(lookup.scope, ALIAS, config.options())
    assert info is None or info.key_id == result.key_id
    # A signer of this process signs with the new key: the ledger accepts it.
    signer = KMSSigner(ALIAS)
    assert signer.signer_address == result.auth_address
    txn = transaction.PaymentTxn(address, ledger.suggested_params(), address, 0)
    ledger.evaluate([signer.sign_transaction(txn)])


_FORGET = """
import sys, django
django.setup()
from confio_kms import cache, settings
cache.forget(sys.argv[1], sys.argv[2], settings.options())
"""


def test_a_forget_in_another_process_beats_a_lookup_in_flight(
    manager: AlgorandKMSManager, lookup: PausedLookup, tmp_path: Path
) -> None:
    """Processes share Django's cache (a file cache here): the other process's
    forget cannot touch this one's memory, only the shared generation."""
    location = tmp_path / "cache"
    shared = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                          "LOCATION": str(location)}}  # fmt: skip
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CONFIO_TEST_CACHE_DIR": str(location),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    with override_settings(CACHES=shared):
        manager.create_algorand_key(ALIAS)
        new = manager.create_algorand_key("replacement")

        lookup.start()
        boto3.client("kms").update_alias(AliasName=f"alias/{ALIAS}", TargetKeyId=new.key_id)
        other = subprocess.run(
            [sys.executable, "-c", _FORGET, lookup.scope, ALIAS],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert other.returncode == 0, other.stderr
        lookup.finish()

        assert cached_address(lookup.scope) is None
        cache.clear_process_cache()
        assert cached_address(lookup.scope) is None


def test_a_shared_entry_of_an_unknown_kind_is_a_miss() -> None:
    import dataclasses

    from confio_kms.core.cache import _GENERATION, _decode
    from confio_kms.core.keys import KeyInfo

    info = KeyInfo("n", "id", "A" * 58, "testnet", "hsm-of-the-future")
    raw = {**dataclasses.asdict(info), _GENERATION: "g"}
    assert _decode(raw, "g") is None
    assert _decode({**raw, "kind": "envelope"}, "g") is not None
