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
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import threading
import time
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


class Generation(NamedTuple):
    """An entry's generation: in this process, and in the shared cache ("" before any
    ``forget``, None when there is none or it could not be read)."""

    local: int
    shared: str | None


def _key(scope: str, name: str) -> str:
    # Memcached keys must be short and free of spaces; the scope holds a URL.
    digest = hashlib.sha256(f"{scope}|{name}".encode()).hexdigest()[:24]
    return f"confio_kms:key:v4:{digest}"


def _generation_key(key: str) -> str:
    return key.replace(":key:", ":generation:", 1)


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


def _read(scope: str, name: str, options: Options) -> tuple[KeyInfo | None, Generation]:
    """The cached info (None on a miss) and the generation it was read in."""
    key = _key(scope, name)
    with _lock:
        entry = _local.get(key)
        local = _generations.get(key, 0)
    if entry is not None and time.monotonic() < entry[0]:
        return entry[1], Generation(local, None)
    generation_key = _generation_key(key)
    found = _shared(options.cache, "get_many", [key, generation_key])
    if not isinstance(found, dict):
        return None, Generation(local, None)
    shared = _shared_generation(found.get(generation_key))
    info = _decode(found.get(key), shared)
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
    found = _shared(options.cache, "get_many", [generation_key])
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
    if now.shared is None:  # no shared cache, or it is unavailable: nothing to write there
        return
    entry = {**asdict(info), _GENERATION: now.shared}
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
    """Drop this process's entries (the shared cache is left alone)."""
    with _lock:
        _local.clear()
