"""Caches what an alias resolves to (key id, address, network, mode).

Two levels: a dictionary in this process, and, when Django settings are
configured, Django's cache framework (``CONFIO_KMS_CACHE``, default ``"default"``),
so processes that share a Redis or Memcached cache share lookups too. Only public
metadata is cached; a stale entry cannot produce a wrong signature because the
signer checks the decrypted key against it and re-resolves on a mismatch.
A failing Django cache is logged and bypassed: signing never depends on it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import asdict
from typing import Any

from . import keys
from .aws import AWSClients
from .keys import KeyInfo

logger = logging.getLogger("confio_kms.cache")

_local: dict[str, KeyInfo] = {}
_lock = threading.Lock()
DEFAULT_TIMEOUT = 24 * 3600


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

        backend = caches[getattr(settings, "CONFIO_KMS_CACHE", "default")]
        return getattr(backend, operation)(key, *args)
    except Exception as error:
        logger.warning("Django cache %s failed, bypassing it: %r", operation, error)
        return None


def get(scope: str, name: str) -> KeyInfo | None:
    key = _key(scope, name)
    with _lock:
        info = _local.get(key)
    if info is not None:
        return info
    raw = _shared("get", key)
    try:
        info = KeyInfo(**raw) if isinstance(raw, dict) else None
    except TypeError:  # an entry written by another version
        info = None
    if info is not None:
        with _lock:
            _local[key] = info
    return info


def put(scope: str, name: str, info: KeyInfo) -> None:
    from django.conf import settings

    key = _key(scope, name)
    with _lock:
        _local[key] = info
    timeout = (
        getattr(settings, "CONFIO_KMS_CACHE_TIMEOUT", DEFAULT_TIMEOUT)
        if settings.configured
        else DEFAULT_TIMEOUT
    )
    _shared("set", key, asdict(info), timeout)


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
    info = keys.resolve(aws, name)
    put(aws.scope, name, info)
    return info, False


def clear_process_cache() -> None:
    """Drop this process's entries (Django's cache is left alone)."""
    with _lock:
        _local.clear()
