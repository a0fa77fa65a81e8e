"""Django's own error reports (the technical 500 page with DEBUG on, the error email's
HTML and text with DEBUG off) render every frame's local variables and every chained
exception. Rendered with Django's ExceptionReporter after failures on every path that
holds a secret, they contain the sentinel key and mnemonic in no encoding."""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Callable
from typing import Any

import boto3
import nacl.bindings
import pytest
from algosdk import transaction
from django.core import checks as django_checks
from django.test import RequestFactory, override_settings
from django.views.debug import ExceptionReporter, get_default_exception_reporter_filter

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.core import envelope
from confio_kms.lifecycle import provision
from confio_kms.sandbox import LocalLedger
from confio_kms.sponsor import AlgorandSponsorService

from .helpers import inject_error
from .test_secret_hygiene import SEED, SENTINEL_ADDRESS, SENTINEL_KEY, SENTINEL_MNEMONIC

RAW_KEY = base64.b64decode(SENTINEL_KEY)
WORDS = SENTINEL_MNEMONIC.split()
# One wrong checksum word: the other 24 recover the key (2048 tries).
TYPO = " ".join([*WORDS[:24], next(w for w in ("abandon", "ability") if w != WORDS[24])])
FORMS = [
    SENTINEL_KEY,
    RAW_KEY.hex(),
    SEED.hex(),
    base64.b64encode(SEED).decode(),
    base64.b32encode(RAW_KEY).decode().rstrip("="),
    base64.b32encode(SEED).decode().rstrip("="),
    repr(SEED)[2:-1],  # as Python shows bytes: b'\x07\x08\t...'
    *(" ".join(WORDS[i : i + 6]) for i in range(len(WORDS) - 5)),
]
REPORTER_FILTER = "confio_kms.reporting.SafeExceptionReporterFilter"
ADJACENT_LITERALS = re.compile(r"['\"]\s*\n\s*b?['\"]")
REQUEST = RequestFactory().get("/sponsor")  # with a request, the reports list the settings


def failure(action: Callable[[], Any]) -> BaseException:
    try:
        action()
    except BaseException as error:
        return error
    raise AssertionError("expected a failure")


def render(error: BaseException, **settings: Any) -> list[str]:
    """Django's debug page and error email text for ``error``, under ``settings``."""
    with override_settings(ROOT_URLCONF="tests.urls", **settings):
        get_default_exception_reporter_filter.cache_clear()  # Django caches it per process
        try:
            reporter = ExceptionReporter(REQUEST, type(error), error, error.__traceback__)
            return [reporter.get_traceback_html(), reporter.get_traceback_text()]
        finally:
            get_default_exception_reporter_filter.cache_clear()


def reports(error: BaseException) -> str:
    """Everything Django renders for ``error``: the debug page, and the email's parts."""
    texts = []
    for debug in (True, False):
        texts += render(error, DEBUG=debug, DEFAULT_EXCEPTION_REPORTER_FILTER=REPORTER_FILTER)
    # pprint wraps long strings into adjacent literals ('abc '\n 'def'): join them back.
    return ADJACENT_LITERALS.sub("", html.unescape("\n".join(texts)))


def assert_clean(error: BaseException) -> None:
    text = reports(error)
    assert type(error).__name__ in text and "Traceback" in text  # a real report
    leaked = [form for form in FORMS if form in text]
    assert leaked == [], f"{len(leaked)} form(s) of the sentinel in the report"


@pytest.fixture
def sentinel_account(monkeypatch: pytest.MonkeyPatch) -> None:
    """New envelope keys get the sentinel account, so creation's secrets are known."""
    monkeypatch.setattr(provision, "new_account", lambda: (SENTINEL_KEY, SENTINEL_ADDRESS))


def test_the_scan_finds_the_secrets_it_looks_for() -> None:
    def leaky(phrase: str = SENTINEL_MNEMONIC, key: str = SENTINEL_KEY) -> None:
        raise RuntimeError("boom")

    text = reports(failure(leaky))
    assert SENTINEL_KEY in text and " ".join(WORDS[:6]) in text


def test_import_failures(manager: AlgorandKMSManager, session: boto3.Session) -> None:
    manager.create_algorand_key("taken")
    assert_clean(failure(lambda: manager.import_existing_key("taken", SENTINEL_MNEMONIC)))
    assert_clean(failure(lambda: manager.import_existing_key("typo", TYPO)))
    inject_error(session, "ssm", "PutParameter", "AccessDeniedException")
    denied = AlgorandKMSManager(session=session)
    assert_clean(failure(lambda: denied.import_existing_key("denied", SENTINEL_MNEMONIC)))


def test_create_failures(sentinel_account: None, session: boto3.Session) -> None:
    inject_error(session, "ssm", "PutParameter", "AccessDeniedException")
    manager = AlgorandKMSManager(session=session)
    assert_clean(failure(lambda: manager.create_algorand_key("denied")))
    inject_error(session, "kms", "CreateAlias", "LimitExceededException")
    assert_clean(failure(lambda: manager.create_algorand_key("limited")))


@pytest.mark.parametrize("where", ["parse", "sign"])
def test_faults_inside_pynacl_while_the_key_is_in_use(
    where: str, manager: AlgorandKMSManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager.import_existing_key("sentinel", SENTINEL_MNEMONIC, network="localnet")
    signer = KMSSigner("sentinel")
    assert signer.address == SENTINEL_ADDRESS

    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise MemoryError

    if where == "parse":
        # Where the decrypted 64 bytes are a local, before they are wrapped.
        monkeypatch.setattr(envelope, "_PrivateKey", out_of_memory)
    else:
        # Inside PyNaCl, where the key is an argument of libsodium's binding.
        monkeypatch.setattr(nacl.bindings, "crypto_sign", out_of_memory)
    txn = transaction.PaymentTxn(
        SENTINEL_ADDRESS, LocalLedger.suggested_params(), SENTINEL_ADDRESS, 0
    )
    error = failure(lambda: signer.sign_transaction(txn))
    assert isinstance(error, MemoryError)
    assert_clean(error)


def test_the_sponsors_legacy_mnemonic_path() -> None:
    with override_settings(USE_KMS_SIGNING=False, ALGORAND_ADMIN_MNEMONIC=TYPO):
        assert_clean(failure(AlgorandSponsorService))
    with override_settings(USE_KMS_SIGNING=False, ALGORAND_ADMIN_MNEMONIC=SENTINEL_MNEMONIC):
        service = AlgorandSponsorService()
        sp = LocalLedger.suggested_params()
        bad = transaction.PaymentTxn(service.sponsor_address, sp, service.sponsor_address, 0)
        assert_clean(failure(lambda: service.sponsor_group([bad], sp)))


def test_another_setting_named_like_a_mnemonic_is_checked() -> None:
    """ALGORAND_ADMIN_MNEMONIC is hidden whatever the filter (below); another setting
    named like a mnemonic still needs confio_kms's filter, and W003 says so."""
    with override_settings(BACKUP_MNEMONIC=SENTINEL_MNEMONIC):
        error = failure(lambda: 1 / 0)
        shown = ADJACENT_LITERALS.sub("", html.unescape(render(error, DEBUG=True)[0]))
        assert SENTINEL_MNEMONIC in shown  # with Django's own filter
        assert SENTINEL_MNEMONIC not in reports(error)  # ours
        found = [m.id for m in django_checks.run_checks(tags=["confio_kms"])]
        assert "confio_kms.W003" in found
        with override_settings(DEFAULT_EXCEPTION_REPORTER_FILTER=REPORTER_FILTER):
            found = [m.id for m in django_checks.run_checks(tags=["confio_kms"])]
            assert "confio_kms.W003" not in found
    assert "confio_kms.W003" not in [m.id for m in django_checks.run_checks(tags=["confio_kms"])]


def test_another_environment_variable_named_like_a_mnemonic_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BACKUP_MNEMONIC", SENTINEL_MNEMONIC)
    found = [m for m in django_checks.run_checks(tags=["confio_kms"]) if m.id == "confio_kms.W003"]
    assert found and "(environment)" in found[0].msg and SENTINEL_MNEMONIC not in found[0].msg
    with override_settings(DEFAULT_EXCEPTION_REPORTER_FILTER=REPORTER_FILTER):
        assert "confio_kms.W003" not in [
            m.id for m in django_checks.run_checks(tags=["confio_kms"])
        ]


# --- the legacy mnemonic with Django's own filter -------------------------------------

DJANGO_FILTER = "django.views.debug.SafeExceptionReporterFilter"
# Words of the sentinel phrase that are common enough to be on a report for another
# reason (Django's template, code lines); every other word must be absent.
COMMON_WORDS = frozenset(
    {"about", "any", "error", "file", "list", "local", "main", "method", "name", "number"}
    | {"object", "option", "path", "process", "report", "setting", "still", "system"}
    | {"test", "time", "token", "true", "type", "use", "valid", "version"}
)


def default_reports(error: BaseException, request: Any = REQUEST) -> str:
    """What Django renders for ``error`` with its default filter: the debug page (DEBUG
    on), and the error email's HTML and text (DEBUG off)."""
    texts = []
    for debug in (True, False):
        with override_settings(
            ROOT_URLCONF="tests.urls", DEBUG=debug, DEFAULT_EXCEPTION_REPORTER_FILTER=DJANGO_FILTER
        ):
            get_default_exception_reporter_filter.cache_clear()
            try:
                reporter = ExceptionReporter(request, type(error), error, error.__traceback__)
                texts += [reporter.get_traceback_html(), reporter.get_traceback_text()]
            finally:
                get_default_exception_reporter_filter.cache_clear()
    return ADJACENT_LITERALS.sub("", html.unescape("\n".join(texts)))


def phrase_leaks(text: str, phrase: str) -> list[str]:
    """Where ``text`` shows part of ``phrase``, by word position only (never a word):
    each uncommon word alone, and any 3 consecutive words with any separators."""
    words = phrase.split()
    found = [
        f"word {i + 1}"
        for i, word in enumerate(words)
        if word not in COMMON_WORDS and re.search(rf"\b{word}\b", text, re.IGNORECASE)
    ]
    separator = r"[\s'\",\[\]()]+"
    found += [
        f"words {i + 1}-{i + 3}"
        for i in range(len(words) - 2)
        if re.search(r"\b" + separator.join(words[i : i + 3]) + r"\b", text, re.IGNORECASE)
    ]
    return found


def assert_no_phrase(error: BaseException, phrase: str, request: Any = REQUEST) -> None:
    text = default_reports(error, request)
    assert type(error).__name__ in text and "Traceback" in text  # a real report
    leaks = phrase_leaks(text, phrase)
    assert leaks == [], f"the report shows {', '.join(leaks)} of the mnemonic"


def test_the_leak_finder_finds_words_and_runs_of_words() -> None:
    def leaky(one: str = WORDS[2], run: str = ",".join(WORDS[5:8]).upper()) -> None:
        raise RuntimeError("boom")

    assert phrase_leaks(default_reports(failure(leaky)), SENTINEL_MNEMONIC) == [
        "word 3",
        "word 6",
        "word 7",
        "word 8",
        "words 6-8",
    ]


def test_a_valid_legacy_mnemonic_is_hidden_with_djangos_filter() -> None:
    """The setting (listed by every report) and the legacy signer's frames, for a
    failure anywhere and a failure of the signer's own path."""
    with override_settings(USE_KMS_SIGNING=False, ALGORAND_ADMIN_MNEMONIC=SENTINEL_MNEMONIC):
        assert_no_phrase(failure(lambda: 1 / 0), SENTINEL_MNEMONIC)
        service = AlgorandSponsorService()
        sp = LocalLedger.suggested_params()
        bad = transaction.PaymentTxn(service.sponsor_address, sp, service.sponsor_address, 0)
        assert_no_phrase(failure(lambda: service.sponsor_group([bad], sp)), SENTINEL_MNEMONIC)


def test_a_typoed_legacy_mnemonic_is_hidden_with_djangos_filter() -> None:
    with override_settings(USE_KMS_SIGNING=False, ALGORAND_ADMIN_MNEMONIC=TYPO):
        error = failure(AlgorandSponsorService)
        assert "checksum" in str(error)
        assert_no_phrase(error, TYPO)


@pytest.mark.parametrize("phrase", [SENTINEL_MNEMONIC, TYPO], ids=["valid", "typo"])
def test_a_legacy_mnemonic_in_the_environment_is_hidden_with_djangos_filter(
    phrase: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process starts with the mnemonic in its environment; under runserver each
    request's META is wsgiref's copy of that environment, which the debug page lists."""
    from wsgiref.handlers import BaseHandler

    from django.apps import apps
    from django.core.handlers.wsgi import WSGIRequest

    monkeypatch.setenv("ALGORAND_ADMIN_MNEMONIC", phrase)
    monkeypatch.setattr(BaseHandler, "os_environ", {**BaseHandler.os_environ, **os.environ})
    apps.get_app_config("confio_kms").ready()  # as at the process's start
    environ = {**BaseHandler.os_environ, **REQUEST.META}
    request = WSGIRequest(environ)
    with override_settings(USE_KMS_SIGNING=False):
        if phrase == TYPO:
            error = failure(AlgorandSponsorService)
        else:
            service = AlgorandSponsorService()
            assert service.sponsor_address == SENTINEL_ADDRESS
            error = failure(lambda: service.sign_transactions([None]))  # type: ignore[list-item]
    assert_no_phrase(error, phrase, request)


def test_the_hidden_setting_is_still_the_mnemonic_for_its_readers() -> None:
    from django.conf import settings

    from confio_kms import settings as config

    with override_settings(ALGORAND_ADMIN_MNEMONIC=SENTINEL_MNEMONIC):
        value = settings.ALGORAND_ADMIN_MNEMONIC
        assert SENTINEL_MNEMONIC not in f"{value!r} {value} {value:>10} {[value]}"
        assert " ".join(value.split()) == SENTINEL_MNEMONIC  # string operations see it
        assert config.admin_mnemonic() == SENTINEL_MNEMONIC
        assert type(config.admin_mnemonic()) is str


def test_w003_does_not_warn_of_the_legacy_mnemonic_it_hides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hidden whatever the filter, the legacy setting and variable need no warning."""
    with override_settings(ALGORAND_ADMIN_MNEMONIC=SENTINEL_MNEMONIC):
        assert "confio_kms.W003" not in [
            m.id for m in django_checks.run_checks(tags=["confio_kms"])
        ]
    monkeypatch.setenv("ALGORAND_ADMIN_MNEMONIC", SENTINEL_MNEMONIC)
    assert "confio_kms.W003" not in [m.id for m in django_checks.run_checks(tags=["confio_kms"])]
