"""The error hierarchy: typed, catchable as the matching standard error, and
every message names its cause and fix."""

from __future__ import annotations

import inspect

import pytest
from botocore.exceptions import ClientError
from django.core.exceptions import ImproperlyConfigured

from confio_kms import exceptions as exc
from confio_kms.aws import translate_client_error


def client_error(code: str, message: str = "msg") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "Op")


def test_every_error_derives_from_the_base() -> None:
    classes = [c for _, c in inspect.getmembers(exc, inspect.isclass) if issubclass(c, Exception)]
    assert len(classes) > 15
    for cls in classes:
        if cls.__module__ == exc.__name__:
            assert issubclass(cls, exc.ConfioKMSError), cls


@pytest.mark.parametrize(
    "cls, standard",
    [
        (exc.ConfigurationError, ImproperlyConfigured),
        (exc.InvalidAliasError, ValueError),
        (exc.InvalidMnemonicError, ValueError),
        (exc.NotATransactionError, TypeError),
        (exc.AliasNotFoundError, LookupError),
        (exc.ParameterNotFoundError, LookupError),
        (exc.AccessDeniedError, PermissionError),
        (exc.AWSConnectionError, ConnectionError),
    ],
)
def test_standard_bases(cls: type, standard: type) -> None:
    assert issubclass(cls, standard)


def test_str_adds_cause_and_fix() -> None:
    error = exc.AWSError("It broke.", fix="Do this.", cause="ThrottlingException: slow down")
    assert str(error) == "It broke. (AWS said: ThrottlingException: slow down) Fix: Do this."
    assert error.args == ("It broke.",)


@pytest.mark.parametrize(
    "code, service, operation, resource, cls, needle",
    [
        (
            "AccessDeniedException",
            "kms",
            "DescribeKey",
            "alias/k",
            exc.AccessDeniedError,
            "Grant the IAM action kms:DescribeKey on alias/k",
        ),
        (
            "AccessDeniedException",
            "ssm",
            "GetParameter",
            "/p",
            exc.AccessDeniedError,
            "kms:Decrypt on the KMS key",
        ),
        ("NotFoundException", "kms", "DescribeKey", "alias/k", exc.AliasNotFoundError, "kms_list"),
        (
            "ParameterNotFound",
            "ssm",
            "GetParameter",
            "/p",
            exc.ParameterNotFoundError,
            "kms_setup --create-new",
        ),
        (
            "AlreadyExistsException",
            "kms",
            "CreateAlias",
            "alias/k",
            exc.AliasExistsError,
            "never replaces",
        ),
        (
            "ParameterAlreadyExists",
            "ssm",
            "PutParameter",
            "/p",
            exc.ParameterExistsError,
            "Choose another alias",
        ),
        ("DisabledException", "kms", "Sign", "alias/k", exc.KeyStateError, "enable-key"),
        (
            "KMSInvalidStateException",
            "ssm",
            "GetParameter",
            "/p",
            exc.KeyStateError,
            "cancel its pending deletion",
        ),
        ("ThrottlingException", "ssm", "GetParameter", "/p", exc.AWSError, "ssm:GetParameter"),
        ("ThrottlingException", "ssm", "GetParameter", "/p", exc.AWSError, "Parameter Store"),
        ("Throttling", "kms", "Sign", "alias/k", exc.AWSError, "KMS's request quota"),
        ("InternalFailure", "kms", "Sign", "alias/k", exc.AWSError, "kms:Sign on alias/k failed"),
    ],
)
def test_aws_errors_are_translated(
    code: str, service: str, operation: str, resource: str, cls: type, needle: str
) -> None:
    error = translate_client_error(client_error(code), service, operation, resource)
    assert type(error) is cls
    assert needle in str(error)
    assert code in str(error)
