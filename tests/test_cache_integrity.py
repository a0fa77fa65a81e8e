"""Whoever can write the shared cache cannot redirect signing.

Each test lets the library write a genuine entry into a real shared Django cache (a
file cache; Redis too when ``redis-server`` is installed), rewrites it straight in
the backend as an attacker who can write the cache but not run code would, and
signs as a new process would (the process's own cache dropped). Every entry is
authenticated (HMAC under a key derived from SECRET_KEY, bound to the alias it was
looked up for), so each forgery is a miss: the alias is looked up in AWS again and
signs with its own key, for its own network.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from algosdk import transaction
from django.core.cache import caches
from django.test import override_settings

from confio_kms import KMSSigner
from confio_kms import settings as config
from confio_kms.algorand import networks
from confio_kms.common import exceptions
from confio_kms.core import cache
from confio_kms.core.keys import KeyInfo
from confio_kms.core.options import Options
from confio_kms.sandbox import LocalLedger

from .helpers import EnvelopeKey, NativeKey, RequestCounter

ALIAS = "confio-testnet-sponsor"
OTHER = "confio-testnet-other"
LOOKUP = {"kms.DescribeKey": 1, "kms.ListResourceTags": 1}


@pytest.fixture(params=["file", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The shared Django cache (``default``) the library and the attacker both write."""
    if request.param == "file":
        location: dict[str, str] = {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        }
    else:
        location = {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": request.getfixturevalue("redis_url"),
        }
    with override_settings(CACHES={"default": location}):
        shared = caches["default"]
        shared.clear()
        yield shared
        shared.clear()


def cached(name: str, session: boto3.Session) -> KMSSigner:
    """Look ``name`` up (writing its shared entry), then forget it in this process, as
    a new process would start; return the signer that did the lookup."""
    signer = KMSSigner(name, session=session)
    assert signer.address
    cache.clear_process_cache()
    return signer


def entry_key(signer: KMSSigner) -> str:
    return cache._key(signer.clients.scope, signer.name)


def poison(backend: Any, signer: KMSSigner, drop: tuple[str, ...] = (), **changes: str) -> None:
    """Rewrite the genuine shared entry of ``signer``'s alias with ``changes``."""
    key = entry_key(signer)
    entry = backend.get(key)
    assert isinstance(entry, dict) and entry["name"] == signer.name, "no genuine entry"
    forged = {field: value for field, value in {**entry, **changes}.items() if field not in drop}
    backend.set(key, forged, None)


def payment(sender: str, network: str | None = None) -> transaction.PaymentTxn:
    """A 0-algo self-payment on the ledger evaluator's network, or on ``network``."""
    params = LocalLedger.suggested_params()
    if network is not None:
        params = transaction.SuggestedParams(
            1_000,
            1,
            1_000,
            networks.GENESIS_HASH[network],
            networks.GENESIS_ID[network],
            flat_fee=True,
        )
    return transaction.PaymentTxn(sender, params, sender, 0)


def make(kind: str, name: str, envelope_key: EnvelopeKey, native_key: NativeKey) -> str:
    """Create a ``kind`` key for the testnet under ``name``; return its address."""
    if kind == "native":
        return native_key(name, "testnet").address
    return envelope_key(name, "testnet")[1]


@pytest.mark.parametrize("kind", ["envelope", "native"])
def test_a_network_flipped_to_mainnet_does_not_sign_for_mainnet(
    backend: Any,
    kind: str,
    envelope_key: EnvelopeKey,
    native_key: NativeKey,
    session: boto3.Session,
    counter: RequestCounter,
) -> None:
    address = make(kind, ALIAS, envelope_key, native_key)
    poison(backend, cached(ALIAS, session), network="mainnet")
    signer = KMSSigner(ALIAS, session=session)
    counter.reset()

    with pytest.raises(exceptions.PolicyViolationError, match="tagged testnet"):
        signer.sign_transaction(payment(address, "mainnet"))

    assert signer.network == "testnet"
    assert counter.by_operation() == LOOKUP  # looked up in KMS again; nothing signed


def test_another_native_keys_id_and_address_do_not_redirect_the_alias(
    backend: Any,
    native_key: NativeKey,
    session: boto3.Session,
    ledger: LocalLedger,
    counter: RequestCounter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    own, other = native_key(ALIAS, "testnet"), native_key(OTHER, "testnet")
    cached(OTHER, session)
    poison(backend, cached(ALIAS, session), key_id=other.key_id, address=other.address)
    ledger.fund(own.address, 1_000_000)
    counter.reset()

    with caplog.at_level(logging.WARNING, logger="confio_kms.cache"):
        signed = KMSSigner(ALIAS, session=session).sign_transaction(payment(own.address))

    # Signed by the alias's own account: the ledger accepts it, no other authorizer.
    assert signed.authorizing_address is None
    ledger.evaluate([signed])
    calls = counter.by_operation()
    assert calls["kms.DescribeKey"] == calls["kms.ListResourceTags"] == calls["kms.Sign"] == 1
    # Logged, naming the alias and not the forged entry's content.
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "confio_kms.cache"]
    assert f"alias/{ALIAS}" in warning and "MAC" in warning
    assert other.key_id not in warning and other.address not in warning

    # The entry was rewritten with what KMS says: the next process's lookup is free.
    cache.clear_process_cache()
    counter.reset()
    assert KMSSigner(ALIAS, session=session).address == own.address
    assert counter.total == 0


@pytest.mark.parametrize("changes", [("name",), ("name", "address")])
def test_an_envelope_entry_naming_another_alias_does_not_decrypt_its_parameter(
    backend: Any,
    changes: tuple[str, ...],
    envelope_key: EnvelopeKey,
    ledger: LocalLedger,
) -> None:
    _, address = envelope_key(ALIAS, "testnet")
    _, other_address = envelope_key(OTHER, "testnet")
    forged = {"name": OTHER, "address": other_address}
    poison(backend, cached(ALIAS, boto3.Session()), **{f: forged[f] for f in changes})
    # A session of its own, so that every GetParameter of this signer is seen.
    session, counter, parameters = boto3.Session(), RequestCounter(), []
    counter.attach(session)
    session.events.register(
        "provide-client-params.ssm.GetParameter",
        lambda params, **kwargs: parameters.append(params["Name"]),
    )
    ledger.fund(address, 1_000_000)

    signed = KMSSigner(ALIAS, session=session).sign_transaction(payment(address))

    assert parameters == [f"/confio/algorand/{ALIAS}/private-key"]
    assert counter.by_operation() == {**LOOKUP, "ssm.GetParameter": 1, "kms.Decrypt": 1}
    assert signed.authorizing_address is None
    ledger.evaluate([signed])


def test_an_entry_without_a_mac_does_not_redirect(
    backend: Any, native_key: NativeKey, session: boto3.Session, ledger: LocalLedger
) -> None:
    own, other = native_key(ALIAS, "testnet"), native_key(OTHER, "testnet")
    forged = {"key_id": other.key_id, "address": other.address}
    poison(backend, cached(ALIAS, session), drop=("mac",), **forged)
    ledger.fund(own.address, 1_000_000)

    signer = KMSSigner(ALIAS, session=session)
    signed = signer.sign_transaction(payment(own.address))

    assert signer.address == own.address
    ledger.evaluate([signed])


def test_an_entry_authenticated_under_another_secret_key_does_not_redirect(
    backend: Any, native_key: NativeKey, session: boto3.Session, ledger: LocalLedger
) -> None:
    """As another application sharing the cache (its own SECRET_KEY) could write."""
    own, other = native_key(ALIAS, "testnet"), native_key(OTHER, "testnet")
    signer = cached(ALIAS, session)
    redirected = KeyInfo(ALIAS, other.key_id, other.address, "testnet", "native")
    with override_settings(SECRET_KEY="another application's secret key"):
        cache.put(signer.clients.scope, ALIAS, redirected, options=config.options())
    assert backend.get(entry_key(signer))["key_id"] == other.key_id
    cache.clear_process_cache()
    ledger.fund(own.address, 1_000_000)

    fresh = KMSSigner(ALIAS, session=session)
    signed = fresh.sign_transaction(payment(own.address))

    assert fresh.address == own.address
    ledger.evaluate([signed])


def test_an_entry_copied_from_another_alias_does_not_redirect(
    backend: Any, native_key: NativeKey, session: boto3.Session, ledger: LocalLedger
) -> None:
    """A genuine entry (its MAC valid) of another alias, with that alias's generation."""
    own, other = native_key(ALIAS, "testnet"), native_key(OTHER, "testnet")
    theirs = cached(OTHER, session)
    signer = cached(ALIAS, session)
    for key in (entry_key, lambda s: cache._generation_key(entry_key(s))):
        backend.set(key(signer), backend.get(key(theirs)), None)
    assert backend.get(entry_key(signer))["key_id"] == other.key_id
    ledger.fund(own.address, 1_000_000)

    fresh = KMSSigner(ALIAS, session=session)
    signed = fresh.sign_transaction(payment(own.address))

    assert fresh.address == own.address
    assert signed.authorizing_address is None
    ledger.evaluate([signed])


def test_a_verified_entry_costs_no_request(
    backend: Any, envelope_key: EnvelopeKey, session: boto3.Session, counter: RequestCounter
) -> None:
    _, address = envelope_key(ALIAS, "testnet")
    counter.reset()
    cached(ALIAS, session)
    assert counter.by_operation() == LOOKUP
    counter.reset()

    assert KMSSigner(ALIAS, session=session).address == address
    assert counter.total == 0


class _Shared(dict[str, Any]):
    """The smallest shared cache: get/set/delete on a dict."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key, default)

    def set(self, key: str, value: Any, timeout: int | None = None) -> None:
        self[key] = value

    def delete(self, key: str) -> None:
        self.pop(key, None)


def test_without_a_mac_key_the_shared_cache_holds_no_entry(
    envelope_key: EnvelopeKey, session: boto3.Session, caplog: pytest.LogCaptureFixture
) -> None:
    _, address = envelope_key(ALIAS, "testnet")
    shared = _Shared()
    keyed = Options(cache=shared, cache_mac_key=b"k" * 32)
    unkeyed = Options(cache=shared)

    with caplog.at_level(logging.WARNING, logger="confio_kms.cache"):
        assert KMSSigner(ALIAS, session=session, options=unkeyed).address == address
    assert not [key for key in shared if ":key:" in key]
    assert "cache_mac_key" in caplog.text

    cache.clear_process_cache()
    assert KMSSigner(ALIAS, session=session, options=keyed).address == address
    assert [key for key in shared if ":key:" in key]
    cache.clear_process_cache()
    # An unkeyed reader does not read what a keyed writer wrote either.
    counter = RequestCounter()
    fresh = boto3.Session()
    counter.attach(fresh)
    assert KMSSigner(ALIAS, session=fresh, options=unkeyed).address == address
    assert counter.by_operation() == LOOKUP


def test_the_mac_key_is_checked_and_never_shown() -> None:
    secret = b"s3cret-mac-key-of-32-bytes-long!"
    assert "s3cret" not in repr(Options(cache_mac_key=secret))
    with pytest.raises(exceptions.ConfigurationError, match="cache_mac_key='<8 bytes>'") as raised:
        Options(cache_mac_key=secret[:8])
    assert "s3cret" not in str(raised.value)
    with pytest.raises(exceptions.ConfigurationError, match="cache_mac_key='<str>'"):
        Options(cache_mac_key="a text, not bytes" * 4)  # type: ignore[arg-type]


def test_the_settings_derive_the_mac_key_from_secret_key() -> None:
    key = config.options().cache_mac_key
    assert isinstance(key, bytes) and len(key) == 32
    with override_settings(SECRET_KEY="another"):
        assert config.options().cache_mac_key not in (None, key)
