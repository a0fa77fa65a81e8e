"""Algorand's networks: names, genesis hashes and ids, and the group size limit.

The one table of these facts; everything else imports it.
"""

from __future__ import annotations

import base64
import binascii

# Genesis hashes (base64) and ids; some public code has mainnet and testnet swapped.
GENESIS_HASH = {
    "mainnet": "wGHE2Pwdvd7S12BL5FaOP20EGYesN73ktiC1qzkkit8=",
    "testnet": "SGO1GKSzyE7IEPItTxCByw9x8FmnrCDexi9/cOUJOiI=",
    "betanet": "mFgazF+2uRS1tMiL9dsj01hJGySEmPN28B/TjjvpVW0=",
}
GENESIS_ID = {"mainnet": "mainnet-v1.0", "testnet": "testnet-v1.0", "betanet": "betanet-v1.0"}
EXPLORER_TX = {
    "mainnet": "https://lora.algokit.io/mainnet/transaction/{txid}",
    "testnet": "https://lora.algokit.io/testnet/transaction/{txid}",
    "betanet": "https://lora.algokit.io/betanet/transaction/{txid}",
}
# localnet: any private network; its genesis hash must be trusted explicitly.
NETWORKS = ("testnet", "mainnet", "betanet", "localnet")
# The networks a deployment switches between with CONFIO_ENV, each with its own alias.
DEPLOYMENT_NETWORKS = ("testnet", "mainnet")
UNKNOWN = "unknown"
# Where real money is: costly or destructive commands ask for confirmation here.
MAINNET = "mainnet"
# Transactions in one atomic group.
MAX_GROUP_SIZE = 16


def genesis_bytes(genesis_hash: object) -> bytes:
    """The 32 bytes a base64 genesis hash stands for, decoded as py-algorand-sdk encodes
    it into the signed transaction (leniently: one hash has many spellings); b"" if none.

    Compare genesis hashes as these bytes, never as strings.
    """
    if not isinstance(genesis_hash, str | bytes):
        return b""
    try:
        raw = base64.b64decode(genesis_hash)
    except (binascii.Error, ValueError):
        return b""
    return raw if len(raw) == 32 else b""


GENESIS_BYTES = {name: genesis_bytes(hash_) for name, hash_ in GENESIS_HASH.items()}
PUBLIC_GENESIS = {raw: name for name, raw in GENESIS_BYTES.items()}
