"""What an alias resolves to: ``KeyInfo``, the public metadata of its KMS key, and the
kind names.

Plain data with no dependencies, so that what only stores or passes key metadata (the
lookup cache, the audit trail) needs neither the key abstraction (``confio_kms.core.keys``)
nor AWS. ``confio_kms.core.keys`` re-exports both names (their documented path).
"""

from __future__ import annotations

from dataclasses import dataclass

# Kind names; each kind's class is in confio_kms.core.kinds.
ENVELOPE = "envelope"
NATIVE = "native"


@dataclass(frozen=True)
class KeyInfo:
    """Public facts about the KMS key an alias points at.

    ``address`` is the account the key signs for; ``auth_address`` is the key's own
    address, which differs once the account has been rekeyed to this key.
    """

    name: str
    key_id: str
    address: str
    network: str
    kind: str  # the key kind (envelope, native), from its key spec
    auth_address: str = ""
    parameter: str = ""

    @property
    def signer_address(self) -> str:
        """The address whose key this is (the authorizer of the account's transactions)."""
        return self.auth_address or self.address
