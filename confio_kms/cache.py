"""Caches what an alias resolves to (key id, address, network, mode).

Two levels: a dictionary in this process, and, when Django settings are
configured, Django's cache framework (``CONFIO_KMS_CACHE``, default ``"default"``),
so processes that share a Redis or Memcached cache share lookups too. Only public
metadata is cached; a stale entry cannot produce a wrong signature because the
signer checks the decrypted key against it and re-resolves on a mismatch.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import asdict
from typing import Any

from . import keys
from .aws import AWSClients
from .keys import KeyInfo

_local: dict[str, KeyInfo] = {}
_lock = threading.Lock()
DEFAULT_TIMEOUT = 24 * 3600


def _key(scope: str, name: str) -> str:
    # Memcached keys must be short and free of spaces; the scope holds a URL.
    digest = hashlib.sha256(f"{scope}|{name}".encode()).hexdigest()[:24]
    return f"confio_kms:key:v1:{digest}"


def _django_cache() -> Any | None:
    try:
        from django.conf import settings

        if not settings.configured:
            return None
        from django.core.cache import caches

        return caches[getattr(settings, "CONFIO_KMS_CACHE", "default")]
    except Exception:  # no Django project, or a broken cache: the process level suffices
        return None


def get(scope: str, name: str) -> KeyInfo | None:
    key = _key(scope, name)
    with _lock:
        info = _local.get(key)
    if info is not None:
        return info
    cache = _django_cache()
    if cache is None:
        return None
    try:
        raw = cache.get(key)
    except Exception:
        return None
    if not isinstance(raw, dict):
        return None
    try:
        info = KeyInfo(**raw)
    except TypeError:
        return None
    with _lock:
        _local[key] = info
    return info


def put(scope: str, name: str, info: KeyInfo) -> None:
    key = _key(scope, name)
    with _lock:
        _local[key] = info
    cache = _django_cache()
    if cache is not None:
        try:
            from django.conf import settings

            timeout = getattr(settings, "CONFIO_KMS_CACHE_TIMEOUT", DEFAULT_TIMEOUT)
            cache.set(key, asdict(info), timeout)
        except Exception:
            pass


def forget(scope: str, name: str) -> None:
    key = _key(scope, name)
    with _lock:
        _local.pop(key, None)
    cache = _django_cache()
    if cache is not None:
        try:
            cache.delete(key)
        except Exception:
            pass


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
