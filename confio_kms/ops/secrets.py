"""Legacy signing secrets still configured: the scan ``kms_doctor`` (settings.mnemonic)
and ``manage.py check`` (confio_kms.W003) share.

It reads what it is given, the Django settings and the environment as the shell
hands them in, and returns names only: a value is tested, never kept or shown.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping

from confio_kms.algorand import validation
from confio_kms.common.exceptions import InvalidMnemonicError
from confio_kms.common.redaction import HiddenStr

# The legacy setting that held the sponsor's 25-word mnemonic before KMS signing.
LEGACY_MNEMONIC = "ALGORAND_ADMIN_MNEMONIC"
# Names that say mnemonic, seed, phrase or private key: a legacy signing secret.
MNEMONIC_LIKE = re.compile("MNEMONIC|SEED|PHRASE|PRIVATE", re.IGNORECASE)


def holds_algorand_secret(value: object) -> bool:
    """Whether ``value`` is a string holding an Algorand account's secret: a valid
    25-word mnemonic (its checksum word included) or the base64 of a 64-byte private
    key, as py-algorand-sdk writes them. The value is never kept or shown."""
    if not isinstance(value, str):
        return False
    words = value.split()
    if len(words) == validation.MNEMONIC_WORDS:
        try:
            validation.private_key_from_mnemonic(value)
        except InvalidMnemonicError:  # its message never quotes a word
            return False
        return True
    if len(words) != 1 or len(words[0]) not in (86, 87, 88):
        return False
    text = words[0]
    try:
        return len(base64.b64decode(text + "=" * (-len(text) % 4), validate=True)) == 64
    except (binascii.Error, ValueError):
        return False


def secret_names(
    settings: Mapping[str, object],
    environ: Mapping[str, str],
    named: re.Pattern[str],
    hidden: re.Pattern[str] | None = None,
    *,
    shown_only: bool = False,
) -> list[str]:
    """The names of the non-empty ``settings`` named like a secret (``named``) or whose
    value holds an Algorand secret (``holds_algorand_secret``), then of the non-empty
    ``environ`` variables named like a mnemonic, seed, phrase or private key
    (``MNEMONIC_LIKE``) or whose value holds one (as "NAME (environment)"), leaving out
    the names ``hidden`` matches. ``shown_only``: only what Django's error reports would
    show, so not values that hide themselves (``HiddenStr``, as confio_kms makes
    ``ALGORAND_ADMIN_MNEMONIC``) nor the ``ALGORAND_ADMIN_MNEMONIC`` variable (hidden in
    runserver's copy of the environment). Names only: never a value."""

    def shown(name: str) -> bool:
        return not (hidden is not None and hidden.search(name))

    names = []
    for name, value in settings.items():
        if not shown(name) or not (named.search(name) or name.isupper()):
            continue
        if shown_only and isinstance(value, HiddenStr):
            continue
        # Only plain strings are read for their value: a lazy setting (such as
        # conf.sponsor_address) would ask AWS, or fail, when evaluated.
        if (named.search(name) and value) or holds_algorand_secret(value):
            names.append(name)
    names += [
        f"{name} (environment)"
        for name, value in sorted(environ.items())
        if value
        and shown(name)
        and not (shown_only and name == LEGACY_MNEMONIC)
        and (MNEMONIC_LIKE.search(name) or holds_algorand_secret(value))
    ]
    return names
