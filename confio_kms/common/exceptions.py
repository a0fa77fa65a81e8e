"""Every error confio_kms raises, each naming its cause and its fix.

All errors derive from ``ConfioKMSError``. Where a standard exception fits,
the error subclasses it too (``ValueError``, ``LookupError``, ``PermissionError``,
``ConnectionError``, Django's ``ImproperlyConfigured``), so callers can catch
either. No message ever contains a private key or a mnemonic: messages are built
from names, paths, ARNs and AWS error codes only.
"""

from __future__ import annotations

import re

from django.core.exceptions import ImproperlyConfigured

_TRAILING = re.compile(r"[\s.]+\Z")


class ConfioKMSError(Exception):
    """Base class: ``message`` says what went wrong, ``fix`` what to do about it.

    ``cause`` carries the underlying error (AWS's code and message, or algod's), when
    there is one; ``said`` names who said it.
    """

    said = "AWS said"

    def __init__(self, message: str, *, fix: str | None = None, cause: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.cause = cause

    def __str__(self) -> str:
        """``message. (AWS said: cause) Fix: fix.``: each part ends once, however the
        parts were written (a trailing period or none, an ellipsis, stray spaces)."""
        text = _sentence(self.message)
        if self.cause:
            text += f" ({self.said}: {_sentence(self.cause, period=False)})"
        if self.fix:
            text += f" Fix: {_sentence(self.fix)}"
        return text


def _sentence(text: str, *, period: bool = True) -> str:
    """``text`` ending in exactly one period (an ellipsis, "?" and "!" stay as they
    are); with ``period=False`` a period is only reduced to one, never added."""
    text = text.strip()
    body = _TRAILING.sub("", text)
    if text.endswith(("?", "!")) or not body:
        return text
    if text.endswith("..."):
        return body + "..."
    return body + "." if period or body != text else body


# --- configuration ---------------------------------------------------------------


class ConfigurationError(ConfioKMSError, ImproperlyConfigured):
    """A setting or constructor argument is missing or invalid."""


# --- bad input ---------------------------------------------------------------------


class InvalidAliasError(ConfioKMSError, ValueError):
    """A key alias is not a valid confio-kms name."""


class InvalidNetworkError(ConfioKMSError, ValueError):
    """A network name is not one of testnet, mainnet, betanet, localnet."""


class InvalidMnemonicError(ConfioKMSError, ValueError):
    """A 25-word Algorand mnemonic is malformed (the words are never repeated here)."""


class NotATransactionError(ConfioKMSError, TypeError):
    """Something other than a py-algorand-sdk ``Transaction`` was passed for signing."""


class UntrustedInputError(ConfioKMSError, ValueError):
    """Transactions from a client could not be accepted (malformed, signed, oversized)."""


class InvalidCostInputError(ConfioKMSError, ValueError):
    """A cost estimate's input is out of range (negative volume, group over 16, bad price)."""


class InvalidMultisigError(ConfioKMSError, ValueError):
    """A multisig account description or transaction does not fit."""


class InvalidSigningRequestError(ConfioKMSError, ValueError):
    """The indexes of a signing request do not fit its transaction group."""


class MessageTooLargeError(ConfioKMSError, ValueError):
    """A native key cannot sign it: KMS signs at most 4096 bytes."""


class KeyMaterialError(ConfioKMSError, ValueError):
    """The stored parameter does not hold an Algorand private key."""


# --- lookups -----------------------------------------------------------------------


class KeyNotFoundError(ConfioKMSError, LookupError):
    """Base for a KMS alias or SSM parameter that does not exist."""


class AliasNotFoundError(KeyNotFoundError):
    """No KMS alias of that name exists in the account and region."""


class ParameterNotFoundError(KeyNotFoundError):
    """The SSM parameter holding the encrypted private key does not exist."""


class NotAnAlgorandKeyError(KeyNotFoundError):
    """The alias exists but its KMS key carries no ``AlgorandAddress`` tag."""


class AlreadyExistsError(ConfioKMSError):
    """Base for a create/import that would overwrite something: nothing was changed."""


class AliasExistsError(AlreadyExistsError):
    """A KMS alias of that name already exists."""


class ParameterExistsError(AlreadyExistsError):
    """An SSM parameter already exists at the key's path."""


# --- security refusals -------------------------------------------------------------


class AddressMismatchError(ConfioKMSError):
    """The decrypted key does not belong to the address the KMS key is tagged with."""


class ConfiguredAddressMismatchError(AddressMismatchError, ImproperlyConfigured):
    """The key's address is not the address the settings (or the caller) expect."""


class NetworkMismatchError(ConfioKMSError, ValueError):
    """A key's network, from its tag or alias name, is not the one asked for."""


class PrivateKeyExportError(ConfioKMSError, PermissionError):
    """confio_kms never hands out a private key (``get_private_key``)."""


class PolicyViolationError(ConfioKMSError, PermissionError):
    """The signing policy refused a transaction (network, fee cap, rekey, close-out).

    ``rule`` names the rule that refused it (``network``, ``max_fee``, ``rekey``,
    ``close``, ``nonparticipation``, ``destroy``, ``clear_role``, ``update``,
    ``clear_state``, ``delegation``, ``multisig_sender``), for audit and metrics.
    """

    rule = "policy"

    def __init__(
        self,
        message: str,
        *,
        fix: str | None = None,
        cause: str | None = None,
        rule: str | None = None,
    ) -> None:
        super().__init__(message, fix=fix, cause=cause)
        if rule is not None:
            self.rule = rule


class MultisigSenderError(PolicyViolationError):
    """A multisig member was asked to sign a transaction the multisig account does not
    authorize (its sender is neither the multisig nor an account rekeyed to it)."""

    rule = "multisig_sender"


class SignatureVerificationError(ConfioKMSError):
    """A signature KMS returned does not verify against the account's public key."""


class KeyStateError(ConfioKMSError):
    """The KMS key is disabled, pending deletion or otherwise unusable."""


class SponsorPolicyError(ConfioKMSError, ValueError):
    """The sponsor refused to sign: the request breaks its fee or group policy."""


class SponsorBalanceError(SponsorPolicyError):
    """The sponsor refused to sign: paying the fee would take its balance below the floor."""


class RotationError(ConfioKMSError):
    """A rotation could not proceed; the alias still signs with the key it had."""


class ProvisioningError(ConfioKMSError):
    """Creating or importing a key failed half-way; what was created has been rolled back."""


# --- AWS ---------------------------------------------------------------------------


class AWSError(ConfioKMSError):
    """AWS refused or failed a request for a reason not covered by a narrower error."""


class AccessDeniedError(AWSError, PermissionError):
    """The credentials in use lack an IAM permission."""


class CredentialsError(AWSError, PermissionError):
    """No AWS credentials were found, or they are incomplete."""


class NotAnAWSEndpointError(AWSError):
    """The endpoint answered, but not as an AWS API (e.g. another web server's page)."""


class AWSConnectionError(AWSError, ConnectionError):
    """The AWS endpoint could not be reached or did not answer in time."""


class DeadlineExceededError(AWSConnectionError, TimeoutError):
    """A signing call's deadline (``CONFIO_KMS_CALL_DEADLINE``) passed before AWS answered."""


class CoalescingTimeoutError(AWSConnectionError, TimeoutError):
    """A call waited longer than ``CONFIO_KMS_COALESCE_MAX_WAIT`` for a shared decrypt."""


class AlgodError(ConfioKMSError, ConnectionError):
    """The algod node could not be reached, or rejected or did not confirm a transaction."""

    said = "the node said"


class KeyPausedError(PolicyViolationError):
    """The key is paused fleet-wide (``manage.py kms_pause``): nothing is signed with it
    until ``manage.py kms_resume``. ``reason`` is what the operator gave."""

    def __init__(
        self, message: str, *, reason: str = "", fix: str | None = None, cause: str | None = None
    ) -> None:
        super().__init__(message, fix=fix, cause=cause)
        self.reason = reason


class LimitExceededError(PolicyViolationError):
    """A signing call would exceed one of the key's limits in the current window.

    ``limit`` names it (``fees``, ``algos``, ``asset:<id>``, ``calls``,
    ``end_user_calls``, ``end_user_fees``), ``window`` is its length in seconds,
    ``used`` and ``maximum`` what the window has used and allows, ``frees_at`` when
    the window ends (seconds since the epoch)."""

    def __init__(
        self,
        message: str,
        *,
        limit: str = "",
        window: int = 0,
        used: int = 0,
        maximum: int = 0,
        frees_at: float = 0.0,
        fix: str | None = None,
        cause: str | None = None,
    ) -> None:
        super().__init__(message, fix=fix, cause=cause)
        self.limit, self.window, self.used = limit, window, used
        self.maximum, self.frees_at = maximum, frees_at


class GuardUnavailableError(ConfioKMSError):
    """The limits and pauses could not be read (their database is unreachable or not
    migrated): signing is refused rather than done unguarded."""

    said = "the database said"
