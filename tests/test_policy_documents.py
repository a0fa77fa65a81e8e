"""lifecycle.policy_documents: kms_policy's choice of documents, called from code."""

from __future__ import annotations

import pytest

from confio_kms.common import exceptions
from confio_kms.lifecycle import policies as iam
from confio_kms.lifecycle.policy_documents import (
    KEY_POLICY,
    MANAGED_POLICY_LIMIT,
    RUNTIME,
    policy_documents,
)

ACCOUNT = "123456789012"
PREFIX = "/confio/algorand"


def test_both_iam_policies_by_default_each_alias_once() -> None:
    chosen = policy_documents(["alias/a-key", "a-key", "b-key"], "eu-central-2", PREFIX)

    assert chosen.aliases == ["a-key", "b-key"] and chosen.account == "*"
    assert chosen.documents == iam.policies(["a-key", "b-key"], "eu-central-2", PREFIX, "*")
    assert chosen.warnings == []


def test_one_document_alone() -> None:
    runtime = policy_documents(["a-key"], "eu-central-2", PREFIX, ACCOUNT, only=RUNTIME)
    assert runtime.documents == {
        RUNTIME: iam.policies(["a-key"], "eu-central-2", PREFIX, ACCOUNT)[RUNTIME]
    }
    key_policy = policy_documents(["a-key"], "eu-central-2", PREFIX, ACCOUNT, only=KEY_POLICY)
    assert key_policy.documents == {KEY_POLICY: iam.key_policy(ACCOUNT)}


def test_the_key_policy_needs_a_real_account_id() -> None:
    with pytest.raises(exceptions.ConfigurationError, match="needs --account-id"):
        policy_documents(["a-key"], "eu-central-2", PREFIX, only=KEY_POLICY)


def test_a_policy_too_long_for_iam_is_warned_of() -> None:
    names = [f"confio-testnet-key-{n:03}" for n in range(60)]
    chosen = policy_documents(names, "eu-central-2", PREFIX)
    assert chosen.warnings and all(f"{MANAGED_POLICY_LIMIT:,}" in w for w in chosen.warnings)
