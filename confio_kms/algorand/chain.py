"""The Algorand network, as the library needs it: parameters, submission, auth addresses.

``AlgodChain`` talks to an algod node; the sandbox provides a ledger-backed
one (``confio_kms.sandbox.LedgerChain``) with the same methods. ``offline_params``
needs no node: parameters for a test transaction that is signed and never submitted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from algosdk import transaction
from algosdk.error import (
    AlgodHTTPError,
    AlgodRequestError,
    AlgodResponseError,
    ConfirmationTimeoutError,
    TransactionRejectedError,
)
from algosdk.v2client import algod

from confio_kms.algorand import networks
from confio_kms.common import exceptions

T = TypeVar("T")


class Chain(Protocol):
    def current_round(self) -> int: ...

    def suggested_params(self) -> transaction.SuggestedParams: ...

    def submit(self, signed: transaction.GenericSignedTransaction) -> int:
        """Send and wait for confirmation; return the confirmed round."""
        ...

    def auth_address(self, address: str) -> str | None:
        """The address the account is rekeyed to, or None if it signs for itself."""
        ...


class AlgodChain:
    """An algod node (``ALGOD_ADDRESS``, ``ALGOD_TOKEN``)."""

    def __init__(self, address: str, token: str = "", wait_rounds: int = 10) -> None:
        self.client = algod.AlgodClient(token, address)
        self.wait_rounds = wait_rounds

    def current_round(self) -> int:
        status = self._ask("status", self.client.status)
        return int(status.get("last-round", 0)) if isinstance(status, dict) else 0

    def suggested_params(self) -> transaction.SuggestedParams:
        params: transaction.SuggestedParams = self._ask(
            "suggested_params", self.client.suggested_params
        )
        return params

    def submit(self, signed: transaction.GenericSignedTransaction) -> int:
        txid = self._ask("send_transaction", lambda: self.client.send_transaction(signed))
        result: dict[str, Any] = self._ask(
            "wait_for_confirmation",
            lambda: transaction.wait_for_confirmation(self.client, txid, self.wait_rounds),
        )
        return int(result.get("confirmed-round", 0))

    def auth_address(self, address: str) -> str | None:
        info = self._ask("account_info", lambda: self.client.account_info(address))
        auth = info.get("auth-addr") if isinstance(info, dict) else None
        return str(auth) if auth else None

    def _ask(self, what: str, request: Callable[[], T]) -> T:
        try:
            return request()
        except (
            AlgodHTTPError,
            AlgodRequestError,
            AlgodResponseError,
            ConfirmationTimeoutError,
            TransactionRejectedError,
            OSError,
        ) as error:
            raise exceptions.AlgodError(
                f"algod at {self.client.algod_address} failed {what}.",
                fix="Check ALGOD_ADDRESS, ALGOD_TOKEN and that the node is synced, then retry.",
                cause=" ".join(str(error).split())[:300],
            ) from error


def offline_params(network: str) -> transaction.SuggestedParams:
    """Parameters good enough to sign a test transaction nobody submits (``kms_test_sign``
    without ``--submit``, ``kms_doctor``'s test signature): ``network``'s genesis, or
    testnet's for a network without a known one."""
    return transaction.SuggestedParams(
        fee=1000,
        first=1,
        last=1000,
        gh=networks.GENESIS_HASH.get(network, networks.GENESIS_HASH["testnet"]),
        gen=networks.GENESIS_ID.get(network, networks.GENESIS_ID["testnet"]),
        flat_fee=True,
        min_fee=1000,
    )
