"""Names, networks, prefixes and mnemonics are checked before any AWS request."""

from __future__ import annotations

import pytest
from algosdk import account, mnemonic

from confio_kms.algorand import validation
from confio_kms.common import exceptions


@pytest.mark.parametrize(
    "given, name",
    [
        ("confio-testnet-sponsor", "confio-testnet-sponsor"),
        ("alias/confio-mainnet-sponsor", "confio-mainnet-sponsor"),
        ("A_1", "A_1"),
        ("x" * 128, "x" * 128),
    ],
)
def test_alias_names(given: str, name: str) -> None:
    assert validation.alias_name(given) == name


@pytest.mark.parametrize(
    "bad",
    ["", "alias/", "a/b", "..", "../x", "a b", "-x", "_x", "x" * 129, "alias/aws/x", "ü", None],
)
def test_bad_alias_names(bad: object) -> None:
    with pytest.raises(exceptions.InvalidAliasError) as raised:
        validation.alias_name(bad)
    assert isinstance(raised.value, ValueError)
    assert "Fix:" in str(raised.value)


def test_parameter_path_stays_under_the_prefix() -> None:
    prefix = validation.ssm_prefix("/confio/algorand/")
    assert validation.parameter_path(prefix, validation.alias_name("alias/k-1")) == (
        "/confio/algorand/k-1/private-key"
    )


@pytest.mark.parametrize("bad", ["confio", "/", "/a//b", "/a/../b", "/a b", 7])
def test_bad_prefixes(bad: object) -> None:
    with pytest.raises(exceptions.InvalidAliasError, match=r"prefix|segments"):
        validation.ssm_prefix(bad)


def test_networks() -> None:
    assert validation.network_name("betanet") == "betanet"
    with pytest.raises(exceptions.InvalidNetworkError):
        validation.network_name("Mainnet")


def test_mnemonic_round_trip_and_four_letter_prefixes() -> None:
    private_key, _ = account.generate_account()
    phrase = mnemonic.from_private_key(private_key)
    assert validation.private_key_from_mnemonic(phrase) == private_key
    short = " ".join(word[:4] for word in phrase.split())
    assert validation.private_key_from_mnemonic(short) == private_key


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda w: w[:24], "has 24"),
        (lambda w: [*w, "abandon"], "has 26"),
        (lambda w: [*w[:6], "notaword", *w[7:]], "Word 7 "),
        (lambda w: [*w[:24], w[0] if w[24] != w[0] else w[1]], "checksum"),
    ],
)
def test_mnemonic_errors_name_the_cause_not_the_words(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    texts = set()
    for _ in range(2):
        words = mnemonic.from_private_key(account.generate_account()[0]).split()
        with pytest.raises(exceptions.InvalidMnemonicError, match=message) as raised:
            validation.private_key_from_mnemonic(" ".join(mutate(words)))
        assert raised.value.__context__ is None
        texts.add(str(raised.value))
    # Two different phrases give the same message: it carries nothing of the phrase.
    assert len(texts) == 1
