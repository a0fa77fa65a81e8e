"""AWS's error codes, translated into confio_kms errors: the table is data, one row
per code, with the message and fix each error carries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from confio_kms.common import exceptions as exc

_DENIED = {"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"}
_KEY_STATE = {"DisabledException", "KMSInvalidStateException", "KeyUnavailableException"}
_KEY_STATE_SSM = {"InvalidKeyId"}
THROTTLED = {"ThrottlingException", "Throttling", "TooManyRequestsException"}


# AWS error code -> (error class, message, fix); {r} is the resource, {op} the operation.
_BY_CODE: dict[str, tuple[type[exc.ConfioKMSError], str, str]] = {
    "AliasNotFound": (
        exc.AliasNotFoundError,
        "The KMS alias {r} does not exist in this account and region.",
        "List the aliases with `manage.py kms_list` or `aws kms list-aliases`, check "
        "KMS_REGION, or create the key with `manage.py kms_setup --create-new`.",
    ),
    "NotFoundException": (
        exc.KeyNotFoundError,
        "The KMS key {r} does not exist in this account and region.",
        "Check the key id and KMS_REGION; list keys with `manage.py kms_list`.",
    ),
    "InvalidKeyUsageException": (
        exc.NotAnAlgorandKeyError,
        "The KMS key behind {r} cannot be used for {op}.",
        "Point the alias at a key of the right kind: symmetric ENCRYPT_DECRYPT (envelope) "
        "or ECC_NIST_EDWARDS25519 SIGN_VERIFY (native).",
    ),
    "ParameterNotFound": (
        exc.ParameterNotFoundError,
        "The SSM parameter {r} does not exist.",
        "Create the key with `manage.py kms_setup --create-new` or `--import-existing`, "
        "or check the SSM prefix and region.",
    ),
    "AlreadyExistsException": (
        exc.AliasExistsError,
        "The KMS alias {r} already exists.",
        "Choose another alias; confio_kms never replaces an existing key.",
    ),
    "ParameterAlreadyExists": (
        exc.ParameterExistsError,
        "The SSM parameter {r} already exists.",
        "Choose another alias, or delete the old parameter deliberately after checking "
        "nothing depends on it.",
    ),
}


# Which quota a throttled request hit, by service and operation: (quota, fix). AWS
# counts requests per quota, not per key kind: an envelope key's signing call hits
# KMS's symmetric quota on the direct path, Parameter Store's on the fallback path.
_RAISE = "raise it in the Service Quotas console (AWS Key Management Service)"
# The operations each quota counts (the quota proxy of benchmarks/ emulates the same).
PARAMETER_STORE_OPERATIONS = frozenset(
    {"GetParameter", "GetParameters", "GetParametersByPath", "PutParameter"}
)
KMS_SYMMETRIC_OPERATIONS = frozenset(
    {
        "Decrypt",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateMac",
        "GenerateRandom",
        "ReEncrypt",
        "VerifyMac",
    }
)
KMS_ECC_OPERATIONS = frozenset({"Sign", "Verify", "GetPublicKey"})
_QUOTAS: tuple[tuple[str, frozenset[str], str, str], ...] = (
    (
        "ssm",
        PARAMETER_STORE_OPERATIONS,
        "Parameter Store's throughput quota (40 requests/s by default per account and "
        "region, shared by GetParameter(s) and PutParameter)",
        "Lower the request rate, or turn on Parameter Store's 'higher throughput' "
        "setting (SSM settings; billed per request).",
    ),
    (
        "kms",
        KMS_SYMMETRIC_OPERATIONS,
        "KMS's 'Cryptographic operations (symmetric) request rate' quota (10,000/s by "
        "default in eu-central-2, shared by every symmetric key of the account and region)",
        f"Lower the request rate, or {_RAISE}.",
    ),
    (
        "kms",
        KMS_ECC_OPERATIONS,
        "KMS's 'Cryptographic operations (ECC) request rate' quota (1,000/s by default, "
        "shared by every ECC key of the account and region, native keys included)",
        f"Lower the request rate, or {_RAISE}.",
    ),
)


def _quota(service: str, operation: str) -> tuple[str, str]:
    """(the quota a throttled ``service:operation`` hit, its fix)."""
    for row_service, operations, quota, fix in _QUOTAS:
        if service == row_service and operation in operations:
            return quota, fix
    if service == "kms":
        return f"KMS's request quota for {operation}", f"Lower the request rate, or {_RAISE}."
    return (
        f"the {service} request quota for {operation}",
        "Lower the request rate, or raise the quota in the Service Quotas console.",
    )


def quota_of(service: str, operation: str) -> str | None:
    """The quota ``service:operation`` counts against, of those in the table (the ones
    signing depends on), else None."""
    for row_service, operations, quota, _fix in _QUOTAS:
        if service == row_service and operation in operations:
            return quota
    return None


def error_cause(error: ClientError) -> str:
    """AWS's code and message of ``error``, as errors quote them."""
    err: Mapping[str, Any] = error.response.get("Error", {})
    return f"{err.get('Code', '')}: {err.get('Message', '')}".strip(": ")


def translate_client_error(
    error: ClientError, service: str, operation: str, resource: str
) -> exc.ConfioKMSError:
    """Map an AWS error onto the narrowest confio_kms error, naming cause and fix."""
    err: Mapping[str, Any] = error.response.get("Error", {})
    code = str(err.get("Code", ""))
    cause = error_cause(error)
    action = f"{service}:{operation}"
    if code in _DENIED:
        fix = f"Grant the IAM action {action} on {resource} to the credentials in use"
        if service == "ssm" and operation == "GetParameter":
            fix += ", and kms:Decrypt on the KMS key that encrypts the parameter"
        if service == "kms" and operation == "Decrypt":
            fix += (  # envelope signing decrypts the parameter's ciphertext itself
                " with the condition kms:EncryptionContext:PARAMETER_ARN equal to the key's "
                "SSM parameter ARN (`manage.py kms_policy --runtime` writes it)"
            )
        return exc.AccessDeniedError(
            f"AWS denied {action} on {resource}.", fix=fix + ".", cause=cause
        )
    if code == "NotFoundException" and resource.startswith("alias/"):
        code = "AliasNotFound"  # KMS uses one code for aliases and keys
    if code in _BY_CODE:
        cls, message, fix = _BY_CODE[code]
        return cls(message.format(r=resource, op=operation), fix=fix, cause=cause)
    if code in _KEY_STATE or (service == "ssm" and code in _KEY_STATE_SSM):
        return exc.KeyStateError(
            f"The KMS key behind {resource} cannot be used for {operation}.",
            fix="Enable the key (`aws kms enable-key`) or cancel its pending deletion "
            f"(`manage.py kms_delete {_name(resource)} --cancel`).",
            cause=cause,
        )
    if code in THROTTLED:
        quota, fix = _quota(service, operation)
        return exc.AWSError(
            f"AWS throttled {action} on {resource}: {quota} was exceeded, after retries "
            "for up to CONFIO_KMS_THROTTLE_WAIT.",
            fix=fix,
            cause=cause,
        )
    if _not_aws(error):
        return exc.NotAnAWSEndpointError(
            f"The endpoint answered {action} with HTTP "
            f"{error.response.get('ResponseMetadata', {}).get('HTTPStatusCode', '?')} "
            "and no AWS error: it is not an AWS API.",
            fix="Point KMS_ENDPOINT_URL (or boto3's AWS_ENDPOINT_URL) at KMS and SSM, or unset "
            "it to use AWS (`manage.py kms_sandbox` runs a local endpoint).",
            cause=" ".join(cause.split())[:80],
        )
    return exc.AWSError(f"AWS {action} on {resource} failed.", cause=cause)


# What a KeyStateError's fix says for a key known only by its id (the signing path
# names the alias in every request it makes, so its errors name it).
UNNAMED = "ALIAS_NAME"


def _name(resource: str) -> str:
    """The alias name a KeyStateError's fix can name (from an alias, or a parameter at
    ``<prefix>/<name>/private-key``), or a placeholder."""
    if resource.startswith("alias/"):
        return resource.removeprefix("alias/")
    parts = resource.split("/")
    return parts[-2] if len(parts) > 2 and parts[-1] == "private-key" else UNNAMED


def _not_aws(error: ClientError) -> bool:
    """An answer no AWS API gives: botocore makes the HTTP status the code of a body it
    could not parse (e.g. an HTML page from another web server)."""
    err: Mapping[str, Any] = error.response.get("Error", {})
    message = str(err.get("Message", "")).lstrip().lower()
    return str(err.get("Code", "")).isdigit() or message.startswith(("<!doctype", "<html"))
