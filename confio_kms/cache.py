"""Caches what an alias resolves to (key id, address, network, mode).

Two levels: a dictionary in this process, and, when Django settings are
configured, Django's cache framework (``CONFIO_KMS_CACHE``, default ``"default"``),
so processes that share a Redis or Memcached cache share lookups too. Only public
metadata is cached. A stale entry makes signing fail rather than sign for another
account: the signer checks the decrypted (or KMS) key against it, refuses parameter
paths outside the alias's own, and re-resolves on a mismatch. Entries expire after
``CONFIO_KMS_CACHE_TIMEOUT`` seconds (default 300), so a rotation made by another
process is picked up; a rotation also drops the shared entry at once.
A failing Django cache is logged and bypassed: signing never depends on it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from dataclasses import asdict
from typing import Any

from . import config, kinds
from .aws import AWSClients
from .exceptions import ConfigurationError
from .keys import KeyInfo

logger = logging.getLogger("confio_kms.cache")

_local: dict[str, tuple[float, KeyInfo]] = {}  # key -> (expires at, info)
_lock = threading.Lock()
DEFAULT_TIMEOUT = config.DEFAULT_CACHE_TIMEOUT


def _key(scope: str, name: str) -> str:
    # Memcached keys must be short and free of spaces; the scope holds a URL.
    digest = hashlib.sha256(f"{scope}|{name}".encode()).hexdigest()[:24]
    return f"confio_kms:key:v2:{digest}"


def _shared(operation: str, key: str, *args: Any) -> Any:
    """Run ``operation`` on Django's cache if one is configured; None otherwise."""
    from django.conf import settings

    if not settings.configured:
        return None
    try:
        from django.core.cache import caches

        backend = caches[config.cache_alias()]
        return getattr(backend, operation)(key, *args)
    except Exception as error:
        logger.warning("Django cache %s failed, bypassing it: %r", operation, error)
        return None


def get(scope: str, name: str) -> KeyInfo | None:
    key = _key(scope, name)
    with _lock:
        entry = _local.get(key)
    if entry is not None and time.monotonic() < entry[0]:
        return entry[1]
    raw = _shared("get", key)
    try:
        info = KeyInfo(**raw) if isinstance(raw, dict) else None
    except TypeError:  # an entry written by another version
        info = None
    if info is not None:
        with _lock:
            _local[key] = (time.monotonic() + timeout(), info)
    return info


def timeout() -> float:
    """Seconds to keep an entry; ``None`` in settings means never expire (Django's way)."""
    try:
        return config.cache_timeout()
    except ConfigurationError as error:  # signing must not stop over the cache's lifetime
        logger.warning("%s Using %s seconds.", error.message, DEFAULT_TIMEOUT)
        return DEFAULT_TIMEOUT


def put(scope: str, name: str, info: KeyInfo) -> None:
    key = _key(scope, name)
    seconds = timeout()
    with _lock:
        _local[key] = (time.monotonic() + seconds, info)
    _shared("set", key, asdict(info), None if seconds == math.inf else int(seconds))


def forget(scope: str, name: str) -> None:
    key = _key(scope, name)
    with _lock:
        _local.pop(key, None)
    _shared("delete", key)


def lookup(aws: AWSClients, name: str) -> tuple[KeyInfo, bool]:
    """Return (key info, whether it came from a cache), asking AWS only on a miss."""
    info = get(aws.scope, name)
    if info is not None:
        return info, True
    info = kinds.resolve(aws, name)
    put(aws.scope, name, info)
    return info, False


def clear_process_cache() -> None:
    """Drop this process's entries (Django's cache is left alone)."""
    with _lock:
        _local.clear()
