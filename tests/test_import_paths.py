"""Every import path the docs name works, and so does every module path of earlier
releases (the same module object at its new path)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from confio_kms.compat.paths import MOVED
from confio_kms.core import telemetry

DOCS = Path(__file__).resolve().parent.parent / "docs"
DOTTED = re.compile(r"\bconfio_kms(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
# Logger names, not import paths.
LOGGERS = {"confio_kms.audit", "confio_kms.cache", "confio_kms.keys", "confio_kms.manager"}
# OpenTelemetry span and metric names (docs/deployment.md), not import paths.
TELEMETRY = {telemetry.SPAN, *telemetry.METRICS}


def resolve(dotted: str) -> object:
    """Import the longest module prefix of ``dotted``, then look the rest up on it."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            found = getattr(found, name)
        return found
    raise ModuleNotFoundError(dotted)


def documented() -> list[str]:
    found = set()
    for page in ("api.md", "upgrading.md"):
        found |= set(DOTTED.findall((DOCS / page).read_text()))
    # System check ids (confio_kms.E020) are not paths either.
    return sorted(
        d for d in found - LOGGERS - TELEMETRY if not re.fullmatch(r"confio_kms\.[EW]\d+", d)
    )


def test_the_docs_name_paths() -> None:
    assert len(documented()) > 20


@pytest.mark.parametrize("dotted", documented())
def test_each_documented_path_imports(dotted: str) -> None:
    assert resolve(dotted) is not None


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_an_earlier_module_path_is_the_module_at_its_new_path(old: str, new: str) -> None:
    assert importlib.import_module(f"confio_kms.{old}") is importlib.import_module(
        f"confio_kms.{new}"
    )


def test_names_import_from_earlier_paths() -> None:
    from confio_kms.conf import kms_signer
    from confio_kms.keys import KeyInfo
    from confio_kms.signer import KMSSigner

    import confio_kms
    from confio_kms.core import keys

    assert KMSSigner is confio_kms.KMSSigner
    # Defined in core.key_info (plain data, below AWS); core.keys is its documented path.
    assert KeyInfo is keys.KeyInfo
    assert KeyInfo.__module__ == "confio_kms.core.key_info"
    assert kms_signer.__module__ == "confio_kms.factory"
