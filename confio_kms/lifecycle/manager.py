"""AlgorandKMSManager: create, import, list, look up and delete KMS-held Algorand keys.

The method names are those of the old setup scripts, so existing call sites keep
working. Nothing is ever overwritten: an existing alias or parameter is refused
before any change, and a creation that fails half-way is rolled back.

This is the plain-Python class: it reads no settings, only its arguments and its
``Options``. The package's top-level ``confio_kms.AlgorandKMSManager`` is the Django
app's subclass (``confio_kms.signers``), whose options default to the settings'.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import boto3
from algosdk import account
from algosdk.transaction import SignedTransaction, Transaction

from confio_kms.algorand import validation
from confio_kms.algorand.chain import Chain
from confio_kms.algorand.validation import DEFAULT_SSM_PREFIX, Alias
from confio_kms.common import exceptions as exc
from confio_kms.common import progress
from confio_kms.common.redaction import holds_secrets
from confio_kms.core import audit, cache, keys, kinds
from confio_kms.core.aws import AWSClients
from confio_kms.core.keys import TAG_ADDRESS, TAG_MANAGED_BY
from confio_kms.core.options import Options
from confio_kms.core.policy import SigningPolicy
from confio_kms.core.signing import KeyHandle, lookup, sign_group
from confio_kms.lifecycle import policies as iam
from confio_kms.lifecycle import recovery, rotation, rotation_plan
from confio_kms.lifecycle.created import CreatedKey as CreatedKey
from confio_kms.lifecycle.created import ImportedKey as ImportedKey
from confio_kms.lifecycle.created import KeyRecord as KeyRecord
from confio_kms.lifecycle.provision import KeyRequest, creator, store
from confio_kms.lifecycle.recovery import Leftovers, Unfinished
from confio_kms.lifecycle.rotation import RotationResult
from confio_kms.lifecycle.unaliased import Unaliased

# Signed by ``adopt_key`` to prove the key material is the tagged account's. No
# Algorand signature domain ("TX", "Program", "MX", ...) starts like this, so the
# signature authorizes nothing on chain.
logger = logging.getLogger("confio_kms.manager")

ADOPT_PROBE = b"confio-kms adopt probe: "

MIN_PENDING_DAYS, MAX_PENDING_DAYS = 7, 30


class AlgorandKMSManager:
    """Administers the Algorand keys of one AWS account and region.

    ``options`` (``confio_kms.core.options.Options``; None: the plain defaults, never
    the settings) configures the AWS clients, the lookup cache, the aliases' networks,
    the signing policy of ``sign_transaction`` and rotations, and the key policy of
    created keys.
    """

    def __init__(
        self,
        region_name: str | None = None,
        *,
        endpoint_url: str | None = None,
        session: boto3.Session | None = None,
        ssm_prefix: str = DEFAULT_SSM_PREFIX,
        options: Options | None = None,
    ) -> None:
        self._prefix = validation.ssm_prefix(ssm_prefix)
        self._aws = AWSClients(
            region_name, endpoint_url=endpoint_url, session=session, options=options
        )

    @property
    def region_name(self) -> str:
        return self._aws.region

    @property
    def options(self) -> Options:
        """The options this manager was built with."""
        return self._aws.options

    def parameter_path(self, key_alias: str) -> str:
        return validation.parameter_path(self._prefix, validation.alias_name(key_alias))

    def create_algorand_key(
        self,
        key_alias: str,
        description: str = "",
        *,
        network: str | None = None,
        kind: str = kinds.DEFAULT_KIND,
        native: bool = False,
        save_backup: Callable[[str, str], None] | None = None,
        from_backup: str | None = None,
        multi_region: bool = False,
    ) -> CreatedKey:
        """Generate a new Algorand account and store its key under ``key_alias``.

        Returns ``(key_id, address, backup_mnemonic)``; the mnemonic is the only
        copy outside AWS, for the operator's offline backup. ``kind="native"`` (or
        ``native=True``, its shorthand): KMS generates an Ed25519 key that never
        leaves it, and no mnemonic exists. ``network`` defaults to the one the alias
        names (``confio-mainnet-*``, ``KMS_KEY_ALIAS_MAINNET``, ...), else testnet;
        an explicit one that the alias contradicts is refused. An envelope key's
        backup goes to ``save_backup(mnemonic, address)`` before the first AWS write;
        ``from_backup`` (a mnemonic a ``save_backup`` stored for a creation that was
        interrupted before its key existed) creates the key of that account instead.
        ``multi_region`` (native keys): a multi-Region key, which can get replicas.
        """
        cls = creator(kinds.named(keys.NATIVE if native else kind).kind)
        name, network = self._check_new(key_alias, network, check_parameter=cls.uses_parameter)
        request = KeyRequest(
            name=name,
            prefix=self._prefix,
            network=network,
            description=description,
            save_backup=save_backup,
            private_key=validation.private_key_from_mnemonic(from_backup) if from_backup else "",
            multi_region=multi_region,
        )
        del from_backup
        created = cls(self._aws).create(request)
        cache.forget(self._aws.scope, name, self._aws.options)
        return CreatedKey(created.key_id, created.address, created.backup_mnemonic, cls.kind)

    def unfinished(self, key_alias: str | None = None) -> Leftovers:
        """Keys whose creation was interrupted (for ``key_alias`` only, when given),
        and the complete key holding the alias; see ``confio_kms.lifecycle.recovery``."""
        name = validation.alias_name(key_alias) if key_alias else None
        return recovery.scan(self._aws, self._prefix, name)

    def clean_up(self, item: Unfinished) -> tuple[list[str], list[str]]:
        """Undo an unfinished creation (deletion scheduled in 7 days: cancellable);
        return (what was undone, what could not be), as read back from AWS."""
        outcome = recovery.clean_up(self._aws, item)
        cache.forget(self._aws.scope, item.name, self._aws.options)
        return outcome

    @holds_secrets
    def complete(self, item: Unfinished, mnemonic_phrase: str | None = None) -> CreatedKey:
        """Finish an unfinished creation; an envelope key needs its backup mnemonic."""
        private_key = (
            validation.private_key_from_mnemonic(mnemonic_phrase) if mnemonic_phrase else None
        )
        del mnemonic_phrase
        address = recovery.complete(self._aws, item, private_key)
        cache.forget(self._aws.scope, item.name, self._aws.options)
        kind = item.kind or keys.ENVELOPE
        return CreatedKey(item.key_id, address, None, kind)

    @holds_secrets
    def import_existing_key(
        self,
        key_alias: str,
        mnemonic_phrase: str,
        description: str = "",
        *,
        network: str | None = None,
        resume: recovery.Outcome | None = None,
    ) -> ImportedKey:
        """Store the account of ``mnemonic_phrase`` under ``key_alias``; return (key_id, address).

        The mnemonic is validated before any AWS request; ``network`` is as for
        ``create_algorand_key``. Aliases that already hold the account are logged as a
        warning and named in ``also_under`` (the import goes ahead: both sign).
        ``resume`` (a rerun, ``kms_setup``): first finish this account's key that an
        interrupted import left, or clean up what else it left for the alias
        (``recovery.resume_import``), saying which in ``resume``.
        """
        private_key = validation.private_key_from_mnemonic(mnemonic_phrase)
        del mnemonic_phrase  # not needed further; @holds_secrets keeps frames out of reports
        address = str(account.address_from_private_key(private_key))
        if resume is not None:
            name = validation.alias_name(key_alias)
            chosen = self._network(name, network)
            found = recovery.scan(self._aws, self._prefix, name)
            key_id = recovery.resume_import(self._aws, found, private_key, address, chosen, resume)
            cache.forget(self._aws.scope, name, self._aws.options)
            if key_id is not None:
                return ImportedKey(key_id, address, self._also(name, address))
        name, network = self._check_new(key_alias, network)
        also = self._also(name, address)
        key_id = self._store(name, private_key, address, network, description)
        return ImportedKey(key_id, address, also)

    def _also(self, name: str, address: str) -> tuple[str, ...]:
        """The other aliases that hold ``address`` (logged as a warning)."""
        progress.step(f"{Alias(name)}: looking for other aliases of {address}")
        also = tuple(o for o, _, _ in self._tagged(TAG_ADDRESS, address) if o != name)
        if also:
            logger.warning(
                "Importing %s as alias/%s: the account is already stored under %s.",
                address,
                name,
                ", ".join(str(Alias(other)) for other in also),
            )
        return also

    def get_address(self, key_alias: str) -> str:
        """The address tagged on the key (cached; no request once cached)."""
        info, _ = lookup(self._aws, validation.alias_name(key_alias))
        return info.address

    def adopt_key(self, key_alias: str, network: str) -> KeyRecord:
        """Tag an existing key (say, the old setup scripts') with its network, after
        proving its key material belongs to the address it is tagged with.

        The proof is a signature over a probe that authorizes nothing on chain,
        verified against the address (envelope: one decrypt; native: one Sign). A key
        already tagged with another network, or whose alias names another network, is
        refused; one already tagged with ``network`` is left as it is.
        """
        name = validation.alias_name(key_alias)
        network = validation.network_name(network)
        metadata = keys.describe_key(self._aws, name)
        tags = keys.read_tags(self._aws, metadata["KeyId"], str(Alias(name)))
        current = keys.tagged_network(tags) or self.options.network_of_alias(name)
        if current and current != network:
            raise exc.NetworkMismatchError(
                f"{Alias(name)} is a {current} key (its AlgorandNetwork tag or alias name); "
                f"it was not tagged {network}. Nothing was changed.",
                fix="Check which network this account is on; a key is never re-tagged to "
                "another network.",
            )
        info = kinds.key_info(name, metadata, tags, self.options)
        key = kinds.key_for(self._aws, info, self._prefix)
        key.sign([ADOPT_PROBE + info.key_id.encode()])  # raises unless it is the account's
        audit.record(
            info,
            str(Alias(name)),
            [],
            "signed",
            key.request_ids,
            "adopt probe",
            sink=self.options.audit_sink,
        )
        if keys.tagged_network(tags) != network:
            self._aws.call(
                "kms",
                "TagResource",
                str(Alias(name)),
                KeyId=info.key_id,
                Tags=keys.kms_tags({keys.TAG_NETWORK: network}),
            )
        cache.forget(self._aws.scope, name, self._aws.options)
        return self.get_key(name)

    def sign_transaction(self, key_alias: str, transaction: Transaction) -> SignedTransaction:
        """Sign one transaction with the key behind ``key_alias`` (the old scripts' call),
        under the options' signing policy, audited like any signing call."""
        handle = KeyHandle(self._aws, self._prefix, validation.alias_name(key_alias))
        policy = SigningPolicy.of(self.options)
        (signed,) = sign_group(handle, policy, [transaction])
        return signed

    def get_key(self, key_alias: str) -> KeyRecord:
        """The record of one key, fresh from KMS (two requests)."""
        name = validation.alias_name(key_alias)
        metadata = keys.describe_key(self._aws, name)
        tags = keys.read_tags(self._aws, metadata["KeyId"], str(Alias(name)))
        return self._record(name, metadata, tags)

    def list_keys(self) -> list[KeyRecord]:
        """Every aliased KMS key tagged with an Algorand address, sorted by name.

        Covers keys this app created and those of the old setup scripts. Keys whose
        tags the credentials may not read (other applications', under the generated
        IAM policy) are not Algorand keys of ours and are skipped.
        """
        records = []
        for name, key_id, tags in self._tagged(TAG_ADDRESS):
            metadata = self._aws.call("kms", "DescribeKey", key_id, KeyId=key_id)["KeyMetadata"]
            records.append(self._record(name, metadata, tags))
        return sorted(records, key=lambda record: record.name)

    def unaliased(self) -> Unaliased[KeyRecord]:
        """This library's keys no alias names (retired, orphaned): to list, or to delete
        by key id; see ``confio_kms.lifecycle.unaliased``."""
        return Unaliased(self._aws, KeyRecord)

    def _tagged(
        self, tag: str, value: str | None = None
    ) -> Iterator[tuple[str, str, dict[str, str]]]:
        """(alias name, key id, tags) of every aliased key with ``tag`` (equal to ``value``)."""
        for alias in self._aws.paginate("kms", "ListAliases", "aliases", "Aliases"):
            name = alias["AliasName"].removeprefix("alias/")
            key_id = alias.get("TargetKeyId")
            if not key_id or name.startswith("aws/"):
                continue
            try:
                tags = keys.read_tags(self._aws, key_id, alias["AliasName"])
            except exc.AccessDeniedError:
                # Another application's key, which least privilege keeps us from reading.
                continue
            if tag in tags and (value is None or tags[tag] == value):
                yield name, key_id, tags

    def delete_key(self, key_alias: str, pending_window_days: int = 30) -> datetime | None:
        """Schedule the key's deletion; return the date it will be deleted.

        The encrypted SSM parameter is kept: until the date, ``cancel_key_deletion``
        restores signing exactly as before. After it, the parameter is undecryptable
        and may be removed by hand.
        """
        if (
            not isinstance(pending_window_days, int)
            or not MIN_PENDING_DAYS <= pending_window_days <= MAX_PENDING_DAYS
        ):
            raise exc.ConfigurationError(
                f"pending_window_days must be a whole number of days from {MIN_PENDING_DAYS} "
                f"to {MAX_PENDING_DAYS}, not {pending_window_days!r}.",
                fix=f"Pass a value from {MIN_PENDING_DAYS} to {MAX_PENDING_DAYS} (AWS's limits).",
            )
        name = validation.alias_name(key_alias)
        key_id = keys.describe_key(self._aws, name)["KeyId"]
        response = self._aws.call(
            "kms",
            "ScheduleKeyDeletion",
            str(Alias(name)),
            KeyId=key_id,
            PendingWindowInDays=pending_window_days,
        )
        deletion_date: datetime | None = response.get("DeletionDate")
        return deletion_date

    def cancel_key_deletion(self, key_alias: str) -> None:
        """Cancel a scheduled deletion and re-enable the key (KMS leaves it disabled)."""
        name = validation.alias_name(key_alias)
        key_id = keys.describe_key(self._aws, name)["KeyId"]
        self._aws.call("kms", "CancelKeyDeletion", str(Alias(name)), KeyId=key_id)
        self._aws.call("kms", "EnableKey", str(Alias(name)), KeyId=key_id)

    def rotate_key(
        self,
        key_alias: str,
        chain: Chain,
        *,
        kind: str = kinds.DEFAULT_KIND,
        native: bool = False,
        sign_only: bool = False,
        on_backup: Callable[[str, str], None] | None = None,
    ) -> RotationResult:
        """Hand the account behind ``key_alias`` to a new key by rekeying; address unchanged.

        See ``confio_kms.lifecycle.rotation`` for the steps and how interruptions resolve.
        ``kind`` is the new key's (``native=True`` is shorthand for ``kind="native"``).
        ``sign_only`` creates the new key and stops after signing the rekey
        (``result.signed_rekey``, for an external submitter). A new envelope key's
        backup mnemonic goes to ``on_backup(mnemonic, key_address)`` as soon as the key
        exists, and is also in ``result.backup_mnemonic``. To see what would happen
        without changing anything, use :meth:`plan_rotation`.
        """
        name = validation.alias_name(key_alias)
        return rotation.rotate(
            self._aws,
            self._prefix,
            name,
            chain,
            kind=keys.NATIVE if native else kind,
            sign_only=sign_only,
            on_backup=on_backup,
        )

    def plan_rotation(
        self,
        key_alias: str,
        chain: Chain,
        *,
        kind: str = kinds.DEFAULT_KIND,
        native: bool = False,
    ) -> rotation_plan.RotationPlan:
        """What ``rotate_key`` would do now; reads only (no key, alias, tag or signature)."""
        return rotation_plan.plan(
            self._aws,
            self._prefix,
            validation.alias_name(key_alias),
            chain,
            kind=keys.NATIVE if native else kind,
        )

    def __repr__(self) -> str:
        return f"AlgorandKMSManager(region_name={self._aws.region!r}, ssm_prefix={self._prefix!r})"

    # --- internals ------------------------------------------------------------

    def _check_new(
        self, key_alias: str, network: str | None, *, check_parameter: bool = True
    ) -> tuple[str, str]:
        """Validate the inputs and refuse an alias or parameter that already exists."""
        name = validation.alias_name(key_alias)
        iam.creation_params(self.options.key_policy_account)  # a malformed account fails here
        network = self._network(name, network)
        alias = str(Alias(name))
        progress.step(f"{alias}: checking the alias and its SSM parameter are free")
        try:
            keys.describe_key(self._aws, name)
        except exc.AliasNotFoundError:
            pass
        else:
            raise exc.AliasExistsError(
                f"The KMS alias {alias} already exists; nothing was changed.",
                fix="Choose another alias, or use the existing key (`manage.py kms_list`).",
            )
        path = validation.parameter_path(self._prefix, name)
        if not check_parameter:
            return name, network
        try:
            self._aws.call("ssm", "GetParameter", path, Name=path, WithDecryption=False)
        except exc.ParameterNotFoundError:
            pass
        else:
            raise exc.ParameterExistsError(
                f"The SSM parameter {path} already exists; nothing was changed.",
                fix="Choose another alias. If the parameter is left over from a deleted key, "
                "check nothing depends on it and delete it deliberately.",
            )
        return name, network

    @holds_secrets
    def _network(self, name: str, network: str | None) -> str:
        """The network asked for, else the one the alias names, else testnet; refused
        when the alias names another."""
        named = self.options.network_of_alias(name)
        chosen = validation.network_name(network or named or "testnet")
        if named and named != chosen:
            raise exc.NetworkMismatchError(
                f"{Alias(name)} names a {named} key, but network={chosen!r} was asked "
                "for; nothing was changed.",
                fix=f"Drop network= (the alias says {named}), or choose an alias that "
                f"does not name {named}.",
            )
        return chosen

    def _store(
        self, name: str, private_key: str, address: str, network: str, description: str
    ) -> str:
        key_id = store(
            self._aws,
            name=name,
            path=validation.parameter_path(self._prefix, name),
            private_key=private_key,
            address=address,
            network=network,
            description=description,
        )
        cache.forget(self._aws.scope, name, self._aws.options)
        return key_id

    def _record(self, name: str, metadata: dict[str, Any], tags: dict[str, str]) -> KeyRecord:
        """A record of the key, decoded like every key (``kinds.key_info``); a key that
        cannot sign (another key spec, a malformed tag) is still listed, as such."""
        try:
            info = kinds.key_info(name, metadata, tags, self.options)
            kind, address, auth = info.kind, info.address, info.auth_address
        except exc.NotAnAlgorandKeyError:
            spec = metadata.get("KeySpec", "SYMMETRIC_DEFAULT")
            kind = kinds.for_spec(spec) or f"unsupported ({spec})"
            address, auth = tags.get(TAG_ADDRESS, ""), tags.get(keys.TAG_AUTH_ADDRESS, "")
        return KeyRecord(
            name=name,
            key_id=metadata["KeyId"],
            address=address,
            network=keys.network_of(name, tags, self.options),
            key_state=metadata.get("KeyState", "Unknown"),
            creation_date=metadata.get("CreationDate"),
            kind=kind,
            managed=tags.get(TAG_MANAGED_BY) == keys.MANAGED_BY,
            deletion_date=metadata.get("DeletionDate"),
            auth_address=auth,
        )
