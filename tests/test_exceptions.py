"""The error hierarchy: typed, catchable as the matching standard error, and
every message names its cause and fix."""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from django.core.exceptions import ImproperlyConfigured

from confio_kms.common import exceptions as exc
from confio_kms.core.aws import translate_client_error


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


# --- no doubled periods -------------------------------------------------------------

# Two periods in a row, a sentence's period after an ellipsis, or a period, space(s)
# and a period: never in a message. An ellipsis ("...") and a quoted "'..'" are fine.
DOUBLED = re.compile(r"(?<![.'\"])\.\.(?![.'\"])|\.{4,}|\.\s+\.")
ERROR_CLASSES = [
    c
    for _, c in inspect.getmembers(exc, inspect.isclass)
    if issubclass(c, exc.ConfioKMSError) and c.__module__ == exc.__name__
]
ENDINGS = ["It broke", "It broke.", "It broke..", "It broke. .", "It broke. ", "See `x`..."]


def test_the_doubled_pattern() -> None:
    for bad in ("a..", "a.. b", "a. .", "a....", "a .  ."):
        assert DOUBLED.search(bad), bad
    for good in ("a.", "a...", "a... b", "'..' segments", "alias/x.y", "a. (b.) c."):
        assert not DOUBLED.search(good), good


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("message", ENDINGS)
def test_str_ends_each_part_once(cls: type[exc.ConfioKMSError], message: str) -> None:
    for fix in [None, *ENDINGS]:
        for cause in (None, "Code: AWS's message.", "Code: no period", "Code: two.."):
            text = str(cls(message, fix=fix, cause=cause))
            assert not DOUBLED.search(text), text
            assert text.startswith(("It broke.", "See `x`..."))
            if fix:
                assert text.endswith((" Fix: It broke.", " Fix: See `x`..."))
            if cause:
                assert f"({cls.said}: Code: " in text
    # a question keeps its mark, and the message itself is kept as given
    assert str(cls("Why?", fix="Ask!")) == "Why? Fix: Ask!"
    assert cls(message).message == message and cls(message).args == (message,)


def test_str_keeps_the_documented_form() -> None:
    error = exc.AliasNotFoundError(
        "The KMS alias alias/k does not exist.",
        fix="List the aliases with `manage.py kms_list`.",
        cause="NotFoundException: Alias alias/k is not found.",
    )
    assert str(error) == (
        "The KMS alias alias/k does not exist. (AWS said: NotFoundException: Alias alias/k "
        "is not found.) Fix: List the aliases with `manage.py kms_list`."
    )
    assert str(exc.AlgodError("No node", fix="Start one")) == "No node. Fix: Start one."


@dataclass
class Raised:
    """An error the library constructs, its texts rendered with "X" for each value."""

    where: str
    cls: str
    message: str
    fix: str


def _render(node: ast.expr | None, constants: dict[str, str]) -> str:
    """A message's text: literals as written, module string constants resolved, any
    other value "X" (a !r value "'X'")."""
    if node is None:
        return ""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else "X"
    if isinstance(node, ast.JoinedStr):
        return "".join(_render(part, constants) for part in node.values)
    if isinstance(node, ast.FormattedValue):
        if isinstance(node.value, ast.Name) and node.value.id in constants:
            return constants[node.value.id]
        return "'X'" if node.conversion == ord("r") else "X"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _render(node.left, constants) + _render(node.right, constants)
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    return "X"


def raised_errors() -> list[Raised]:
    """Every ``...Error(message, fix=...)`` constructed in confio_kms's source."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if not name.endswith("Error") or not node.args:
                continue
            fix = next((k.value for k in node.keywords if k.arg == "fix"), None)
            found.append(
                Raised(
                    f"{path.relative_to(PACKAGE.parent)}:{node.lineno}",
                    name,
                    _render(node.args[0], constants),
                    _render(fix, constants),
                )
            )
    return found


PACKAGE = Path(exc.__file__).resolve().parent


def test_no_message_in_the_source_has_a_doubled_period() -> None:
    raised = raised_errors()
    assert len(raised) > 80  # the scan sees the library's errors
    doubled = []
    for r in raised:
        cls = getattr(exc, r.cls, None)
        if isinstance(cls, type) and issubclass(cls, exc.ConfioKMSError):
            text = str(cls(r.message, fix=r.fix or None))
        else:  # CommandError and standard errors print their text as given
            text = f"{r.message} {r.fix}"
        if DOUBLED.search(text):
            doubled.append(f"{r.where}: {text}")
    assert not doubled, "\n".join(doubled)


def test_hints_name_the_projects_settings_not_boto3s_variables() -> None:
    """A hint may mention boto3's fallback variable, but only beside the setting."""
    pairs = {
        "AWS_ENDPOINT_URL": "KMS_ENDPOINT_URL",
        "AWS_DEFAULT_REGION": "KMS_REGION",
        "AWS_REGION": "KMS_REGION",
    }
    wrong = [
        f"{r.where}: {r.fix}"
        for r in raised_errors()
        for boto3_name, setting in pairs.items()
        if re.search(rf"\b{boto3_name}\b", r.message + r.fix) and setting not in r.fix
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    "code",
    ["AccessDeniedException", "AliasNotFound", "NotFoundException", "InvalidKeyUsageException",
     "ParameterNotFound", "AlreadyExistsException", "ParameterAlreadyExists",
     "DisabledException", "ThrottlingException", "InternalFailure"],
)  # fmt: skip
@pytest.mark.parametrize("aws_message", ["Alias x is not found.", "no period", "two.."])
def test_translated_aws_errors_have_no_doubled_period(code: str, aws_message: str) -> None:
    for service, operation, resource in (("kms", "Sign", "alias/k"), ("ssm", "GetParameter", "/p")):
        error = translate_client_error(
            client_error(code, aws_message), service, operation, resource
        )
        assert not DOUBLED.search(str(error)), str(error)
        assert str(error).count(" Fix: ") <= 1
