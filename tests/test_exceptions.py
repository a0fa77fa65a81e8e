"""The error hierarchy: typed, catchable as the matching standard error, and
every message names its cause and fix.

The one shared ``ConfioKMSError.__str__`` is tested once per branch, by a table
of parts -> text; each class is then checked to print through it, in one walk.
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from django.core.exceptions import ImproperlyConfigured

import confio_kms
from confio_kms.common import exceptions as exc
from confio_kms.core.aws import translate_client_error


def client_error(code: str, message: str = "msg") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "Op")


# Two periods in a row, a sentence's period after an ellipsis, or a period, space(s)
# and a period: never in a message. An ellipsis ("...") and a quoted "'..'" are fine.
DOUBLED = re.compile(r"(?<![.'\"])\.\.(?![.'\"])|\.{4,}|\.\s+\.")


def test_the_doubled_pattern() -> None:
    for bad in ("a..", "a.. b", "a. .", "a....", "a .  ."):
        assert DOUBLED.search(bad), bad
    for good in ("a.", "a...", "a... b", "'..' segments", "alias/x.y", "a. (b.) c."):
        assert not DOUBLED.search(good), good


# --- the shared __str__, once per branch ---------------------------------------------

# (message, cause, fix) -> str(ConfioKMSError(message, cause=cause, fix=fix)). The
# message and the fix end in exactly one period (``_sentence``); the cause's period is
# only reduced to one, never added (``period=False``); "?", "!" and an ellipsis stay.
STR_TABLE = [
    # which parts __str__ prints
    pytest.param("It broke.", None, None, "It broke.", id="message-only"),
    pytest.param(
        "It broke.",
        "ThrottlingException: slow down",
        "Do this.",
        "It broke. (AWS said: ThrottlingException: slow down) Fix: Do this.",
        id="message-cause-fix",
    ),
    pytest.param("It broke", "Code: x", None, "It broke. (AWS said: Code: x)", id="cause-no-fix"),
    pytest.param("No node", None, "Start one", "No node. Fix: Start one.", id="fix-no-cause"),
    pytest.param("It broke", "", "", "It broke.", id="empty-cause-and-fix-left-out"),
    pytest.param(
        "The KMS alias alias/k does not exist.",
        "NotFoundException: Alias alias/k is not found.",
        "List the aliases with `manage.py kms_list`.",
        "The KMS alias alias/k does not exist. (AWS said: NotFoundException: Alias alias/k "
        "is not found.) Fix: List the aliases with `manage.py kms_list`.",
        id="documented-form",
    ),
    # message and fix: exactly one period
    pytest.param("It broke..", None, "Do this..", "It broke. Fix: Do this.", id="two-periods"),
    pytest.param(
        "It broke. .", None, "Do this . .", "It broke. Fix: Do this.", id="spaced-periods"
    ),
    pytest.param("  It broke. ", None, " Do this ", "It broke. Fix: Do this.", id="stray-spaces"),
    pytest.param("See `x`...", None, "See `y`...", "See `x`... Fix: See `y`...", id="ellipsis"),
    pytest.param("Wait....", None, "Wait ...", "Wait... Fix: Wait...", id="ellipsis-extra-dots"),
    pytest.param("Why?", None, "Ask!", "Why? Fix: Ask!", id="question-exclamation"),
    pytest.param("Why? ", None, " Ask! ", "Why? Fix: Ask!", id="question-exclamation-spaces"),
    pytest.param("", None, None, "", id="empty-message"),
    pytest.param("   ", None, None, "", id="blank-message"),
    pytest.param("...", None, None, "...", id="only-an-ellipsis"),
    # cause: a period kept or reduced to one, never added
    pytest.param("A", "Code: no period", None, "A. (AWS said: Code: no period)", id="cause-bare"),
    pytest.param("A", "Code: msg.", None, "A. (AWS said: Code: msg.)", id="cause-period"),
    pytest.param("A", "Code: two..", None, "A. (AWS said: Code: two.)", id="cause-two-periods"),
    pytest.param("A", "Code: x. .", None, "A. (AWS said: Code: x.)", id="cause-spaced-periods"),
    pytest.param("A", " Code: x ", None, "A. (AWS said: Code: x)", id="cause-stray-spaces"),
    pytest.param("A", "Code: x. ", None, "A. (AWS said: Code: x.)", id="cause-period-space"),
    pytest.param("A", "Code: x....", None, "A. (AWS said: Code: x...)", id="cause-ellipsis"),
    pytest.param("A", "Code: why?", None, "A. (AWS said: Code: why?)", id="cause-question"),
]


@pytest.mark.parametrize("message, cause, fix, expected", STR_TABLE)
def test_str(message: str, cause: str | None, fix: str | None, expected: str) -> None:
    error = exc.ConfioKMSError(message, cause=cause, fix=fix)
    assert str(error) == expected
    assert not DOUBLED.search(str(error))
    # the parts themselves are kept as given; only the message is the exception's arg
    assert (error.message, error.cause, error.fix) == (message, cause, fix)
    assert error.args == (message,)


# --- every class ---------------------------------------------------------------------

# Standard exceptions a class is documented to be catchable as.
STANDARD_BASES: dict[type, type] = {
    exc.ConfigurationError: ImproperlyConfigured,
    exc.InvalidAliasError: ValueError,
    exc.InvalidMnemonicError: ValueError,
    exc.NotATransactionError: TypeError,
    exc.AliasNotFoundError: LookupError,
    exc.ParameterNotFoundError: LookupError,
    exc.AccessDeniedError: PermissionError,
    exc.AWSConnectionError: ConnectionError,
}


def test_every_error_class() -> None:
    """Each class derives from the base, has its documented standard base, and prints
    through the shared ``__str__`` (the node's errors quote the node, the others AWS),
    the message kept as given."""
    defined = [
        c
        for _, c in inspect.getmembers(exc, inspect.isclass)
        if issubclass(c, Exception) and c.__module__ == exc.__name__
    ]
    assert len(defined) > 15
    assert set(STANDARD_BASES) <= set(defined)
    wrong = []
    for cls in defined:
        if not issubclass(cls, exc.ConfioKMSError):
            wrong.append(f"{cls.__name__}: not a ConfioKMSError")
            continue
        standard = STANDARD_BASES.get(cls, Exception)
        if not issubclass(cls, standard):
            wrong.append(f"{cls.__name__}: not a {standard.__name__}")
        # a part _sentence must shorten in each place: message "..", cause "..", fix "...."
        error = cls("It broke..", cause="Code: two..", fix="See `x`....")
        said = "the node said" if issubclass(cls, exc.AlgodError) else "AWS said"
        if issubclass(cls, exc.GuardUnavailableError):  # the guard's database
            said = "the database said"
        expected = f"It broke. ({said}: Code: two.) Fix: See `x`..."
        if str(error) != expected:
            wrong.append(f"{cls.__name__}: {str(error)!r} != {expected!r}")
        if str(cls("Why?", fix="Ask!")) != "Why? Fix: Ask!":
            wrong.append(f"{cls.__name__}: {str(cls('Why?', fix='Ask!'))!r}")
        if error.message != "It broke.." or error.args != ("It broke..",):
            wrong.append(f"{cls.__name__}: message {error.message!r}, args {error.args!r}")
    assert not wrong, "\n".join(wrong)


# --- AWS errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, service, operation, resource, cls, needles",
    [
        (
            "AccessDeniedException",
            "kms",
            "DescribeKey",
            "alias/k",
            exc.AccessDeniedError,
            ("Grant the IAM action kms:DescribeKey on alias/k",),
        ),
        (
            "AccessDeniedException",
            "ssm",
            "GetParameter",
            "/p",
            exc.AccessDeniedError,
            ("kms:Decrypt on the KMS key",),
        ),
        (
            "NotFoundException",
            "kms",
            "DescribeKey",
            "alias/k",
            exc.AliasNotFoundError,
            ("kms_list",),
        ),
        (
            "ParameterNotFound",
            "ssm",
            "GetParameter",
            "/p",
            exc.ParameterNotFoundError,
            ("kms_setup --create-new",),
        ),
        (
            "AlreadyExistsException",
            "kms",
            "CreateAlias",
            "alias/k",
            exc.AliasExistsError,
            ("never replaces",),
        ),
        (
            "ParameterAlreadyExists",
            "ssm",
            "PutParameter",
            "/p",
            exc.ParameterExistsError,
            ("Choose another alias",),
        ),
        ("DisabledException", "kms", "Sign", "alias/k", exc.KeyStateError, ("enable-key",)),
        (
            "KMSInvalidStateException",
            "ssm",
            "GetParameter",
            "/p",
            exc.KeyStateError,
            ("cancel its pending deletion",),
        ),
        (
            "ThrottlingException",
            "ssm",
            "GetParameter",
            "/p",
            exc.AWSError,
            ("ssm:GetParameter", "Parameter Store"),
        ),
        (
            "Throttling",
            "kms",
            "Sign",
            "alias/k",
            exc.AWSError,
            ("Cryptographic operations (ECC) request rate", "1,000/s"),
        ),
        (
            "ThrottlingException",
            "kms",
            "Decrypt",
            "alias/k",
            exc.AWSError,
            ("Cryptographic operations (symmetric) request rate", "10,000/s"),
        ),
        (
            "ThrottlingException",
            "kms",
            "DescribeKey",
            "alias/k",
            exc.AWSError,
            ("KMS's request quota for DescribeKey",),
        ),
        (
            "InternalFailure",
            "kms",
            "Sign",
            "alias/k",
            exc.AWSError,
            ("kms:Sign on alias/k failed",),
        ),
    ],
)
def test_aws_errors_are_translated(
    code: str, service: str, operation: str, resource: str, cls: type, needles: tuple[str, ...]
) -> None:
    error = translate_client_error(client_error(code), service, operation, resource)
    assert type(error) is cls
    for needle in needles:
        assert needle in str(error)
    assert code in str(error)


@pytest.mark.parametrize(
    "code",
    ["AccessDeniedException", "AliasNotFound", "NotFoundException", "InvalidKeyUsageException",
     "ParameterNotFound", "AlreadyExistsException", "ParameterAlreadyExists",
     "DisabledException", "ThrottlingException", "InternalFailure"],
)  # fmt: skip
def test_translated_aws_errors_have_no_doubled_period(code: str) -> None:
    """Each code's own message and fix; AWS's message is the cause, its endings are
    the table's (``test_str``), tried here once more in the translated text."""
    for aws_message in ("Alias x is not found.", "no period", "two.."):
        for service, operation, resource in (
            ("kms", "Sign", "alias/k"),
            ("ssm", "GetParameter", "/p"),
        ):
            error = translate_client_error(
                client_error(code, aws_message), service, operation, resource
            )
            assert not DOUBLED.search(str(error)), str(error)
            assert str(error).count(" Fix: ") <= 1


# --- every error the source constructs -----------------------------------------------


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


# The whole package (exceptions.py now lives in confio_kms/common/).
PACKAGE = Path(confio_kms.__file__).resolve().parent


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
