"""confio_kms: sign Algorand transactions from Django with keys held in AWS KMS.

``KMSSigner`` and ``AlgorandKMSManager`` here are the Django app's (``confio_kms.signers``:
configured by the settings when built without ``options``). Without Django, use
``confio_kms.core.signer.KMSSigner`` and ``confio_kms.lifecycle.manager.AlgorandKMSManager``
with ``confio_kms.core.options.Options``.
"""

from confio_kms.common.exceptions import ConfioKMSError
from confio_kms.core.multisig import KMSMultisigSigner
from confio_kms.core.options import Options
from confio_kms.lifecycle.manager import CreatedKey, ImportedKey, KeyRecord
from confio_kms.signers import AlgorandKMSManager, KMSSigner

__all__ = [
    "AlgorandKMSManager",
    "ConfioKMSError",
    "CreatedKey",
    "ImportedKey",
    "KMSMultisigSigner",
    "KMSSigner",
    "KeyRecord",
    "Options",
]
__version__ = "0.1.0"

from confio_kms.compat import paths as _paths

_paths.install()
