"""AWS client setup and the translation of AWS failures into confio_kms errors.

One ``AWSClients`` per manager or signer: the boto3 session and its KMS and
SSM clients are built once and reused (boto3 clients are thread-safe; sessions
are not, so nothing builds clients after construction).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import boto3
from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from . import config
from . import exceptions as exc
from .redaction import install_redaction

CLIENT_CONFIG = Config(  # type: ignore[call-arg]  # stubs lag botocore: user_agent_appid
    retries={"mode": "standard", "total_max_attempts": 4},
    connect_timeout=5,
    read_timeout=10,
    # Native keys sign a group with concurrent requests (one per transaction).
    max_pool_connections=32,
    user_agent_appid="confio-kms",
)

_DENIED = {"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"}
_KEY_STATE = {"DisabledException", "KMSInvalidStateException", "KeyUnavailableException"}
_KEY_STATE_SSM = {"InvalidKeyId"}
_CARRIES_SECRET = {"PutParameter"}
_THROTTLED = {"ThrottlingException", "Throttling", "TooManyRequestsException"}


class AWSClients:
    """The boto3 session and the KMS and SSM clients of one manager or signer.

    ``region_name`` falls back to ``KMS_REGION`` (settings, environment, .env), then
    the session's region (``AWS_DEFAULT_REGION``, the profile), then the guide's
    ``eu-central-2``; ``endpoint_url`` falls back to ``AWS_ENDPOINT_URL`` as boto3
    reads it.
    """

    def __init__(
        self,
        region_name: str | None = None,
        *,
        endpoint_url: str | None = None,
        session: boto3.Session | None = None,
    ) -> None:
        install_redaction()
        self.session = session or boto3.Session()
        self.region = config.region(region_name, self.session.region_name)
        self.endpoint_url = endpoint_url
        self.kms = self.session.client(
            "kms", region_name=self.region, endpoint_url=endpoint_url, config=CLIENT_CONFIG
        )
        self.ssm = self.session.client(
            "ssm", region_name=self.region, endpoint_url=endpoint_url, config=CLIENT_CONFIG
        )
        # Loggers created while building the clients get the filter too.
        install_redaction()

    @property
    def scope(self) -> str:
        """Names the AWS endpoint these clients talk to, for cache keys."""
        return f"{self.region}|{self.kms.meta.endpoint_url}"

    def call(self, service: str, operation: str, resource: str, **params: Any) -> dict[str, Any]:
        """Call ``operation`` (e.g. ``"DescribeKey"``) and translate its failures.

        ``resource`` names what the request is about (an alias, a path) in errors.
        """
        if operation not in _CARRIES_SECRET:
            return self._call(service, operation, resource, params)
        try:
            return self._call(service, operation, resource, params)
        except exc.ConfioKMSError as error:
            failure = error
        # The request's parameters hold a private key, and so do botocore's frames in
        # the original traceback: error reporters record both. Raise without them.
        params.clear()
        failure.__cause__ = failure.__context__ = failure.__traceback__ = None
        raise failure

    def paginate(
        self, service: str, operation: str, resource: str, items: str, **params: Any
    ) -> Iterator[dict[str, Any]]:
        """Every item of ``items`` across the pages of a KMS list operation."""
        marker: str | None = None
        while True:
            page = self.call(
                service, operation, resource, **params, **({"Marker": marker} if marker else {})
            )
            yield from page.get(items, [])
            marker = page.get("NextMarker")
            if not page.get("Truncated") or not marker:
                return

    def _call(
        self, service: str, operation: str, resource: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        client = self.kms if service == "kms" else self.ssm
        try:
            response: dict[str, Any] = getattr(client, xform_name(operation))(**params)
        except ClientError as error:
            raise translate_client_error(error, service, operation, resource) from error
        except (NoCredentialsError, PartialCredentialsError) as error:
            raise exc.CredentialsError(
                f"No usable AWS credentials for {service}:{operation} on {resource}.",
                fix="Configure credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "or an instance/task role).",
            ) from error
        except (BotoConnectionError, HTTPClientError) as error:
            # Connection refused, reset or timed out, after botocore's retries.
            raise exc.AWSConnectionError(
                f"Could not reach AWS {service} at {client.meta.endpoint_url} "
                f"for {operation} on {resource}.",
                fix="Check the network, the region and AWS_ENDPOINT_URL / endpoint_url.",
                cause=type(error).__name__,
            ) from error
        except BotoCoreError as error:
            raise exc.AWSError(
                f"AWS {service}:{operation} on {resource} failed.",
                cause=type(error).__name__,
            ) from error
        return response


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


def translate_client_error(
    error: ClientError, service: str, operation: str, resource: str
) -> exc.ConfioKMSError:
    """Map an AWS error onto the narrowest confio_kms error, naming cause and fix."""
    err: Mapping[str, Any] = error.response.get("Error", {})
    code = str(err.get("Code", ""))
    cause = f"{code}: {err.get('Message', '')}".strip(": ")
    action = f"{service}:{operation}"
    if code in _DENIED:
        fix = f"Grant the IAM action {action} on {resource} to the credentials in use"
        if service == "ssm" and operation == "GetParameter":
            fix += ", and kms:Decrypt on the KMS key that encrypts the parameter"
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
            "(AlgorandKMSManager.cancel_key_deletion).",
            cause=cause,
        )
    if code in _THROTTLED:
        return exc.AWSError(
            f"AWS throttled {action} on {resource}, after retries.",
            fix="Lower the request rate, or raise the quota: Parameter Store's throughput "
            "(40 requests/s by default; 'higher throughput' in the SSM settings) for envelope "
            "keys, KMS's request quota for native keys (Service Quotas console).",
            cause=cause,
        )
    return exc.AWSError(f"AWS {action} on {resource} failed.", cause=cause)
