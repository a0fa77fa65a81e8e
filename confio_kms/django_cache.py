"""``DjangoCache``: a Django cache as the core's shared cache (``Options.cache``)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from confio_kms.common.exceptions import ConfigurationError


@functools.cache
def _caches() -> Any:
    """Django's cache handler, imported when first used (an import statement on every
    shared cache read cost about 6 us: one read per signing call)."""
    from django.core.cache import caches

    return caches


@dataclass(frozen=True)
class DjangoCache:
    """The Django cache named ``alias``, as ``Options.cache``. Looked up on each use
    (``caches[alias]``: Django's connections are per thread, and ``override_settings``
    of ``CACHES`` takes effect); outside a configured Django, there is none."""

    alias: str

    def _backend(self) -> Any:
        try:
            return _caches()[self.alias]
        except ImproperlyConfigured:  # Django's settings are not configured
            raise ConfigurationError(
                "Django settings are not configured, so there is no Django cache.",
                fix="Configure Django, or build Options(cache=None) for the process only.",
            ) from None

    def get(self, key: str, default: Any = None) -> Any:
        return self._backend().get(key, default)

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        return dict(self._backend().get_many(keys))

    def set(self, key: str, value: Any, timeout: int | None = None) -> Any:
        return self._backend().set(key, value, timeout)

    def delete(self, key: str) -> Any:
        return self._backend().delete(key)
