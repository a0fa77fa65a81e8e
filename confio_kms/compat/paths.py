"""Module paths of releases before the package was split into folders.

``import confio_kms.keys`` (or ``from confio_kms.signer import KMSSigner``) keeps
working: the old name is the new module itself, not a copy, so patching either name
patches both. Installed by ``confio_kms/__init__.py``; docs/upgrading.md lists the moves.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

# Old module (under confio_kms) -> where it lives now.
MOVED = {
    "exceptions": "common.exceptions",
    "redaction": "common.redaction",
    "progress": "common.progress",
    "networks": "algorand.networks",
    "validation": "algorand.validation",
    "chain": "algorand.chain",
    "aws": "core.aws",
    "coalescing": "core.coalescing",
    "keys": "core.keys",
    "envelope": "core.envelope",
    "native": "core.native",
    "kinds": "core.kinds",
    "cache": "core.cache",
    "policy": "core.policy",
    "audit": "core.audit",
    "signing": "core.signing",
    # The Django app's KMSSigner (settings by default), as confio_kms.signer's was.
    "signer": "signers",
    "multisig": "core.multisig",
    "manager": "lifecycle.manager",
    "rotation": "lifecycle.rotation",
    "iam": "lifecycle.policies",
    "doctor": "ops.doctor",
    "permissions": "ops.permissions",
    "cloudtrail": "ops.cloudtrail",
    "cost": "ops.cost",
    "sandbox_ed25519": "sandbox.ed25519",
    "config": "settings",
    "conf": "factory",
}


class _OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``confio_kms.<old>`` and answers with the module at its new path."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, old = fullname.partition(".")
        if package != "confio_kms" or old not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(f"confio_kms.{MOVED[spec.name.partition('.')[2]]}")
        # The import system stamps the alias's spec on the module it gets; keep the real
        # one (exec_module puts it back).
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._spec


def install() -> None:
    if not any(isinstance(finder, _OldPaths) for finder in sys.meta_path):
        sys.meta_path.append(_OldPaths())
