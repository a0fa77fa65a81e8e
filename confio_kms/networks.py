"""Public constants of Algorand's networks."""

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
