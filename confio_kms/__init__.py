"""confio_kms: sign Algorand transactions from Django with keys held in AWS KMS."""

from .exceptions import ConfioKMSError
from .manager import AlgorandKMSManager, CreatedKey, ImportedKey, KeyRecord
from .multisig import KMSMultisigSigner
from .signer import KMSSigner

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
