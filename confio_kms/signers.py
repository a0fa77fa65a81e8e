"""The Django app's signer and manager: the core classes, configured by the settings.

``confio_kms.KMSSigner`` and ``confio_kms.AlgorandKMSManager`` (the package's
top-level names, also ``confio_kms.compat``'s and the factory's) are these. Each is
its core class (``confio_kms.core.signer.KMSSigner``,
``confio_kms.lifecycle.manager.AlgorandKMSManager``) whose ``options`` default to the
settings' (``confio_kms.settings.options()``), read when the object is built: the
timeouts, the shared cache, the audit rows, the aliases' networks, the signing policy,
``KMS_REGION``. Passing ``options=`` makes them read no setting at all. A worker or
script outside Django uses the core classes directly, with explicit ``Options``.
"""

from __future__ import annotations

import boto3

from confio_kms import settings as config
from confio_kms.algorand.validation import DEFAULT_SSM_PREFIX
from confio_kms.core import signer as core_signer
from confio_kms.core.options import Options
from confio_kms.core.policy import SigningPolicy
from confio_kms.lifecycle import manager as core_manager

__all__ = ["AlgorandKMSManager", "KMSSigner"]


class KMSSigner(core_signer.KMSSigner):
    """``confio_kms.core.signer.KMSSigner`` with ``options`` defaulting to the settings'
    (read now, when the signer is built)."""

    def __init__(
        self,
        key_alias: str,
        region_name: str | None = None,
        *,
        endpoint_url: str | None = None,
        session: boto3.Session | None = None,
        ssm_prefix: str = DEFAULT_SSM_PREFIX,
        policy: SigningPolicy | None = None,
        options: Options | None = None,
    ) -> None:
        super().__init__(
            key_alias,
            region_name,
            endpoint_url=endpoint_url,
            session=session,
            ssm_prefix=ssm_prefix,
            policy=policy,
            options=options if options is not None else config.options(),
        )


class AlgorandKMSManager(core_manager.AlgorandKMSManager):
    """``confio_kms.lifecycle.manager.AlgorandKMSManager`` with ``options`` defaulting to
    the settings' (read now, when the manager is built)."""

    def __init__(
        self,
        region_name: str | None = None,
        *,
        endpoint_url: str | None = None,
        session: boto3.Session | None = None,
        ssm_prefix: str = DEFAULT_SSM_PREFIX,
        options: Options | None = None,
    ) -> None:
        super().__init__(
            region_name,
            endpoint_url=endpoint_url,
            session=session,
            ssm_prefix=ssm_prefix,
            options=options if options is not None else config.options(),
        )
