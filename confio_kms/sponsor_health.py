"""Sponsor health: the sponsor account's balance against a floor, its fees and its runway.

The floor is ``CONFIO_KMS_SPONSOR_MIN_BALANCE`` (microalgos; 0, the default, means none).
Three things use it:

- ``BalanceGuard``: the sponsor service (``confio_kms.sponsor``) refuses to sign a
  sponsor payment whose fee would leave the account under the floor, or under the
  minimum balance Algorand makes it keep, with ``SponsorBalanceError`` before any
  signing request, rather than have the group fail on chain.
- the deploy check ``confio_kms.W030`` (``manage.py check --deploy`` only: it reads the
  balance over the network);
- ``manage.py kms_sponsor_status``: balance, minimum balance, fees in a trailing window,
  runway (``sponsor_status``).

Every balance read goes through a ``BalanceGuard``, which sends the
``confio_kms.signals.sponsor_balance_crossed`` signal when the balance crosses the floor.

Where the balance comes from (a ``BalanceSource``): algod's account endpoint
(``AlgodBalances``: ``ALGOD_ADDRESS``/``ALGOD_TOKEN``, one ``GET /v2/accounts/{address}``
per read, giving ``amount`` and ``min-balance``), or on the sandbox (``CONFIO_SANDBOX``)
the process's sandbox ledger (``LedgerBalances``: algojig has no account query, so the
minimum balance is computed with Algorand's consensus parameters from what the ledger
holds). Pass any object with ``account(address) -> AccountBalance`` to use another.

Fees come from the audit rows (``CONFIO_KMS_AUDIT_DB``): each ``SigningRecord`` carries
the fees of what it signed (rows from before migration 0003 count 0). What was signed
but never submitted counts as spent: the figures are an upper bound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from confio_kms import factory as conf
from confio_kms import guardrails
from confio_kms import settings as config
from confio_kms.common import exceptions
from confio_kms.signals import sponsor_balance_crossed

# How long a balance read serves the sponsor service: one algod round trip per this
# many seconds (per process and address), not one per sponsored group.
DEFAULT_BALANCE_TTL = 5.0
DEFAULT_WINDOW_DAYS = 7

# Algorand's consensus parameters for the minimum balance (go-algorand config/consensus.go).
MIN_BALANCE = 100_000
ASSET_MIN_BALANCE = 100_000
APP_MIN_BALANCE = 100_000  # AppFlatParamsMinBalance and AppFlatOptInMinBalance
SCHEMA_UINT_MIN_BALANCE = 25_000 + 3_500
SCHEMA_BYTES_MIN_BALANCE = 25_000 + 25_000


@dataclass(frozen=True)
class AccountBalance:
    """An account's microalgos and the minimum balance Algorand makes it keep."""

    address: str
    amount: int
    min_balance: int


class BalanceSource(Protocol):
    def account(self, address: str) -> AccountBalance: ...


class AlgodBalances:
    """An algod node's account endpoint: one HTTP request per ``account`` call."""

    def __init__(self, address: str, token: str = "") -> None:
        from algosdk.v2client import algod

        self.client = algod.AlgodClient(token, address)
        self.where = f"algod at {address}"

    def account(self, address: str) -> AccountBalance:
        from algosdk.error import AlgodHTTPError, AlgodRequestError, AlgodResponseError

        try:
            info: Any = self.client.account_info(address, exclude="all")
            return AccountBalance(address, int(info["amount"]), int(info["min-balance"]))
        except (AlgodHTTPError, AlgodRequestError, AlgodResponseError, OSError) as error:
            cause = " ".join(str(error).split())[:300]
        except (KeyError, TypeError, ValueError) as error:
            cause = f"no amount or min-balance in the answer ({type(error).__name__})"
        raise exceptions.AlgodError(
            f"{self.where} did not give the balance of {address}.",
            fix="Check ALGOD_ADDRESS, ALGOD_TOKEN and that the node is synced, then retry.",
            cause=cause,
        )


class LedgerBalances:
    """The sandbox ledger (``confio_kms.sandbox.LocalLedger``), read in process."""

    where = "the sandbox ledger"

    def __init__(self, ledger: Any) -> None:
        self.ledger = ledger

    def account(self, address: str) -> AccountBalance:
        jig = self.ledger.jig
        state = jig.accounts.get(address, {})
        assets = len([a for a in state.get("balances", {}) if a])
        minimum = MIN_BALANCE + ASSET_MIN_BALANCE * assets
        schemas = [jig.apps[a] for a in state.get("local_states", {}) if a in jig.apps]
        minimum += sum(_app_minimum(a["local_ints"], a["local_bytes"]) for a in schemas)
        created = [a for a in jig.apps.values() if a.get("creator") == address]
        minimum += sum(_app_minimum(a["global_ints"], a["global_bytes"]) for a in created)
        return AccountBalance(address, self.ledger.balance(address), minimum)


def _app_minimum(ints: int, byte_slices: int) -> int:
    return APP_MIN_BALANCE + SCHEMA_UINT_MIN_BALANCE * ints + SCHEMA_BYTES_MIN_BALANCE * byte_slices


def balances_from_settings(address: str, network: str | None = None) -> BalanceSource:
    """algod (``ALGOD_ADDRESS``) or, with ``CONFIO_SANDBOX`` on, this process's sandbox
    ledger with ``address`` funded as every sandbox command funds it (10 ALGO)."""
    if config.kms_settings().sandbox:
        chain: Any = conf.algorand_chain(
            fund=address, network=network or config.kms_settings().confio_env
        )
        return LedgerBalances(chain.ledger)
    algod_address, token = config.algod()
    if not algod_address:
        raise exceptions.ConfigurationError(
            "Reading the sponsor's balance needs an algod node and ALGOD_ADDRESS is not set.",
            fix=f"Set ALGOD_ADDRESS (and ALGOD_TOKEN) in {config.places('ALGOD_ADDRESS')}; "
            "the floor (CONFIO_KMS_SPONSOR_MIN_BALANCE) and kms_sponsor_status read it.",
        )
    return AlgodBalances(algod_address, token)


@dataclass
class _Reading:
    balance: AccountBalance
    at: float
    spent: int = 0  # fees this guard let through since the read


# Which side of its floor each address was on at its last read, per process.
_below: dict[tuple[str, int], bool] = {}
_below_lock = threading.Lock()


def reset() -> None:
    """Forget the last side of the floor of every address (as in a fresh process)."""
    with _below_lock:
        _below.clear()


@dataclass
class BalanceGuard:
    """Reads the sponsor's balance (at most once per ``ttl`` seconds and address for
    ``require``) and refuses payments that would take it under the floor.

    ``source``: where balances come from; None builds ``balances_from_settings`` at the
    first read. Between reads the guard subtracts the fees it let through, so a burst
    within ``ttl`` cannot overspend what this process knows; other processes' spending
    is seen at the next read.
    """

    floor: int
    source: BalanceSource | None = None
    ttl: float = DEFAULT_BALANCE_TTL
    clock: Callable[[], float] = time.monotonic
    _readings: dict[str, _Reading] = field(default_factory=dict, repr=False)
    # Reentrant: a signal receiver may ask the same guard again.
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def read(self, address: str) -> AccountBalance:
        """A fresh read (one request to the source); sends the signal on a crossing."""
        if self.source is None:
            self.source = balances_from_settings(address)
        balance = self.source.account(address)
        self._observe(balance)
        return balance

    def require(self, address: str, spend: int) -> None:
        """Raise ``SponsorBalanceError`` unless paying ``spend`` keeps ``address`` at or
        over both the floor and its minimum balance; count it as spent otherwise."""
        with self._lock:  # one read per ttl, however many threads sponsor at once
            reading = self._readings.get(address)
            if reading is None or self.clock() - reading.at >= self.ttl:
                reading = _Reading(self.read(address), self.clock())
                self._readings[address] = reading
            left = reading.balance.amount - reading.spent - spend
            threshold = max(self.floor, reading.balance.min_balance)
            if left < threshold:
                raise _refusal(reading, spend, self.floor)
            reading.spent += spend

    def release(self, address: str, spend: int) -> None:
        """Give back ``spend`` counted by ``require`` (the signing then failed)."""
        with self._lock:
            reading = self._readings.get(address)
            if reading is not None:
                reading.spent = max(0, reading.spent - spend)

    def _observe(self, balance: AccountBalance) -> None:
        below = balance.amount < self.floor
        key = (balance.address, self.floor)
        with _below_lock:
            crossed = _below.get(key, False) != below
            _below[key] = below
        if crossed:
            sponsor_balance_crossed.send(
                sender=BalanceGuard,
                guard=self,
                address=balance.address,
                balance=balance.amount,
                min_balance=balance.min_balance,
                floor=self.floor,
                below=below,
            )


def _refusal(reading: _Reading, spend: int, floor: int) -> exceptions.SponsorBalanceError:
    balance = reading.balance
    threshold = max(floor, balance.min_balance)
    which = "the floor" if floor >= balance.min_balance else "its minimum balance"
    since = f" ({reading.spent} already paid since)" if reading.spent else ""
    return exceptions.SponsorBalanceError(
        f"The sponsor account {balance.address} held {balance.amount} microalgos when "
        f"last read{since}; paying {spend} would leave it under {which}: floor "
        f"{floor} (CONFIO_KMS_SPONSOR_MIN_BALANCE), minimum balance {balance.min_balance}; "
        "nothing was signed.",
        fix=f"Fund the sponsor address {balance.address} with at least "
        f"{threshold + spend + reading.spent - balance.amount} microalgos more.",
    )


def guard_from_settings() -> BalanceGuard | None:
    """The sponsor service's guard: None (no floor, no balance reads) unless
    ``CONFIO_KMS_SPONSOR_MIN_BALANCE`` is over 0."""
    floor = config.sponsor_min_balance()
    return BalanceGuard(floor) if floor else None


@dataclass(frozen=True)
class FeeWindow:
    """What the audit rows say a key signed in the trailing window."""

    days: float
    since: datetime
    calls: int
    transactions: int
    fees: int


def fees_in_window(address: str, days: float = DEFAULT_WINDOW_DAYS) -> FeeWindow:
    """Fees of what ``address``'s key signed (outcome ``signed``) in the last ``days``."""
    from django.db.models import Count, F, Sum, Value
    from django.db.models.functions import Coalesce, Length, Replace
    from django.utils import timezone

    from confio_kms.models import SigningRecord

    since = timezone.now() - timedelta(days=days)
    rows = SigningRecord.objects.filter(address=address, outcome="signed", created__gte=since)
    # Transaction ids are space-separated: one more id than spaces.
    ids = Length("txids") - Length(Replace("txids", Value(" "), Value(""))) + 1
    totals = rows.exclude(txids="").aggregate(
        calls=Count("id"), transactions=Coalesce(Sum(ids), 0), fees=Coalesce(Sum(F("fee")), 0)
    )
    return FeeWindow(
        days, since, int(totals["calls"]), int(totals["transactions"]), int(totals["fees"])
    )


def limits_in_use(alias: str, address: str) -> list[dict[str, Any]]:
    """The key's spend and rate limits (``CONFIO_KMS_LIMITS``) that are set, each with
    what its current window has used (``guardrails.usage``): ``name``, ``used``,
    ``limit``, ``window`` and ``window_start``. None for the legacy mnemonic's account,
    or with ``CONFIO_KMS_GUARD`` off (nothing is counted then)."""
    limits = config.limits().get(alias) if alias and config.guard_on() else None
    if limits is None:
        return []
    return guardrails.usage(alias, limits)


@dataclass(frozen=True)
class SponsorAccount:
    alias: str  # "" for the legacy mnemonic's account
    address: str
    network: str


def sponsor_account(name: str | None = None) -> SponsorAccount:
    """The key ``name`` (an alias), else the sponsor the settings select: the active
    network's KMS key with ``USE_KMS_SIGNING`` on, else ``ALGORAND_SPONSOR_ADDRESS``."""
    settings = config.kms_settings()
    if name or settings.use_kms_signing:
        signer = conf.kms_signer(name)
        return SponsorAccount(signer.name, signer.address, signer.network)
    address = config.configured_sponsor_address()
    if not address:
        raise exceptions.ConfigurationError(
            "USE_KMS_SIGNING is off and no ALGORAND_SPONSOR_ADDRESS is configured, so the "
            "sponsor account is unknown.",
            fix="Name the key's alias, turn USE_KMS_SIGNING on, or set "
            f"ALGORAND_SPONSOR_ADDRESS in {config.places('ALGORAND_SPONSOR_ADDRESS')}.",
        )
    return SponsorAccount("", address, settings.confio_env)


def sponsor_status(
    account: SponsorAccount, days: float = DEFAULT_WINDOW_DAYS, source: BalanceSource | None = None
) -> dict[str, Any]:
    """Balance, minimum balance, floor, fees in the last ``days`` and the runway, as
    ``kms_sponsor_status --json`` prints it (one balance read; fees need
    ``CONFIO_KMS_AUDIT_DB``, else they and the runway are null)."""
    floor = config.sponsor_min_balance()
    source = source or balances_from_settings(account.address, account.network)
    balance = BalanceGuard(floor, source).read(account.address)
    spendable = max(0, balance.amount - max(floor, balance.min_balance))
    window = fees_in_window(account.address, days) if config.audit_db() else None
    per_day = window.fees / days if window and window.fees else None
    per_txn = window.fees / window.transactions if window and window.transactions else None
    return {
        "alias": account.alias or None,
        "address": account.address,
        "network": account.network,
        "balance_source": getattr(source, "where", type(source).__name__),
        "balance": balance.amount,
        "min_balance": balance.min_balance,
        "floor": floor,
        "below_floor": balance.amount < floor,
        "spendable": spendable,
        "window_days": days,
        "fees": None
        if window is None
        else {"calls": window.calls, "transactions": window.transactions, "fees": window.fees},
        "fees_per_day": per_day,
        "average_fee_per_transaction": per_txn,
        "runway_days": spendable / per_day if per_day else None,
        # Exact integers: spendable / (fees / transactions), rounded down.
        "runway_transactions": spendable * window.transactions // window.fees
        if window and window.fees and window.transactions
        else None,
        "limits": limits_in_use(account.alias, account.address),
    }
