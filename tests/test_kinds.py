"""The key-kind seam: a kind is a class that signs, registered in
``confio_kms.core.kinds``, and a class that creates, registered in
``confio_kms.lifecycle.provision``.

A third kind, defined here and registered in ``KINDS`` and ``CREATORS`` alone, is created by the
manager, listed, resolved and signs through ``KMSSigner`` (policy, audit and the
base class's signature check included), with signatures the ledger accepts.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence

import pytest
from algosdk import encoding, transaction
from nacl.signing import SigningKey

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.common import exceptions
from confio_kms.core import kinds
from confio_kms.core.keys import TAG_ADDRESS, TAG_NETWORK, AlgorandKey
from confio_kms.lifecycle import provision
from confio_kms.lifecycle.provision import KeyCreator, KeyRequest
from confio_kms.lifecycle.rollback import (
    Provisioned,
    Rollback,
    create_alias,
    create_key,
    provisioning,
)
from confio_kms.sandbox import LocalLedger

from .helpers import same_bytes, sdk_signed


class SoftwareKey(AlgorandKey):
    """A test kind: a KMS key of another spec marks the account, the Ed25519 key is
    held in this process. Only what the seam asks for is implemented."""

    kind = "software"
    key_spec = "ECC_SECG_P256K1"  # a spec moto serves and no real kind uses
    held: dict[str, SigningKey] = {}  # noqa: RUF012
    tamper = False

    def _sign(self, messages: Sequence[bytes]) -> list[bytes]:
        key = self.held[self.info.key_id]
        signatures = [bytes(key.sign(m).signature) for m in messages]
        if self.tamper:
            signatures[-1] = bytes([signatures[-1][0] ^ 1]) + signatures[-1][1:]
        return signatures

    @classmethod
    def reset(cls) -> None:
        cls.tamper = False


class SoftwareCreator(KeyCreator):
    """Creates the test kind's keys: a KMS key of its spec, tagged with the address of
    an Ed25519 key held here."""

    kind = SoftwareKey.kind

    def create(self, request: KeyRequest) -> Provisioned:
        aws, name = self.aws, request.name
        key = SigningKey.generate()
        address = str(encoding.encode_address(bytes(key.verify_key)))
        rollback = Rollback()

        def run(step: object) -> str:
            key_id = create_key(
                aws,
                name,
                rollback,
                description=request.description,
                tags={TAG_ADDRESS: request.account or address, TAG_NETWORK: request.network},
                KeySpec=SoftwareKey.key_spec,
                KeyUsage="SIGN_VERIFY",
            )
            create_alias(aws, name, key_id, rollback)
            return key_id

        key_id = provisioning(name, rollback, run)
        SoftwareKey.held[key_id] = key
        return Provisioned(key_id, address)


@pytest.fixture
def software_kind(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[SoftwareKey]]:
    monkeypatch.setitem(kinds.KINDS, SoftwareKey.kind, SoftwareKey)
    monkeypatch.setitem(provision.CREATORS, SoftwareKey.kind, SoftwareCreator)
    yield SoftwareKey
    SoftwareKey.held.clear()
    SoftwareKey.reset()


def test_a_registered_kind_is_created_listed_and_signs(
    manager: AlgorandKMSManager, software_kind: type[SoftwareKey], ledger: LocalLedger
) -> None:
    created = manager.create_algorand_key("soft", kind="software", network="localnet")
    assert created.kind == "software" and created.backup_mnemonic is None
    (record,) = manager.list_keys()
    assert (record.name, record.kind, record.address) == ("soft", "software", created.address)

    ledger.fund(created.address, 1_000_000)
    txn = transaction.PaymentTxn(created.address, ledger.suggested_params(), created.address, 0)
    signed = KMSSigner("soft").sign_transaction(txn)
    ledger.evaluate([signed])  # go-algorand's evaluator accepts it

    private_key = software_kind.held[created.key_id]
    reference = sdk_signed(
        txn, base64.b64encode(bytes(private_key) + bytes(private_key.verify_key)).decode()
    )
    assert same_bytes(signed, reference)


def test_the_signing_policy_applies_to_every_kind(
    manager: AlgorandKMSManager, software_kind: type[SoftwareKey]
) -> None:
    created = manager.create_algorand_key("soft", kind="software", network="localnet")
    sp = LocalLedger.suggested_params()
    txn = transaction.PaymentTxn(created.address, sp, created.address, 0, rekey_to=created.address)
    with pytest.raises(exceptions.PolicyViolationError, match="rekeys"):
        KMSSigner("soft").sign_transaction(txn)


def test_the_base_class_refuses_a_signature_that_does_not_verify(
    manager: AlgorandKMSManager, software_kind: type[SoftwareKey], ledger: LocalLedger
) -> None:
    created = manager.create_algorand_key("soft", kind="software", network="localnet")
    software_kind.tamper = True
    sp = ledger.suggested_params()
    group = [transaction.PaymentTxn(created.address, sp, created.address, i) for i in range(3)]
    with pytest.raises(exceptions.SignatureVerificationError, match="item 2 that does not verify"):
        KMSSigner("soft").sign_transactions(group)


def test_an_unknown_kind_names_the_kinds_there_are(manager: AlgorandKMSManager) -> None:
    with pytest.raises(exceptions.ConfigurationError, match="envelope, native"):
        manager.create_algorand_key("x", kind="hsm")


def test_native_is_shorthand_for_the_native_kind(manager: AlgorandKMSManager) -> None:
    assert manager.create_algorand_key("n", native=True).kind == "native"
    assert manager.create_algorand_key("k", kind="native").kind == "native"
