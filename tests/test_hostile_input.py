"""Hostile input, property-based: whatever arrives, the answer is a value or a typed
error, and the sponsor never signs anything but its own fee payment."""

from __future__ import annotations

import base64
import re

import boto3
import pytest
from algosdk import encoding, mnemonic, transaction
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from confio_kms import AlgorandKMSManager
from confio_kms.algorand import validation
from confio_kms.common import exceptions
from confio_kms.sandbox import LocalLedger
from confio_kms.sponsor import (
    MAX_ENCODED_TXN_BYTES,
    AlgorandSponsorService,
    decode_user_transactions,
)

from .helpers import new_account

WORDS = sorted(mnemonic.word_to_index)
MNEMONIC_MESSAGES = re.compile(
    r"(A mnemonic must be a string, not \w+\.|"
    r"An Algorand mnemonic has 25 words; this one has \d+\.|"
    r"Word \d+ of the mnemonic is not in Algorand's word list\.|"
    r"The mnemonic's checksum word does not match the other 24 words\.) Fix: .*"
)
SP = LocalLedger.suggested_params()
# derandomize: CI runs the same examples every time, so a red run is reproducible.
HYPOTHESIS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@HYPOTHESIS
@given(
    st.one_of(
        st.text(),
        st.lists(st.sampled_from(WORDS), min_size=20, max_size=30).map(" ".join),
        st.lists(st.sampled_from(WORDS), min_size=25, max_size=25).map(" ".join),
        st.binary(),
        st.none(),
    )
)
def test_mnemonic_parsing_gives_a_key_or_a_fixed_message(phrase: object) -> None:
    try:
        key = validation.private_key_from_mnemonic(phrase)
    except exceptions.InvalidMnemonicError as error:
        assert MNEMONIC_MESSAGES.fullmatch(str(error)), str(error)
        assert error.__context__ is None
    else:
        assert len(base64.b64decode(key)) == 64


@HYPOTHESIS
@given(st.one_of(st.text(), st.text(alphabet="ab/.-_%\\\x00 ")))
def test_alias_names_never_reach_another_parameter(given_alias: str) -> None:
    try:
        name = validation.alias_name(given_alias)
    except exceptions.InvalidAliasError:
        return
    path = validation.parameter_path("/confio/algorand", name)
    assert path.split("/") == ["", "confio", "algorand", name, "private-key"]
    assert ".." not in name and "/" not in name and re.fullmatch(r"[A-Za-z0-9_-]+", name)


def _encoded(txn: transaction.Transaction) -> str:
    return str(encoding.msgpack_encode(txn))


@HYPOTHESIS
@given(
    st.one_of(
        st.none(),
        st.integers(),
        st.text(),
        st.lists(st.text(), max_size=20),
        st.lists(st.binary().map(lambda b: base64.b64encode(b).decode()), max_size=20),
        st.lists(st.integers(), max_size=3),
    )
)
def test_untrusted_transactions_decode_or_are_refused(payload: object) -> None:
    try:
        txns = decode_user_transactions(payload)
    except exceptions.UntrustedInputError as error:
        assert "nothing was signed" in str(error)
    else:
        assert all(isinstance(t, transaction.Transaction) for t in txns)


def test_signed_oversized_and_non_canonical_transactions_are_refused() -> None:
    _, address = new_account()
    txn = transaction.PaymentTxn(address, SP, address, 0)
    signed = transaction.SignedTransaction(txn, base64.b64encode(bytes(64)).decode())
    (decoded,) = decode_user_transactions([_encoded(txn)])
    assert _encoded(decoded) == _encoded(txn)
    with pytest.raises(exceptions.UntrustedInputError, match="already signed"):
        decode_user_transactions([_encoded(signed)])
    big = transaction.PaymentTxn(address, SP, address, 0, note=b"x" * 1000)
    big.note = b"x" * (MAX_ENCODED_TXN_BYTES + 1)
    with pytest.raises(exceptions.UntrustedInputError, match="over 4096 bytes"):
        decode_user_transactions([_encoded(big)])
    raw = base64.b64decode(_encoded(txn))
    extra = base64.b64encode(bytes([raw[0] + 1]) + raw[1:] + b"\xa3zzz\x01").decode()
    with pytest.raises(exceptions.UntrustedInputError, match="canonical"):
        decode_user_transactions([extra])


@st.composite
def user_transactions(draw: st.DrawFn, sponsor: str) -> list[transaction.Transaction]:
    """Half well-formed sponsorship requests, half anything a hostile client may send."""
    users = [new_account()[1] for _ in range(2)]
    if draw(st.booleans()):
        wellformed = []
        for _ in range(draw(st.integers(1, 8))):
            sender, receiver = draw(st.permutations(users))
            txn = transaction.PaymentTxn(sender, SP, receiver, draw(st.integers(0, 10**6)))
            txn.fee = 0
            wellformed.append(txn)
        return wellformed
    txns = []
    for _ in range(draw(st.integers(0, 16))):
        sender = draw(st.sampled_from([*users, sponsor]))
        receiver = draw(st.sampled_from([*users, sponsor]))
        kwargs = {}
        if draw(st.booleans()):
            kwargs["rekey_to"] = draw(st.sampled_from([*users, sponsor]))
        if draw(st.booleans()):
            kwargs["close_remainder_to"] = draw(st.sampled_from([*users, sponsor]))
        txn = transaction.PaymentTxn(sender, SP, receiver, draw(st.integers(0, 10**12)), **kwargs)
        txn.fee = draw(st.sampled_from([0, 0, 0, 1, 1000, 10**9]))
        txns.append(txn)
    return txns


@pytest.mark.parametrize("native", [False, True], ids=["envelope", "native"])
def test_sponsor_only_ever_signs_its_own_fee_payment(
    manager: AlgorandKMSManager, session: boto3.Session, native: bool
) -> None:
    sponsor = manager.create_algorand_key("confio-testnet-sponsor", native=native).address
    with override_settings(USE_KMS_SIGNING=True, ALGORAND_SPONSOR_FEE_CAP=9_000):
        service = AlgorandSponsorService()
    outcomes = {"signed": 0, "refused": 0}

    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(user_transactions(sponsor))
    def check(users: list[transaction.Transaction]) -> None:
        try:
            first, *rest = service.sponsor_group(users, SP)
        except (exceptions.SponsorPolicyError, exceptions.PolicyViolationError):
            outcomes["refused"] += 1
            assert all(t.group is None for t in users)  # untouched
            return
        outcomes["signed"] += 1
        payment = first.transaction
        assert (payment.sender, payment.receiver, payment.amt) == (sponsor, sponsor, 0)
        assert payment.close_remainder_to is None and payment.rekey_to is None
        assert payment.fee == 1000 * (len(users) + 1) <= 9_000
        assert rest == users and all(t.sender != sponsor for t in rest)
        assert all(isinstance(t, transaction.Transaction) for t in rest)  # left unsigned

    check()
    assert outcomes["signed"] > 0 and outcomes["refused"] > 0, outcomes
