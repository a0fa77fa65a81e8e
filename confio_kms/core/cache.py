"""Caches what an alias resolves to (key id, address, network, kind).

Two levels: a dictionary in this process, and the shared cache of the options
(``Options.cache``: in Django, the cache named by ``CONFIO_KMS_CACHE``, default
``"default"``), so processes that share a Redis or Memcached cache share lookups too. Only public
metadata is cached. A stale entry makes signing fail rather than sign for another
account: the signer checks the decrypted (or KMS) key against it, refuses parameter
paths outside the alias's own, and re-resolves on a mismatch. Entries expire after
``Options.cache_timeout`` seconds (``CONFIO_KMS_CACHE_TIMEOUT``, default 300), so a
rotation made by another process is picked up; a rotation also drops the shared entry
at once. A failing shared cache is logged and bypassed: signing never depends on it.

A lookup that was in flight while the alias changed must not cache what it read
before the change: ``forget`` (a rotation, a creation) starts a new generation of the
entry, in this process (a counter) and in the shared cache (a random token under its
own key). A lookup notes the generation before it asks AWS and writes its result only if
the generation is still the same; a shared entry carries the generation it was
written in, and a reader ignores an entry of another generation, so a write that
slips in after ``forget`` is never read.

The shared cache is not trusted to say what an alias is: whoever can write it could
otherwise point an alias at another key, another alias's parameter, or another
network. Each shared entry carries an HMAC-SHA256, under ``Options.cache_mac_key`` (in
Django derived from ``SECRET_KEY``), over the cache scope, the alias name, the
generation and every field; an entry that does not verify, names another alias or
is of an unknown kind is a miss (logged once per key), so the alias is looked up in
AWS and the entry rewritten. Without a key, lookups neither read nor write shared
entries (``forget`` still drops them: that needs no trust). The MAC does not make a
writable cache safe: Django's backends unpickle what they read (docs/security.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, NamedTuple

from confio_kms.core import kinds
from confio_kms.core.aws import AWSClients
from confio_kms.core.keys import KeyInfo
from confio_kms.core.options import DEFAULT_CACHE_TIMEOUT, DEFAULTS, Options, SharedCache

logger = logging.getLogger("confio_kms.cache")

_local: dict[str, tuple[float, KeyInfo]] = {}  # key -> (expires at, info)
# key -> generation in this process; bumped by forget, never reset (an entry that a
# lookup started under an older generation would otherwise come back).
_generations: dict[str, int] = {}
_lock = threading.Lock()
DEFAULT_TIMEOUT = DEFAULT_CACHE_TIMEOUT
_GENERATION = "generation"  # the shared entry's field naming its generation
_MAC = "mac"  # the shared entry's field holding its HMAC-SHA256 (hex)
# Names what the MAC covers, so it cannot be taken for another use of the same key.
_PURPOSE = "confio_kms.core.cache entry v4"
# Keys whose unverifiable entry was logged: once each, a writer could flood the log.
_warned: set[str] = set()
_unkeyed_warned = False


class Generation(NamedTuple):
    """An entry's generation: in this process, and in the shared cache ("" before any
    ``forget``, None when there is none or it could not be read)."""

    local: int
    shared: str | None


def _key(scope: str, name: str) -> str:
    # Memcached keys must be short and free of spaces; the scope holds a URL. v4: the
    # authenticated entries (v3's, unauthenticated, are never read).
    digest = hashlib.sha256(f"{scope}|{name}".encode()).hexdigest()[:24]
    return f"confio_kms:key:v4:{digest}"


def _generation_key(key: str) -> str:
    # Still v3: a forget reaches the processes of the previous version too.
    return "confio_kms:generation:v3:" + key.rsplit(":", 1)[1]


def _entries(options: Options) -> SharedCache | None:
    """The shared cache to read and write entries in: none without a MAC key."""
    global _unkeyed_warned
    if options.cache is not None and options.cache_mac_key is None:
        if not _unkeyed_warned:
            _unkeyed_warned = True
            logger.warning(
                "Options.cache is set but Options.cache_mac_key is not: alias lookups are "
                "not shared between processes (an unauthenticated entry could redirect "
                "signing). Pass a secret key of 16 bytes or more (docs/settings.md)."
            )
        return None
    return options.cache


def _mac(mac_key: bytes, scope: str, name: str, entry: Mapping[str, str]) -> str:
    """The HMAC of ``entry`` (fields and generation) as the entry of ``name`` in ``scope``."""
    message = json.dumps(
        [_PURPOSE, scope, name, dict(entry)], sort_keys=True, separators=(",", ":")
    )
    return hmac.new(mac_key, message.encode(), hashlib.sha256).hexdigest()


def _shared(shared: SharedCache | None, operation: str, key: Any, *args: Any) -> Any:
    """Run ``operation`` on the shared cache if there is one; None otherwise."""
    if shared is None:
        return None
    try:
        if operation == "get_many" and not hasattr(shared, "get_many"):
            return {k: v for k in key if (v := shared.get(k)) is not None}
        return getattr(shared, operation)(key, *args)
    except Exception as error:
        logger.warning("shared cache %s failed, bypassing it: %r", operation, error)
        return None


def _shared_generation(raw: object) -> str:
    return raw if isinstance(raw, str) else ""


def _decode(raw: object, generation: str) -> KeyInfo | None:
    """The KeyInfo of a shared entry of ``generation``; None for any other entry."""
    if not isinstance(raw, dict) or raw.get(_GENERATION) != generation:
        return None
    fields = {name: value for name, value in raw.items() if name != _GENERATION}
    try:
        info = KeyInfo(**fields)
    except TypeError:  # an entry written by another version
        return None
    # A kind this version does not know (another version's, or a tampered entry) is a
    # miss: AWS is asked again.
    return info if info.kind in kinds.KINDS else None


def _verified(
    raw: object, scope: str, name: str, generation: str, mac_key: bytes
) -> tuple[KeyInfo | None, str]:
    """(the KeyInfo of a shared entry, "") if it verifies as ``name``'s entry of
    ``generation``; else (None, why it is refused), the reason "" for a plain miss
    (no entry, or an authentic entry of an older generation)."""
    if raw is None:
        return None, ""
    if not isinstance(raw, dict) or not all(
        isinstance(field, str) and isinstance(value, str) for field, value in raw.items()
    ):
        return None, "is not an entry confio_kms writes"
    mac = raw.get(_MAC)
    if mac is None:
        return None, "has no MAC"
    entry = {field: value for field, value in raw.items() if field != _MAC}
    expected = _mac(mac_key, scope, name, entry)
    if not hmac.compare_digest(mac.encode(errors="replace"), expected.encode()):
        return None, "has a MAC that does not verify (another key, or another alias's entry)"
    if entry.get(_GENERATION) != generation:
        return None, ""  # written before a forget: stale, not forged
    info = _decode(entry, generation)
    if info is None:
        return None, "is of an unknown kind or layout"
    if info.name != name:
        return None, "names another alias"
    return info, ""


def _refused(key: str, name: str, problem: str) -> None:
    """Log, once per key, that a shared entry was refused; never its content."""
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    logger.warning(
        "The shared cache entry of alias/%s %s: ignored, the alias is looked up in AWS "
        "and the entry rewritten. Something besides this application writes the shared "
        "cache, or processes sharing it have different SECRET_KEYs (docs/security.md).",
        name,
        problem,
    )


def _read(scope: str, name: str, options: Options) -> tuple[KeyInfo | None, Generation]:
    """The cached info (None on a miss) and the generation it was read in."""
    key = _key(scope, name)
    with _lock:
        entry = _local.get(key)
        local = _generations.get(key, 0)
    if entry is not None and time.monotonic() < entry[0]:
        return entry[1], Generation(local, None)
    generation_key = _generation_key(key)
    found = _shared(_entries(options), "get_many", [key, generation_key])
    if not isinstance(found, dict) or options.cache_mac_key is None:
        return None, Generation(local, None)
    shared = _shared_generation(found.get(generation_key))
    info, problem = _verified(found.get(key), scope, name, shared, options.cache_mac_key)
    if problem:
        _refused(key, name, problem)
    if info is not None:
        with _lock:
            if _generations.get(key, 0) == local:
                _local[key] = (time.monotonic() + options.cache_timeout, info)
    return info, Generation(local, shared)


def get(scope: str, name: str, options: Options = DEFAULTS) -> KeyInfo | None:
    """The cached info of ``name`` (in this process, else in ``options.cache``)."""
    return _read(scope, name, options)[0]


def generation(scope: str, name: str, options: Options = DEFAULTS) -> Generation:
    """The entry's generation now: note it before asking AWS, pass it to ``put``."""
    key = _key(scope, name)
    with _lock:
        local = _generations.get(key, 0)
    generation_key = _generation_key(key)
    found = _shared(_entries(options), "get_many", [generation_key])
    if not isinstance(found, dict):
        return Generation(local, None)
    return Generation(local, _shared_generation(found.get(generation_key)))


def timeout(options: Options = DEFAULTS) -> float:
    """Seconds to keep an entry (``math.inf``: never expire)."""
    return options.cache_timeout


def put(
    scope: str,
    name: str,
    info: KeyInfo,
    since: Generation | None = None,
    options: Options = DEFAULTS,
) -> None:
    """Cache ``info``, unless the entry was forgotten since ``since`` (the generation
    noted before the lookup that produced ``info``; None: the current one)."""
    key = _key(scope, name)
    now = generation(scope, name, options)
    if since is not None and (
        now.local != since.local or (since.shared is not None and now.shared != since.shared)
    ):
        logger.debug("alias %s changed during its lookup: the result is not cached", name)
        return
    seconds = options.cache_timeout
    with _lock:
        if _generations.get(key, 0) != now.local:
            return  # forgotten between the check and now
        _local[key] = (time.monotonic() + seconds, info)
    if now.shared is None or options.cache_mac_key is None:  # no (usable) shared cache
        return
    entry = {**asdict(info), _GENERATION: now.shared}
    entry[_MAC] = _mac(options.cache_mac_key, scope, name, entry)
    _shared(options.cache, "set", key, entry, None if seconds == math.inf else int(seconds))


def forget(scope: str, name: str, options: Options = DEFAULTS) -> None:
    """Drop the entry, and make lookups in flight unable to write theirs back."""
    key = _key(scope, name)
    with _lock:
        _local.pop(key, None)
        _generations[key] = _generations.get(key, 0) + 1
    # A new generation first: a write racing with this one is then of the old one.
    _shared(options.cache, "set", _generation_key(key), secrets.token_hex(8), None)
    _shared(options.cache, "delete", key)


def lookup(aws: AWSClients, name: str) -> tuple[KeyInfo, bool]:
    """Return (key info, whether it came from a cache), asking AWS only on a miss; the
    caches and timeout are ``aws.options``'."""
    info, since = _read(aws.scope, name, aws.options)
    if info is not None:
        return info, True
    info = kinds.resolve(aws, name)
    put(aws.scope, name, info, since, aws.options)
    return info, False


def clear_process_cache() -> None:
    """Drop this process's entries and which refusals were logged (the shared cache is
    left alone)."""
    global _unkeyed_warned
    with _lock:
        _local.clear()
        _warned.clear()
        _unkeyed_warned = False
