"""Keyed pseudonymisation of personal data.

Owns the HMAC key and the one function that turns personal values (emails, phones,
names, raw user ids) into stable pseudonyms. Data flow: the entry point builds
`Settings`, calls `load_key(settings)` once, and passes the key to `pseudonymise` for
every personal column after duplicate resolution (`tailwise.ingest.identity`) has used
the clear values. The key never leaves this process: it is not logged or written
anywhere except the demo key file, which only a demo run creates.

A pseudonym is HMAC-SHA256(key, UTF-8 value) as hex, cut to 32 hex characters
(128 bits): the same value and key always give the same pseudonym, so joins still work,
and without the key a pseudonym cannot be recomputed from a guessed value.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

import numpy as np
import pandas as pd

from tailwise.settings import Settings

MIN_KEY_CHARS = 32
PSEUDONYM_HEX_CHARS = 32
DEMO_KEY_NAME = "hmac.key"

_HOW_TO_SET_KEY = (
    "Set TAILWISE_HMAC_KEY to a secret of at least 32 characters, for example the output of "
    '`python -c "import secrets; print(secrets.token_hex(32))"`, or set TAILWISE_HMAC_KEY_FILE '
    "to the path of a file holding it. For a local demo, `make demo` sets TAILWISE_DEMO=1, "
    "which creates and reuses a local key."
)

# HMAC (RFC 2104) pads the key to the hash block size and XORs it with these bytes.
_SHA256_BLOCK = 64
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


class PrivacyError(RuntimeError):
    """The pseudonymisation key is missing, unreadable or too weak."""


def load_key(settings: Settings) -> bytes:
    """Return the HMAC key as bytes (the UTF-8 bytes of the key text).

    Sources, in order: `TAILWISE_HMAC_KEY`, the file named by `TAILWISE_HMAC_KEY_FILE`,
    and, only when `settings.demo` is true, a local key at `settings.home / "hmac.key"`
    that is created on first use (mode 0600) and reused afterwards. Setting both
    variables is an error, because silently preferring one would change every pseudonym
    if the other was the one meant.
    """
    if settings.hmac_key is not None and settings.hmac_key_file is not None:
        raise PrivacyError(
            "Both TAILWISE_HMAC_KEY and TAILWISE_HMAC_KEY_FILE are set; unset one of them "
            "so it is clear which key pseudonymises the data."
        )
    if settings.hmac_key is not None:
        return _checked(settings.hmac_key.get_secret_value().strip(), "TAILWISE_HMAC_KEY")
    if settings.hmac_key_file is not None:
        text = _read_key_file(settings.hmac_key_file, "TAILWISE_HMAC_KEY_FILE")
        return _checked(text, f"TAILWISE_HMAC_KEY_FILE ({settings.hmac_key_file})")
    if settings.demo:
        return _demo_key(Path(settings.home) / DEMO_KEY_NAME)
    raise PrivacyError(f"No pseudonymisation key is configured. {_HOW_TO_SET_KEY}")


def pseudonymise(values: pd.Series, key: bytes) -> pd.Series:
    """Replace each non-null value by its keyed pseudonym; nulls stay null.

    Non-string values are pseudonymised as `str(value)`. The result is an object Series
    with the same index and name, holding 32-character hex strings and None. Each
    distinct value is hashed once, and the HMAC inner/outer states are computed once per
    call and copied per value, which is what makes 1M values take about a second.
    """
    if not isinstance(key, bytes | bytearray) or len(key) == 0:
        raise PrivacyError(f"pseudonymise needs the key bytes from load_key, got {type(key)!r}")
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    hashed = np.array([*_hmac_hex(uniques, bytes(key)), None], dtype=object)
    # code -1 (null) picks the trailing None
    return pd.Series(hashed[codes], index=values.index, name=values.name, dtype=object)


# An id that is an e-mail address or a phone number is personal data in the clear. Plain
# digit strings are not taken for phone numbers (customer and card numbers look the same),
# nor are short dashed numbers (dates): without a leading + a number needs 9 digits.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_PHONE = re.compile(r"^(\+[\d\s().\-/]+|[\d(][\d\s().\-/]*[\s().\-/][\d\s().\-/]*)$")
PHONE_DIGITS = (7, 15)
LOCAL_PHONE_MIN_DIGITS = 9


def personal_kind(value: str) -> str | None:
    """ "an e-mail address" or "a phone number" when `value` looks like one, else None."""
    text = value.strip()
    if _EMAIL.match(text):
        return "an e-mail address"
    digits = sum(c.isdigit() for c in text)
    least = PHONE_DIGITS[0] if text.startswith("+") else LOCAL_PHONE_MIN_DIGITS
    if _PHONE.match(text) and least <= digits <= PHONE_DIGITS[1]:
        return "a phone number"
    return None


def pseudonym(value: str, key: bytes) -> str:
    """The keyed pseudonym of one personal id, after the normalisation that makes two
    spellings of the same address or number one: e-mail lowercased, phone digits only
    (with its leading + kept)."""
    text = value.strip()
    if personal_kind(text) == "a phone number":
        text = ("+" if text.startswith("+") else "") + "".join(c for c in text if c.isdigit())
    else:
        text = text.lower()
    return str(pseudonymise(pd.Series([text]), key).iat[0])


def _hmac_hex(uniques: pd.Index | np.ndarray, key: bytes) -> list[str]:
    if len(key) > _SHA256_BLOCK:
        key = hashlib.sha256(key).digest()
    block = key.ljust(_SHA256_BLOCK, b"\0")
    new_inner = hashlib.sha256(block.translate(_IPAD)).copy
    new_outer = hashlib.sha256(block.translate(_OPAD)).copy
    out: list[str] = []
    append = out.append
    for value in uniques:
        inner = new_inner()
        inner.update((value if isinstance(value, str) else str(value)).encode("utf-8"))
        outer = new_outer()
        outer.update(inner.digest())
        append(outer.hexdigest()[:PSEUDONYM_HEX_CHARS])
    return out


def _checked(text: str, source: str) -> bytes:
    if len(text) < MIN_KEY_CHARS:
        raise PrivacyError(
            f"The key from {source} has {len(text)} characters; at least {MIN_KEY_CHARS} "
            f"are required. {_HOW_TO_SET_KEY}"
        )
    return text.encode("utf-8")


def _read_key_file(path: Path, source: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise PrivacyError(
            f"Cannot read the HMAC key file {str(path)!r} named by {source}: {exc}. "
            "Check the path and that this user may read it."
        ) from exc


def _demo_key(path: Path) -> bytes:
    """Create the demo key once (atomically, mode 0600) and reuse it afterwards."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            os.write(fd, (secrets.token_hex(32) + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            # link() never overwrites: if another process won the race, keep its key
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    text = _read_key_file(path, "TAILWISE_DEMO=1 (demo key)")
    return _checked(text, f"the demo key file {path}")
