"""confio_kms: sign Algorand transactions from Django with keys held in AWS KMS."""

from confio_kms.common.exceptions import ConfioKMSError
from confio_kms.core.multisig import KMSMultisigSigner
from confio_kms.core.signer import KMSSigner
from confio_kms.lifecycle.manager import AlgorandKMSManager, CreatedKey, ImportedKey, KeyRecord

__all__ = [
    "AlgorandKMSManager",
    "ConfioKMSError",
    "CreatedKey",
    "ImportedKey",
    "KMSMultisigSigner",
    "KMSSigner",
    "KeyRecord",
]
__version__ = "0.1.0"

from confio_kms.compat import paths as _paths

_paths.install()
