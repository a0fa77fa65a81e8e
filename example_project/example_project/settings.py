"""A minimal Django project that signs with confio_kms, configured as the README says.

Every value comes from the environment or a .env file (python-decouple).
Importing this module makes no AWS request: the sponsor address is resolved on
first use.
"""

from pathlib import Path

from decouple import config

from confio_kms.factory import sponsor_address

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = config("DJANGO_SECRET_KEY", default="example-project-not-for-production")
DEBUG = config("DEBUG", default=False, cast=bool)
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "confio_kms",
    "payments",
]
ROOT_URLCONF = "example_project.urls"
# The guardrails (kms_pause, CONFIO_KMS_LIMITS) live here: run `manage.py migrate` first.
# DJANGO_DB_PATH: another SQLite file (the sandbox run uses a temporary one).
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": config("DJANGO_DB_PATH", default=str(BASE_DIR / "db.sqlite3")),
    }
}
USE_TZ = True

# confio_kms reads USE_KMS_SIGNING, CONFIO_ENV, KMS_REGION, KMS_KEY_ALIAS_TESTNET,
# KMS_KEY_ALIAS_MAINNET, KMS_SSM_PREFIX and KMS_ENDPOINT_URL from here or, when
# absent, from the environment / .env. The one line this project needs:
ALGORAND_SPONSOR_ADDRESS = sponsor_address(config("ALGORAND_SPONSOR_ADDRESS", default=""))
# Error pages and emails list settings; this filter hides a legacy mnemonic among them.
DEFAULT_EXCEPTION_REPORTER_FILTER = "confio_kms.reporting.SafeExceptionReporterFilter"

# Celery (example_project/celery.py, payments/tasks.py); unused unless a worker runs.
CELERY_BROKER_URL = config("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = config("CELERY_RESULT_BACKEND", default=CELERY_BROKER_URL)
