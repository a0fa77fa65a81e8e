"""``DjangoCache``: a Django cache as the core's shared cache (``Options.cache``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confio_kms.common.exceptions import ConfigurationError


@dataclass(frozen=True)
class DjangoCache:
    """The Django cache named ``alias``, as ``Options.cache``. Looked up on each use
    (``caches[alias]``: Django's connections are per thread, and ``override_settings``
    of ``CACHES`` takes effect); outside a configured Django, there is none."""

    alias: str

    def _backend(self) -> Any:
        from django.core.cache import caches
        from django.core.exceptions import ImproperlyConfigured

        try:
            return caches[self.alias]
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
