"""Legacy signing secrets still configured: the scan ``kms_doctor`` (settings.mnemonic)
and ``manage.py check`` (confio_kms.W003) share.

It reads what it is given, the Django settings and the environment as the shell
hands them in, and returns names only: a value is tested, never kept or shown.

Recognised by value, whatever the name:

- a 25-word mnemonic whose checksum word matches, in any case, its words separated by
  spaces, commas, semicolons or newlines, with or without surrounding quotes or
  brackets (a pasted JSON or Python list);
- a 64-byte private key (seed then public key, checked to belong together) in base64,
  urlsafe base64 (padded or not), hex, or raw bytes;
- a 32-byte seed in the same encodings, where the name of the setting or of a key on
  the way to it says seed, private, mnemonic, phrase, Algorand, sponsor, wallet or
  account (not hash, genesis, digest, token or address): 32 random bytes are also a
  hash or an API token, so a seed under another name is not told apart;

inside dicts, lists, tuples and sets too (``MAX_DEPTH`` levels deep, ``MAX_ITEMS``
values per setting), named by the setting and the path to it (``SECRETS['algorand']``,
``WALLETS[0]``, ``KEYS{...}`` for a set member).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping

from nacl.signing import SigningKey

from confio_kms.algorand import validation
from confio_kms.common.exceptions import InvalidMnemonicError
from confio_kms.common.redaction import HiddenStr

# The legacy setting that held the sponsor's 25-word mnemonic before KMS signing.
LEGACY_MNEMONIC = "ALGORAND_ADMIN_MNEMONIC"
# Names that say mnemonic, seed, phrase or private key: a legacy signing secret.
MNEMONIC_LIKE = re.compile("MNEMONIC|SEED|PHRASE|PRIVATE", re.IGNORECASE)
# Names under which 32 random bytes are taken for an account's seed, and names that
# say the bytes are something else (the nearest name decides the latter).
SEED_CONTEXT = re.compile(
    "SEED|PRIVATE|MNEMONIC|PHRASE|ALGORAND|SPONSOR|WALLET|ACCOUNT", re.IGNORECASE
)
NOT_A_SEED = re.compile("HASH|GENESIS|DIGEST|TOKEN|ADDRESS|TXID|CHECKSUM", re.IGNORECASE)
MAX_DEPTH = 8
MAX_ITEMS = 10_000
# Longest text tested: a mnemonic in a verbose list form is well under it.
MAX_TEXT = 2_000

_MNEMONIC_SEPARATORS = re.compile(r"[\s,;'\"\[\](){}]+")
_WRAPPING = " \t\r\n'\"[](){}<>"
_HEX = re.compile(r"(?:0x)?((?:[0-9a-fA-F]{2}){32}|(?:[0-9a-fA-F]{2}){64})")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{43}=?|[A-Za-z0-9+/]{86}(?:==)?")
_URLSAFE = re.compile(r"[A-Za-z0-9_-]{43}=?|[A-Za-z0-9_-]{86}(?:==)?")
# 32 random bytes have about 30 distinct values; fewer than this is a placeholder.
_MIN_DISTINCT_SEED_BYTES = 16
_SAFE_KEY = re.compile(r"[A-Za-z0-9_.\- ]{1,64}")


def holds_algorand_secret(value: object, context: str = "") -> bool:
    """Whether ``value`` (text or bytes) holds an Algorand account's secret in one of the
    forms above; ``context`` is the names on the way to it (for a 32-byte seed). The
    value is never kept or shown."""
    if isinstance(value, bytes | bytearray):
        return _is_key(bytes(value), context)
    if not isinstance(value, str):
        return False
    text = str.__str__(value)  # a HiddenSetting's own text, not its marker
    if len(text) > MAX_TEXT:
        return False
    return _is_mnemonic(text) or any(_is_key(raw, context) for raw in _decodings(text))


def _is_mnemonic(text: str) -> bool:
    words = [word for word in _MNEMONIC_SEPARATORS.split(text) if word]
    if len(words) != validation.MNEMONIC_WORDS or not all(w.isalpha() for w in words):
        return False
    try:
        validation.private_key_from_mnemonic(" ".join(words).lower())
    except InvalidMnemonicError:  # its message never quotes a word
        return False
    return True


def _decodings(text: str) -> Iterator[bytes]:
    token = text.strip(_WRAPPING)
    if token.startswith(("b'", 'b"')):  # as Python shows bytes: b'...'
        token = token[1:].strip(_WRAPPING)
    if hex_digits := _HEX.fullmatch(token):
        yield bytes.fromhex(hex_digits.group(1))
    for form, alphabet in ((_BASE64, b"+/"), (_URLSAFE, b"-_")):
        if form.fullmatch(token):
            try:
                padded = token + "=" * (-len(token) % 4)
                yield base64.b64decode(padded, altchars=alphabet, validate=True)
            except (binascii.Error, ValueError):
                continue


def _is_key(raw: bytes, context: str) -> bool:
    if len(raw) == 64:
        # Seed then public key, as py-algorand-sdk and libsodium keep a private key.
        return bytes(SigningKey(raw[:32]).verify_key) == raw[32:]
    if len(raw) != 32 or len(set(raw)) < _MIN_DISTINCT_SEED_BYTES:
        return False
    names = [name for name in context.split("\0") if name]
    return (
        bool(names)
        and any(SEED_CONTEXT.search(name) for name in names)
        and not NOT_A_SEED.search(names[-1])
    )


def secret_paths(name: str, value: object, hidden: re.Pattern[str] | None = None) -> list[str]:
    """Where in the setting ``name`` an Algorand secret is: ``name`` itself, or the path
    to it inside dicts, lists, tuples and sets. With ``hidden`` (an exception reporter
    filter's ``hidden_settings``), dict keys it matches are left out, as Django's error
    reports leave them out. Paths only: never a value."""
    budget = [MAX_ITEMS]
    return list(_walk(value, name, name, hidden, MAX_DEPTH, budget))


def _walk(
    value: object,
    path: str,
    context: str,
    hidden: re.Pattern[str] | None,
    depth: int,
    budget: list[int],
) -> Iterator[str]:
    budget[0] -= 1
    if budget[0] < 0 or depth < 0:
        return
    # A lazy setting (lazy(), a Promise) is none of these, so it stays unevaluated.
    if isinstance(value, str | bytes | bytearray):
        if holds_algorand_secret(value, context):
            yield path
    elif isinstance(value, dict):
        for key, item in list(value.items()):
            if hidden is not None and isinstance(key, str) and hidden.search(key):
                continue
            if holds_algorand_secret(key, context):
                yield f"{path}[?] (a key)"
            key_name = key if isinstance(key, str) else ""
            inner = f"{context}\0{key_name}"
            yield from _walk(item, f"{path}[{_key_text(key)}]", inner, hidden, depth - 1, budget)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(list(value)):
            yield from _walk(item, f"{path}[{index}]", context, hidden, depth - 1, budget)
    elif isinstance(value, set | frozenset):
        for member in list(value):
            found = list(_walk(member, f"{path}{{...}}", context, hidden, depth - 1, budget))
            yield from dict.fromkeys(found)  # a path once, however many members hold one


def _key_text(key: object) -> str:
    # A key is shown only when it cannot be a secret itself: short, plain, no secret.
    if isinstance(key, int):
        return str(int(key))
    if isinstance(key, str) and _SAFE_KEY.fullmatch(key) and not holds_algorand_secret(key):
        return repr(str.__str__(key))
    return "?"


def secret_names(
    settings: Mapping[str, object],
    environ: Mapping[str, str],
    named: re.Pattern[str],
    hidden: re.Pattern[str] | None = None,
    *,
    shown_only: bool = False,
) -> list[str]:
    """The names of the non-empty ``settings`` named like a secret (``named``), or the
    paths of the Algorand secrets their values hold (``secret_paths``), then of the
    non-empty ``environ`` variables named like a mnemonic, seed, phrase or private key
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
        # Only plain strings, bytes and containers are read for their value: a lazy
        # setting (such as conf.sponsor_address) would ask AWS, or fail, when evaluated.
        if named.search(name) and value:
            names.append(name)
        else:
            names += secret_paths(name, value, hidden)
    names += [
        f"{name} (environment)"
        for name, value in sorted(environ.items())
        if value
        and shown(name)
        and not (shown_only and name == LEGACY_MNEMONIC)
        and (MNEMONIC_LIKE.search(name) or holds_algorand_secret(value, name))
    ]
    return names
