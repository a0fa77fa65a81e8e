"""The signing policy: what a KMS-held key refuses to sign, on by default.

- Network guard: a key of mainnet, testnet or betanet (its AlgorandNetwork tag, or
  its alias name: ``keys.network_of``) signs only transactions carrying that
  network's genesis hash. Keys of localnet, or of no known network, sign only for
  private networks' genesis hashes listed in ``trusted_genesis``
  (``CONFIO_KMS_TRUSTED_GENESIS``; in Django the sandbox's own ledger is added when
  ``CONFIO_SANDBOX`` is on).
- No ``rekey_to``, ``close_remainder_to`` or asset ``close_assets_to`` in any
  transaction the key signs unless the call allows it (rotation allows rekey).
- No other irreversible action unless the call allows it, one flag per concept:
  a key registration that marks the account non-participating forever
  (``allow_nonparticipation``); an asset destroy (an asset config with no parameters)
  or an application delete (``allow_destroy``); an application update, which replaces
  the approval and clear programs of an existing application, so whoever wrote the new
  programs controls it (``allow_update``); a ClearState call, which drops the
  account's local state whatever the application's program says (``allow_clear_state``;
  a CloseOut call, which the program decides, is allowed); an asset config that keeps
  parameters but clears a role (``allow_clear_role``): no manager means the asset can
  never be reconfigured or destroyed again, and a cleared reserve, freeze or clawback
  address can never be set again (the ledger ignores a new value for a cleared role).
  Clearing a role is not a destroy (the asset lives on, with less authority over it),
  so it has its own flag: a call that destroys does not also strip roles. The policy
  cannot see an asset's current roles: a config that omits a role already cleared
  on chain is refused too.
- Allowed by default, as routine operations of the accounts that hold those roles:
  clawback transfers, asset config changes that hand a role to another address,
  application CloseOut, and creations (an asset created without a manager is
  immutable by design; an application created with OnComplete UpdateApplication
  replaces nothing).
- Genesis hashes are compared as the 32 bytes they encode, never as strings.
- No logic signature delegation unless ``allow_delegation="every-network"``
  (``CONFIO_KMS_ALLOW_DELEGATION``): a delegation names no genesis hash, so it is valid
  on every network, and the consent says so (``True`` alone is refused).
- A fee cap per signature: ``max_fee`` microalgos (``CONFIO_KMS_MAX_FEE``, default 50,000).

A signer's policy is built from its ``Options`` (``SigningPolicy.of``) unless given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

from algosdk import transaction

from confio_kms.algorand import networks
from confio_kms.algorand.validation import Alias
from confio_kms.common.exceptions import ConfigurationError, PolicyViolationError
from confio_kms.core.keys import KeyInfo
from confio_kms.core.options import DEFAULT_MAX_FEE, DelegationConsent, Options, delegation_consent

PUBLIC_GENESIS = networks.PUBLIC_GENESIS


@dataclass(frozen=True)
class Allow:
    """What one signing call allows beyond the policy's defaults."""

    rekey: bool = False
    close: bool = False
    nonparticipation: bool = False
    destroy: bool = False
    update: bool = False
    clear_state: bool = False
    clear_role: bool = False


NOTHING_EXTRA = Allow()


class AllowFlags(TypedDict, total=False):
    """The per-call consents every signing entry point takes as keywords (each False
    unless passed): ``allow_<field of Allow>``."""

    allow_rekey: bool
    allow_close: bool
    allow_nonparticipation: bool
    allow_destroy: bool
    allow_update: bool
    allow_clear_state: bool
    allow_clear_role: bool


_FLAGS = {f"allow_{name}" for name in Allow.__dataclass_fields__}


def allow_from(flags: Mapping[str, object]) -> Allow:
    """``Allow`` from ``allow_*`` keywords; an unknown keyword is a TypeError, as Python
    raises for any other (checked before anything is signed)."""
    unknown = sorted(set(flags) - _FLAGS)
    if unknown:
        raise TypeError(f"unexpected keyword argument {unknown[0]!r}")
    return Allow(**{name.removeprefix("allow_"): bool(v) for name, v in flags.items()})


@dataclass(frozen=True)
class SigningPolicy:
    max_fee: int = DEFAULT_MAX_FEE
    trusted_genesis: frozenset[str] = field(default_factory=frozenset)
    """Genesis hashes (base64) of private or local networks that any key may sign for."""
    allow_delegation: DelegationConsent = False
    """``"every-network"``: logic signatures may be delegated to the key, valid on every
    network (what is signed names no genesis). False: refused (it is open-ended)."""
    _trusted: frozenset[bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        delegation_consent(self.allow_delegation, "SigningPolicy.allow_delegation")
        decoded = {h: networks.genesis_bytes(h) for h in self.trusted_genesis}
        bad = sorted(h for h, raw in decoded.items() if not raw)
        if bad:
            raise ConfigurationError(
                f"CONFIO_KMS_TRUSTED_GENESIS lists {len(bad)} value(s) that are not base64 "
                "genesis hashes of 32 bytes.",
                fix="List each private network's genesis hash as algod reports it (base64).",
            )
        # Bytes: one hash has several base64 spellings.
        object.__setattr__(self, "_trusted", frozenset(decoded.values()))
        public = sorted({PUBLIC_GENESIS[raw] for raw in decoded.values() if raw in PUBLIC_GENESIS})
        if public:
            raise ConfigurationError(
                f"CONFIO_KMS_TRUSTED_GENESIS lists a public network's genesis hash "
                f"({', '.join(public)}).",
                fix="List only private or local networks' genesis hashes. Public networks "
                "are matched to keys by their AlgorandNetwork tag or alias name; tag a key "
                "whose alias names none with `manage.py kms_setup --adopt NAME --network NET`.",
            )

    @classmethod
    def of(cls, options: Options) -> SigningPolicy:
        """The policy ``options`` describe (``max_fee``, ``trusted_genesis``,
        ``allow_delegation``)."""
        return cls(
            max_fee=options.max_fee,
            trusted_genesis=options.trusted_genesis,
            allow_delegation=options.allow_delegation,
        )

    def check(
        self,
        info: KeyInfo,
        txns: Sequence[transaction.Transaction],
        allow: Allow = NOTHING_EXTRA,
    ) -> None:
        """Raise ``PolicyViolationError`` for the first transaction the key must refuse."""
        for index, txn in enumerate(txns):
            rule, reason, fix = self._violation(info, txn, allow)
            if reason:
                raise PolicyViolationError(
                    f"{Alias(info.name)} refused transaction {index} ({txn.get_txid()}): "
                    f"{reason}; nothing was signed.",
                    fix=fix,
                    rule=rule,
                )

    def _violation(
        self, info: KeyInfo, txn: transaction.Transaction, allow: Allow
    ) -> tuple[str, str, str]:
        """(rule, reason, fix) of the first rule ``txn`` breaks; ("", "", "") if none."""
        genesis = networks.genesis_bytes(txn.genesis_hash)
        expected = networks.GENESIS_BYTES.get(info.network, b"")
        if not genesis or (genesis not in self._trusted and genesis != expected):
            return ("network", *_network_violation(info, genesis))
        if txn.fee > self.max_fee:
            return (
                "max_fee",
                f"fee {txn.fee} microalgos is over the cap of {self.max_fee}",
                "Lower the fee, or raise CONFIO_KMS_MAX_FEE deliberately.",
            )
        # Every transaction this key authorizes: its own account, an account rekeyed to
        # it, a multisig it is a member of.
        if txn.rekey_to and not allow.rekey:
            return (
                "rekey",
                f"it rekeys {txn.sender} to {txn.rekey_to}",
                "Rotate keys with kms_rotate; other rekeys must pass allow_rekey=True.",
            )
        closes = getattr(txn, "close_remainder_to", None) or getattr(txn, "close_assets_to", None)
        if closes and not allow.close:
            return (
                "close",
                f"it closes {txn.sender} out to {closes}",
                "Pass allow_close=True to sign a close-out deliberately.",
            )
        return _irreversible(txn, allow)


def _irreversible(txn: transaction.Transaction, allow: Allow) -> tuple[str, str, str]:
    """An irreversible action the call did not allow: (rule, reason, fix); ("", "", "")
    if none."""
    if isinstance(txn, transaction.KeyregTxn) and txn.nonpart and not allow.nonparticipation:
        return (
            "nonparticipation",
            f"it marks {txn.sender} non-participating, which can never be undone",
            "Pass allow_nonparticipation=True to sign it deliberately.",
        )
    if isinstance(txn, transaction.AssetConfigTxn) and txn.index:
        return _asset_config(txn, allow)
    if isinstance(txn, transaction.ApplicationCallTxn):
        return _application_call(txn, allow)
    return "", "", ""


# An asset's role addresses as the wire names them (``AssetConfigTxn.dictify``).
_ROLES = (("m", "manager"), ("r", "reserve"), ("f", "freeze"), ("c", "clawback"))


def _asset_config(txn: transaction.AssetConfigTxn, allow: Allow) -> tuple[str, str, str]:
    """A reconfiguration of an existing asset that destroys it or clears a role."""
    params = txn.dictify().get("apar")
    if not params:
        if allow.destroy:
            return "", "", ""
        return (
            "destroy",
            f"it destroys asset {txn.index} (an asset config with no parameters: a destroy, "
            "also when it was meant to clear every role)",
            "Pass allow_destroy=True to sign it deliberately.",
        )
    cleared = [name for key, name in _ROLES if key not in params]
    if not cleared or allow.clear_role:
        return "", "", ""
    consequence = (
        "the asset can never be reconfigured or destroyed again"
        if "manager" in cleared
        else "a cleared role can never be set again"
    )
    return (
        "clear_role",
        f"it clears the {_listed(cleared)} of asset {txn.index}: {consequence}",
        "Name an address for every role to keep (handing a role over is allowed), or pass "
        "allow_clear_role=True to sign it deliberately (also needed when the role is "
        "already cleared on chain: the policy cannot see the asset's current roles).",
    )


def _listed(names: list[str]) -> str:
    return " and ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} and {names[-1]}"


def _application_call(txn: transaction.ApplicationCallTxn, allow: Allow) -> tuple[str, str, str]:
    """An application call that deletes, replaces the programs of, or clears state in an app."""
    on_complete = txn.on_complete
    if on_complete == transaction.OnComplete.DeleteApplicationOC and not allow.destroy:
        return (
            "destroy",
            f"it deletes application {txn.index}",
            "Pass allow_destroy=True to sign it deliberately.",
        )
    # At creation (index 0) an update replaces nothing.
    if on_complete == transaction.OnComplete.UpdateApplicationOC and txn.index and not allow.update:
        return (
            "update",
            f"it updates application {txn.index}, replacing its approval and clear programs "
            "(whoever wrote the new programs controls the application)",
            "Pass allow_update=True to sign it deliberately.",
        )
    if on_complete == transaction.OnComplete.ClearStateOC and not allow.clear_state:
        return (
            "clear_state",
            f"it clears {txn.sender}'s local state in application {txn.index}, which the "
            "application's program cannot refuse",
            "Opt out with a CloseOut call (the application decides), or pass "
            "allow_clear_state=True to sign the ClearState deliberately.",
        )
    return "", "", ""


def _network_violation(info: KeyInfo, genesis: bytes) -> tuple[str, str]:
    """Why a key may not sign for ``genesis`` (not its network's, not trusted), and the fix."""
    on = PUBLIC_GENESIS.get(genesis, "")
    if info.network in networks.GENESIS_HASH or (on and info.network != networks.UNKNOWN):
        if not on:  # a private network nobody trusted
            return (
                f"the key is tagged {info.network} but the transaction is for an unknown network",
                f"Sign only {info.network} transactions with this key; for a private network "
                "(AlgoKit LocalNet, a sandbox), add its genesis hash to the setting "
                "CONFIO_KMS_TRUSTED_GENESIS and use a key made for it.",
            )
        return (
            f"the key is tagged {info.network} but the transaction is for {on}",
            f"Sign {on} transactions with a {on} key.",
        )
    if on:  # a public network, and a key whose network nothing names
        return (
            f"the key's network is {info.network} (no AlgorandNetwork tag, and the alias "
            f"names no network) and the transaction is for {on}",
            f"Verify and tag the key: `manage.py kms_setup --adopt {info.name} --network "
            f"{on}`, or name it in KMS_KEY_ALIAS_{on.upper()}.",
        )
    return (
        f"the key's network is {info.network}, and the transaction's private network "
        "needs its genesis hash trusted explicitly",
        "Add the private network's genesis hash (AlgoKit LocalNet's, a sandbox's) to the "
        "setting CONFIO_KMS_TRUSTED_GENESIS.",
    )
