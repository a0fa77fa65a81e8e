"""Setting values as text becomes typed values: the casts ``confio_kms.settings`` applies
to what it reads (Django settings keep their types; the environment and .env give text).

Each raises ``ValueError`` with the value's repr; the reader turns it into a
``ConfigurationError`` naming the setting and where it was looked up. Nothing here
reads a setting.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import urllib.parse
from collections.abc import Mapping

from confio_kms.algorand import networks, validation
from confio_kms.common.exceptions import InvalidAliasError

_REGION_NAME = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")


def as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{value!r} is not a boolean (use true or false)")


def as_int(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a whole number")
    return int(str(value)) if not isinstance(value, int) else value


def microalgos(value: object) -> int:
    amount = as_int(value)
    if amount < 0:
        raise ValueError(f"{value!r} is not 0 microalgos or more")
    return amount


def confio_env(value: object) -> str:
    if value not in networks.DEPLOYMENT_NETWORKS:
        raise ValueError(f"{value!r} is not one of {', '.join(networks.DEPLOYMENT_NETWORKS)}")
    return str(value)


def region(value: object) -> str:
    if not isinstance(value, str) or not _REGION_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not an AWS region name such as eu-central-2")
    return value


def alias(value: object) -> str:
    try:
        return validation.alias_name(value)
    except InvalidAliasError as error:
        raise ValueError(error.message) from None


def prefix(value: object) -> str:
    try:
        return validation.ssm_prefix(value)
    except InvalidAliasError as error:
        raise ValueError(error.message) from None


def optional_url(value: object) -> str | None:
    text = str(value or "").strip()
    if text and not re.fullmatch(r"https?://\S+", text):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return text or None


def seconds(value: object) -> float:
    if value is None:
        return math.inf  # Django's way of saying "never expire"
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number of seconds")
    seconds = float(str(value)) if not isinstance(value, int | float) else float(value)
    if not seconds >= 0:
        raise ValueError(f"{value!r} is not 0 seconds or more")
    return seconds


def positive_seconds(value: object) -> float:
    if value is None or isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number of seconds")
    seconds = float(str(value)) if not isinstance(value, int | float) else float(value)
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"{value!r} is not a number of seconds above 0")
    return seconds


def attempts(value: object) -> int:
    attempts = as_int(value)
    if not 1 <= attempts <= 10:
        raise ValueError(f"{value!r} is not a number of attempts from 1 to 10")
    return attempts


def calls(value: object) -> int:
    calls = as_int(value)
    if calls < 1:
        raise ValueError(f"{value!r} is not 1 or more")
    return calls


def concurrency(value: object) -> int:
    threads = as_int(value)
    if not 1 <= threads <= 64:
        raise ValueError(f"{value!r} is not a number of requests from 1 to 64")
    return threads


def text(value: object) -> str:
    # py-algorand-sdk and algojig pass genesis hashes as base64 str or bytes alike.
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


def hashes(value: object) -> list[str]:
    if isinstance(value, str):
        return [h.strip() for h in value.split(",") if h.strip()]
    if isinstance(value, list | tuple | set | frozenset):
        return [text(h) for h in value]
    raise ValueError(f"{value!r} is not a list of base64 genesis hashes")


def is_loopback(url: str | None) -> bool:
    """Whether ``url`` names this machine by a loopback address: ``localhost``,
    127.0.0.0/8 or ::1. Names are not looked up: what a name resolves to can change."""
    try:
        host = urllib.parse.urlsplit(url or "").hostname or ""
    except ValueError:
        return False
    if host.rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def mapping(value: object) -> dict[str, object]:
    """A mapping, given as one in Django settings or as JSON text in the environment."""
    parsed = json.loads(value) if isinstance(value, str) else value
    if not isinstance(parsed, Mapping):
        raise ValueError("expected a mapping (JSON object)")
    return dict(parsed)
