"""A minimal Django project that installs confio_kms.

AWS settings come from the standard AWS environment (AWS_PROFILE or access keys,
AWS_DEFAULT_REGION, and AWS_ENDPOINT_URL for the sandbox). Importing this module
makes no AWS request.
"""

from pathlib import Path

from decouple import config

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = config("DJANGO_SECRET_KEY", default="example-project-not-for-production")
DEBUG = config("DEBUG", default=False, cast=bool)
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "confio_kms",
]

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
USE_TZ = True
