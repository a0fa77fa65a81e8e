"""The names of Confío's original ``blockchain/kms_manager.py``, for its call sites.

``from blockchain.kms_manager import X`` becomes ``from confio_kms.compat import X``
and the call site works unchanged: ``KMSSigner``, ``AlgorandKMSManager``,
``KMSTransactionSigner``, ``NativeKMSSigner`` and ``get_kms_signer_from_settings``,
with the original's settings (``USE_KMS_SIGNING``, ``KMS_KEY_ALIAS``,
``KMS_ADMIN_KEY_ALIAS``, ``KMS_NATIVE_SIGNING``, ``KMS_REGION``,
``ALGORAND_SPONSOR_ADDRESS``, ``ALGORAND_ADMIN_ADDRESS``). What behaves differently
is listed in docs/upgrading.md.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from algosdk import transaction
from algosdk.atomic_transaction_composer import TransactionSigner

from confio_kms import factory as conf
from confio_kms import settings as config
from confio_kms import signers
from confio_kms.algorand.chain import Chain
from confio_kms.common import exceptions as exc
from confio_kms.core import keys
from confio_kms.core.aws import AWSClients
from confio_kms.lifecycle.rotation import RotationResult
from confio_kms.signers import KMSSigner

__all__ = [
    "AlgorandKMSManager",
    "KMSSigner",
    "KMSTransactionSigner",
    "NativeKMSSigner",
    "get_kms_signer_from_settings",
]

_KEY_ARN = re.compile(r"arn:(aws[\w-]*):kms:([a-z0-9-]+):(\d{12}):(key|alias)/(.+)")
_CALLER_ARN = re.compile(r"arn:(aws[\w-]*):[^:]*:[^:]*:(\d{12}):.*")
_KEY_ID = re.compile(r"(mrk-)?[0-9a-f]{8}(-?[0-9a-f]{4}){3}-?[0-9a-f]{12}|mrk-[0-9a-f]{32}")


class AlgorandKMSManager(signers.AlgorandKMSManager):
    """``confio_kms.AlgorandKMSManager`` with the names its earlier versions had, each
    refusing with the error that names its replacement.

    ``get_private_key`` (the original's) raises ``PrivateKeyExportError``;
    ``rotate_key(dry_run=True)`` (an earlier release's) raises ``ConfigurationError``.
    """

    def get_private_key(self, key_alias: str) -> str:
        """Not provided: confio_kms never hands a private key to its caller.

        The old scripts returned the decrypted key; here it exists only inside one
        signing call. Always raises ``PrivateKeyExportError``.
        """
        raise exc.PrivateKeyExportError(
            f"get_private_key({key_alias!r}) is not provided: confio_kms never returns a "
            "private key, so no caller can log, keep or leak it.",
            fix="Sign with KMSSigner(alias) or manager.sign_transaction(alias, txn); the "
            "account's offline backup is its mnemonic, shown once at creation.",
        )

    def rotate_key(
        self, key_alias: str, chain: Chain, *, dry_run: bool | None = None, **options: Any
    ) -> RotationResult:
        """``AlgorandKMSManager.rotate_key``, refusing the earlier ``dry_run=True``."""
        if dry_run:
            # The old name created a key, which a dry run must not: refuse, don't guess.
            raise exc.ConfigurationError(
                "rotate_key(dry_run=...) is gone: it created a key, which a dry run must not.",
                fix="Use plan_rotation() to change nothing, or rotate_key(sign_only=True) to "
                "create the key and sign the rekey without submitting it.",
            )
        return super().rotate_key(key_alias, chain, **options)


class KMSTransactionSigner(TransactionSigner):
    """The original adapter, for AtomicTransactionComposer: delegates to ``kms_signer``.

    Unlike the original it takes ``indexes`` (py-algorand-sdk calls it with them) and
    returns SignedTransaction objects, as py-algorand-sdk expects.
    """

    def __init__(self, kms_signer: KMSSigner) -> None:
        super().__init__()
        self.kms_signer = kms_signer

    def sign_transactions(  # type: ignore[override]
        self,
        txn_group: Sequence[transaction.Transaction],
        indexes: Sequence[int] | None = None,
    ) -> list[transaction.SignedTransaction]:
        return self.kms_signer.sign_transactions(txn_group, indexes)


class NativeKMSSigner(KMSSigner):
    """A ``KMSSigner`` for a native key, named by alias, ``alias/...``, key id or ARN.

    A key id or key ARN is looked up to its alias (one ``ListAliases`` request): the
    signer signs through the alias, like every signer. An ARN's region is used; a
    ``region_name`` naming another region is refused. An ARN must name the caller's
    own account and partition (one STS ``GetCallerIdentity`` request, at construction):
    another account's is refused with ``ConfigurationError``, never mapped to a local
    alias of the same name. A key that is not native is refused on first use.
    """

    def __init__(self, key_id_or_alias: str, region_name: str | None = None, **kwargs: object):
        name, region = _alias_of(key_id_or_alias, region_name, kwargs)
        super().__init__(name, region, **kwargs)  # type: ignore[arg-type]

    def sign_transactions(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> list[transaction.SignedTransaction]:
        self._info()  # refuses a key of another kind before anything is signed
        return super().sign_transactions(*args, **kwargs)

    def _info(self) -> keys.KeyInfo:
        info = super()._info()
        if info.kind != keys.NATIVE:
            raise exc.ConfigurationError(
                f"{self.key_alias} is an {info.kind} key, not a native one.",
                fix="Use KMSSigner for it (it signs with every kind), or point "
                "NativeKMSSigner at an ECC_NIST_EDWARDS25519 key.",
            )
        return info


def _alias_of(
    reference: object, region_name: str | None, kwargs: dict[str, object]
) -> tuple[str, str | None]:
    """(alias name, region) for an alias, ``alias/...``, key id or ARN."""
    if not isinstance(reference, str) or not reference:
        raise exc.InvalidAliasError(
            f"NativeKMSSigner needs a key alias, key id or ARN, not {reference!r}.",
            fix="Pass e.g. 'confio-mainnet-sponsor-native', a key id or a key ARN.",
        )
    arn = _KEY_ARN.fullmatch(reference)
    if not arn and not _KEY_ID.fullmatch(reference):
        return reference, region_name
    if arn:
        partition, region, account, kind, reference = arn.groups()
        if region_name and region_name != region:
            raise exc.ConfigurationError(
                f"{arn.group(0)} is in {region}, but region_name is {region_name}.",
                fix="Drop region_name (the ARN's region is used), or pass the ARN of the "
                f"key in {region_name}.",
            )
        region_name = region
    aws = AWSClients(
        region_name,
        endpoint_url=kwargs.get("endpoint_url"),  # type: ignore[arg-type]
        session=kwargs.get("session"),  # type: ignore[arg-type]
        services=("sts",) if arn else (),
        options=kwargs.get("options") or config.options(),  # type: ignore[arg-type]
    )
    if arn:
        _check_account(aws, arn.group(0), partition, account)
        if kind == "alias":
            return reference, region_name
    names = [
        a["AliasName"].removeprefix("alias/")
        for a in aws.paginate("kms", "ListAliases", reference, "Aliases", KeyId=reference)
    ]
    if not names:
        raise exc.AliasNotFoundError(
            f"KMS key {reference} has no alias; confio_kms signs through aliases.",
            fix=f"Give it one: `aws kms create-alias --alias-name alias/NAME "
            f"--target-key-id {reference}`.",
        )
    return sorted(names)[0], aws.region


def _check_account(aws: AWSClients, arn: str, partition: str, account: str) -> None:
    """Refuse an ARN of another account or partition: its alias or key id would name a
    key of the caller's own account (aliases are per account), silently another key."""
    identity = aws.call("sts", "GetCallerIdentity", arn)
    caller = _CALLER_ARN.fullmatch(str(identity.get("Arn", "")))
    own_partition = caller.group(1) if caller else "aws"
    own_account = str(identity.get("Account", ""))
    if (partition, account) != (own_partition, own_account):
        raise exc.ConfigurationError(
            f"{arn} names account {account} ({partition}), but these credentials are "
            f"account {own_account} ({own_partition}); signing with this account's "
            "alias of the same name would use another key. Nothing was signed.",
            fix=f"Use credentials of account {account} (a profile or session=), or name "
            f"the key in account {own_account} (its alias or its own ARN).",
        )


def get_kms_signer_from_settings(
    use_kms: bool | None = None,
    key_alias: str | None = None,
    region_name: str | None = None,
    role: str = "sponsor",
    native: bool | None = None,
) -> KMSSigner:
    """The signer the original factory returned, from the original's settings.

    ``USE_KMS_SIGNING`` must be on (else ``ConfigurationError``, an
    ``ImproperlyConfigured``). The alias: ``key_alias``, else for ``role="admin"``
    ``KMS_ADMIN_KEY_ALIAS``, else ``KMS_KEY_ALIAS``, else the active network's alias
    (``KMS_KEY_ALIAS_TESTNET`` / ``_MAINNET`` by ``CONFIO_ENV``). ``native`` (default
    ``KMS_NATIVE_SIGNING``), when set, must match the key's kind. The key's address is
    checked against ``ALGORAND_ADMIN_ADDRESS`` (admin) or ``ALGORAND_SPONSOR_ADDRESS``.
    """
    enabled = use_kms if use_kms is not None else config.kms_settings().use_kms_signing
    if not enabled:
        raise exc.ConfigurationError(
            "USE_KMS_SIGNING must be enabled for KMS-backed signing.",
            fix=f"Set USE_KMS_SIGNING = True in {config.places('USE_KMS_SIGNING')}.",
        )
    settings = config.kms_settings()
    legacy = config.legacy_settings()
    alias = key_alias or (role == "admin" and legacy.admin_key_alias)
    alias = alias or legacy.key_alias or settings.active_alias
    if region_name:
        signer = KMSSigner(
            alias, region_name, endpoint_url=settings.endpoint_url, ssm_prefix=settings.ssm_prefix
        )
    else:
        signer = conf.kms_signer(alias)
    wants_native = native if native is not None else legacy.native_signing
    if wants_native is not None and (signer.kind == keys.NATIVE) != wants_native:
        raise exc.ConfigurationError(
            f"{signer.key_alias} is an {signer.kind} key, but KMS_NATIVE_SIGNING (or "
            f"native=) is {wants_native}.",
            fix="Set KMS_NATIVE_SIGNING to match the key, or point the alias at the "
            "right key (`manage.py kms_list` shows each key's kind).",
        )
    expected = config.configured_sponsor_address()
    if role == "admin":
        expected = legacy.admin_address or expected
    signer.assert_matches_address(expected)
    return signer
