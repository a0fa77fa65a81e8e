"""Delegation's consent names its reach: a delegated logic signature names no genesis
hash, so it is valid on every network, and only "every-network" consents to it."""

from __future__ import annotations

import base64

import pytest
from algosdk import encoding, transaction
from django.test import override_settings
from nacl.signing import VerifyKey

from confio_kms import KMSSigner
from confio_kms import settings as config
from confio_kms.common.exceptions import ConfigurationError, PolicyViolationError
from confio_kms.core.options import Options
from confio_kms.core.policy import SigningPolicy

from .helpers import EnvelopeKey, RequestCounter

PROGRAM = bytes.fromhex("0a8101")  # #pragma version 10; int 1
WHY = "valid on mainnet if the address exists there"


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda: SigningPolicy(allow_delegation=True), "SigningPolicy.allow_delegation"),
        (lambda: Options(allow_delegation=True), "Options.allow_delegation"),
    ],
)
def test_true_alone_is_refused_in_code(build: object, name: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        build()  # type: ignore[operator]
    text = str(refused.value)
    assert f"{name} is True, which no longer consents to logic-signature delegation" in text
    assert WHY in text and f'Fix: Set {name} to "every-network"' in text


@pytest.mark.parametrize("value", [True, "true", "1", "on"])
def test_true_alone_is_refused_as_a_setting(value: object) -> None:
    with override_settings(CONFIO_KMS_ALLOW_DELEGATION=value):
        for read in (config.signing_policy, config.options):
            with pytest.raises(ConfigurationError) as refused:
                read()
            text = str(refused.value)
            assert "CONFIO_KMS_ALLOW_DELEGATION is True" in text and WHY in text
            assert 'Set CONFIO_KMS_ALLOW_DELEGATION to "every-network"' in text


def test_the_consent_and_the_refusal_as_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert config.signing_policy().allow_delegation is False  # the default
    monkeypatch.setenv("CONFIO_KMS_ALLOW_DELEGATION", "every-network")
    assert config.options().allow_delegation == "every-network"
    assert SigningPolicy.of(config.options()).allow_delegation == "every-network"
    with override_settings(CONFIO_KMS_ALLOW_DELEGATION=False):
        assert config.signing_policy().allow_delegation is False
    with (
        override_settings(CONFIO_KMS_ALLOW_DELEGATION="every network please"),
        pytest.raises(ConfigurationError, match="is invalid"),
    ):
        config.options()


def test_other_values_are_no_consent_either() -> None:
    with pytest.raises(ConfigurationError, match="'mainnet', not a consent to"):
        SigningPolicy(allow_delegation="mainnet")  # type: ignore[arg-type]


def test_the_refusal_says_a_delegation_reaches_every_network(
    envelope_key: EnvelopeKey, session: object, counter: RequestCounter
) -> None:
    _, address = envelope_key("delegating")
    lsig = transaction.LogicSigAccount(PROGRAM)
    signer = KMSSigner("delegating", session=session)  # type: ignore[arg-type]
    counter.reset()
    with pytest.raises(PolicyViolationError) as refused:
        lsig.sign_with_signer(signer)
    text = str(refused.value)
    assert "open-ended authority over the account on every network" in text and WHY in text
    assert 'CONFIO_KMS_ALLOW_DELEGATION = "every-network"' in text
    assert 'SigningPolicy(allow_delegation="every-network")' in text
    assert "ssm.GetParameter" not in counter.by_operation()  # nothing was decrypted
    consenting = KMSSigner(
        "delegating",
        session=session,  # type: ignore[arg-type]
        policy=SigningPolicy(allow_delegation="every-network"),
    )
    lsig.sign_with_signer(consenting)
    # The signature covers b"Program" + program: no genesis hash, any network.
    VerifyKey(encoding.decode_address(address)).verify(
        b"Program" + PROGRAM, base64.b64decode(lsig.lsig.sig)
    )
