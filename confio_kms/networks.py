"""Algorand's networks: names, genesis hashes and ids, and the group size limit.

The one table of these facts; everything else imports it.
"""

from __future__ import annotations

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
# Transactions in one atomic group.
MAX_GROUP_SIZE = 16
