"""What the original deployment and earlier releases named, kept working.

``kms_manager``: the names of Confío's original ``blockchain/kms_manager.py``
(re-exported here, so ``from confio_kms.compat import KMSSigner`` works as documented).
``paths``: the module paths of releases before the package was split into folders.
"""

from confio_kms.compat.kms_manager import (
    AlgorandKMSManager,
    KMSSigner,
    KMSTransactionSigner,
    NativeKMSSigner,
    get_kms_signer_from_settings,
)

__all__ = [
    "AlgorandKMSManager",
    "KMSSigner",
    "KMSTransactionSigner",
    "NativeKMSSigner",
    "get_kms_signer_from_settings",
]
