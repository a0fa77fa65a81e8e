"""Caches what an alias resolves to (key id, address, network, kind).

Two levels: a dictionary in this process, and the shared cache of the options
(``Options.cache``: in Django, the cache named by ``CONFIO_KMS_CACHE``, default
``"default"``), so processes that share a Redis or Memcached cache share lookups too. Only public
metadata is cached. A stale entry makes signing fail rather than sign for another
account: the signer checks the decrypted (or KMS) key against it, refuses parameter
paths outside the alias's own, and looks the alias up again when a cached key fails
(``confio_kms.core.signing``). Entries expire after ``Options.cache_timeout`` seconds
(``CONFIO_KMS_CACHE_TIMEOUT``, default 300). A failing shared cache is logged and
bypassed: signing never depends on it.

A rotation (or a creation) ``forget``s the entry: it starts a new generation, in this
process (a counter) and in the shared cache (a random token under its own key). Every
read of a process-local entry first reads the shared generation (one cache get) and
drops the entry if it changed, so every process sharing the cache switches keys on
its next call after the rotation reports done. A lookup notes the generation before it
asks AWS and writes its result only if the generation is still the same; a shared
entry carries the generation it was written in, and a reader ignores an entry of
another generation, so a write that slips in after ``forget`` is never read. The
generation token needs no MAC: a forged one only causes a lookup.

The shared cache is not trusted to say what an alias is: whoever can write it could
otherwise point an alias at another key, another alias's parameter, or another
network. Each shared entry carries an HMAC-SHA256, under ``Options.cache_mac_key`` (in
Django derived from ``SECRET_KEY``), over the cache scope, the alias name, the
generation and every field; an entry that does not verify, names another alias or
is of an unknown kind is a miss (logged once per key), so the alias is looked up in
AWS and the entry rewritten. Without a key, lookups neither read nor write shared
entries (generations are still read and written: that needs no trust). The MAC does
not make a writable cache safe: Django's backends unpickle what they read
(docs/security.md).

Failures are remembered too, in this process only: a signing call that failed with a
key state, access, not-found or address error makes the calls of the next
``FAILURE_SECONDS`` for the same alias fail with a copy of that error and no AWS
request, unless the generation changed meanwhile (``remember_failure``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Container, Mapping
from dataclasses import asdict
from typing import Any, NamedTuple

from confio_kms.common import exceptions as exc
from confio_kms.core.key_info import ENVELOPE, NATIVE, KeyInfo
from confio_kms.core.options import DEFAULT_CACHE_TIMEOUT, DEFAULTS, Options, SharedCache

logger = logging.getLogger("confio_kms.cache")

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
# How long a failure is remembered: long enough that a failing key costs one request
# per second per process, short enough that a recovery is seen within a second.
FAILURE_SECONDS = 1.0
# The kinds an entry may name when the reader does not say (the signing core passes
# the registry, confio_kms.core.kinds.KINDS, which this module does not import).
KNOWN_KINDS = frozenset({ENVELOPE, NATIVE})
# After a shared cache read fails, local entries are used unchecked for this long: a
# cache that is down must not cost every signing call a failing request.
BYPASS_SECONDS = 1.0
_bypass_until = 0.0
# The clock of entries and remembered failures (monotonic; tests drive it).
_clock = time.monotonic


class Generation(NamedTuple):
    """An entry's generation: in this process, and in the shared cache ("" before any
    ``forget``, None when there is none or it could not be read)."""

    local: int
    shared: str | None


class _Entry(NamedTuple):
    expires: float  # on _clock
    info: KeyInfo
    shared: str | None  # the shared generation it was read or written in


class _Failure(NamedTuple):
    expires: float  # on _clock
    error: exc.ConfioKMSError
    since: Generation  # when the failed call started


_local: dict[str, _Entry] = {}
# (key, variant) -> a failure remembered for FAILURE_SECONDS (see remember_failure).
_failures: dict[tuple[str, str], _Failure] = {}


@functools.lru_cache(maxsize=1024)
def _key(scope: str, name: str) -> str:
    # Memcached keys must be short and free of spaces; the scope holds a URL. v4: the
    # authenticated entries (v3's, unauthenticated, are never read). Cached: each
    # signing call needs it twice, and hashing costs about 2 us.
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
        _bypassed(operation, error)
        return None


def _bypassed(operation: str, error: Exception) -> None:
    """Log a failing shared cache, and use local entries unchecked for a moment."""
    global _bypass_until
    logger.warning("shared cache %s failed, bypassing it: %r", operation, error)
    _bypass_until = _clock() + BYPASS_SECONDS


def _shared_generation(raw: object) -> str:
    return raw if isinstance(raw, str) else ""


def _generation_now(options: Options, key: str) -> str | None:
    """The shared generation of ``key`` now; None without a shared cache, or when it
    cannot be read (then nothing is known, and local entries are used as they are)."""
    if options.cache is None or _clock() < _bypass_until:
        return None
    try:
        return _shared_generation(options.cache.get(_generation_key(key)))
    except Exception as error:
        _bypassed("get", error)
        return None


def _decode(raw: object, generation: str, known: Container[str] = KNOWN_KINDS) -> KeyInfo | None:
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
    return info if info.kind in known else None


def _verified(
    raw: object,
    scope: str,
    name: str,
    generation: str,
    mac_key: bytes,
    known: Container[str] = KNOWN_KINDS,
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
    info = _decode(entry, generation, known)
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


def read(
    scope: str, name: str, options: Options = DEFAULTS, known: Container[str] = KNOWN_KINDS
) -> tuple[KeyInfo | None, Generation]:
    """The cached info (None on a miss) and the generation it was read in; an entry
    naming a kind not in ``known`` is a miss.

    A local entry is used only while the shared generation is the one it was read or
    written in (one cache get per call): another process's ``forget`` ends it.
    """
    key = _key(scope, name)
    with _lock:
        entry = _local.get(key)
        local = _generations.get(key, 0)
    if entry is not None and _clock() < entry.expires:
        shared = _generation_now(options, key)
        if shared is None or shared == entry.shared:
            return entry.info, Generation(local, shared)
        with _lock:  # forgotten by another process: stale here too
            if _local.get(key) is entry:
                del _local[key]
    generation_key = _generation_key(key)
    entries = _entries(options)
    found = _shared(
        options.cache,
        "get_many",
        [key, generation_key] if entries is not None else [generation_key],
    )
    if not isinstance(found, dict):
        return None, Generation(local, None)
    shared = _shared_generation(found.get(generation_key))
    if entries is None or options.cache_mac_key is None:
        return None, Generation(local, shared)
    info, problem = _verified(found.get(key), scope, name, shared, options.cache_mac_key, known)
    if problem:
        _refused(key, name, problem)
    if info is not None:
        with _lock:
            if _generations.get(key, 0) == local:
                _local[key] = _Entry(_clock() + options.cache_timeout, info, shared)
    return info, Generation(local, shared)


def get(scope: str, name: str, options: Options = DEFAULTS) -> KeyInfo | None:
    """The cached info of ``name`` (in this process, else in ``options.cache``)."""
    return read(scope, name, options)[0]


def generation(scope: str, name: str, options: Options = DEFAULTS) -> Generation:
    """The entry's generation now: note it before asking AWS, pass it to ``put``."""
    key = _key(scope, name)
    with _lock:
        local = _generations.get(key, 0)
    return Generation(local, _generation_now(options, key))


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
        _local[key] = _Entry(_clock() + seconds, info, now.shared)
    if now.shared is None or _entries(options) is None or options.cache_mac_key is None:
        return  # no (usable) shared cache
    entry = {**asdict(info), _GENERATION: now.shared}
    entry[_MAC] = _mac(options.cache_mac_key, scope, name, entry)
    _shared(options.cache, "set", key, entry, None if seconds == math.inf else int(seconds))


def forget(scope: str, name: str, options: Options = DEFAULTS) -> None:
    """Drop the entry everywhere, and make lookups in flight unable to write theirs
    back; every process sharing the cache looks the alias up on its next call, and
    the failures it remembers for the alias end."""
    key = _key(scope, name)
    with _lock:
        _local.pop(key, None)
        _generations[key] = _generations.get(key, 0) + 1
    # A new generation first: a write racing with this one is then of the old one.
    _shared(options.cache, "set", _generation_key(key), secrets.token_hex(8), None)
    _shared(options.cache, "delete", key)


def remember_failure(
    scope: str, name: str, variant: str, error: exc.ConfioKMSError, since: Generation
) -> None:
    """Remember that a call for ``name`` (and ``variant``: what else the call depended
    on, such as the parameter prefix) started in generation ``since`` failed with
    ``error``: ``remembered_failure`` returns a copy of it for ``FAILURE_SECONDS``."""
    with _lock:
        _failures[(_key(scope, name), variant)] = _Failure(_clock() + FAILURE_SECONDS, error, since)


def remembered_failure(
    scope: str, name: str, variant: str, options: Options = DEFAULTS
) -> exc.ConfioKMSError | None:
    """A fresh copy of the failure remembered for ``name``, or None when there is none,
    it is older than ``FAILURE_SECONDS``, or the entry was forgotten since (in this
    process, or in the shared cache: one get, only while a failure is remembered)."""
    slot = (_key(scope, name), variant)
    with _lock:
        failure = _failures.get(slot)
        local = _generations.get(slot[0], 0)
    if failure is None:
        return None
    if _clock() < failure.expires and local == failure.since.local:
        shared = _generation_now(options, slot[0])
        if shared is None or shared == failure.since.shared:
            return _copy(failure.error)
    with _lock:
        if _failures.get(slot) is failure:
            del _failures[slot]
    return None


def _copy(error: exc.ConfioKMSError) -> exc.ConfioKMSError:
    """The same typed error, message, fix and cause, without the first one's traceback."""
    return type(error)(error.message, fix=error.fix, cause=error.cause)


def clear_process_cache() -> None:
    """Drop this process's entries, remembered failures and which refusals were
    logged (the shared cache is left alone)."""
    global _unkeyed_warned, _bypass_until
    with _lock:
        _local.clear()
        _failures.clear()
        _warned.clear()
        _unkeyed_warned = False
        _bypass_until = 0.0


# Envelope ciphertexts (confio_kms.core.envelope): an SSM SecureString's KMS ciphertext
# and its PARAMETER_ARN, shared under the same HMAC as key entries. The MAC's name says
# what the entry is ("ciphertext|" cannot start an alias name), so neither kind of
# entry can stand for the other, nor for another parameter or key.
_CIPHERTEXT = "ciphertext"


def _ciphertext_name(path: str, key_id: str) -> str:
    return f"{_CIPHERTEXT}|{path}|{key_id}"


def read_ciphertext(
    scope: str, path: str, key_id: str, options: Options = DEFAULTS
) -> tuple[str, str] | None:
    """(base64 ciphertext, parameter ARN) of ``path`` under ``key_id`` from the shared
    cache, if an authentic entry is there; None otherwise (an unverifiable one is logged)."""
    entries = _entries(options)
    if entries is None or options.cache_mac_key is None or _clock() < _bypass_until:
        return None
    name = _ciphertext_name(path, key_id)
    key = _key(scope, name)
    raw = _shared(entries, "get", key)
    if raw is None:
        return None
    if not isinstance(raw, dict) or not all(
        isinstance(field, str) and isinstance(value, str) for field, value in raw.items()
    ):
        _refused(key, name, "is not an entry confio_kms writes")
        return None
    entry = {field: value for field, value in raw.items() if field != _MAC}
    expected = _mac(options.cache_mac_key, scope, name, entry)
    if not hmac.compare_digest(str(raw.get(_MAC, "")).encode(errors="replace"), expected.encode()):
        _refused(key, name, "has a MAC that does not verify (another key, or another entry)")
        return None
    if set(entry) != {"blob", "arn"}:
        _refused(key, name, "is of an unknown layout")
        return None
    return entry["blob"], entry["arn"]


def put_ciphertext(
    scope: str, path: str, key_id: str, blob: str, arn: str, options: Options = DEFAULTS
) -> None:
    """Share the ciphertext of ``path`` under ``key_id`` (authenticated; none without a MAC key)."""
    entries = _entries(options)
    if entries is None or options.cache_mac_key is None:
        return
    name = _ciphertext_name(path, key_id)
    entry = {"blob": blob, "arn": arn}
    entry[_MAC] = _mac(options.cache_mac_key, scope, name, entry)
    seconds = options.cache_timeout
    _shared(entries, "set", _key(scope, name), entry, None if seconds == math.inf else int(seconds))


def forget_ciphertext(scope: str, path: str, key_id: str, options: Options = DEFAULTS) -> None:
    """Drop the shared ciphertext entry (a stale one: it decrypted to another key)."""
    _shared(_entries(options), "delete", _key(scope, _ciphertext_name(path, key_id)))
