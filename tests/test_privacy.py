"""Tests for tailwise.privacy: the HMAC key and keyed pseudonyms."""

from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import SecretStr

from tailwise.privacy import PrivacyError, load_key, pseudonymise
from tailwise.settings import Settings

KEY_A = b"a" * 64
KEY_B = b"b" * 64


def make_settings(tmp_path: Path, **fields: Any) -> Settings:
    """Settings built directly, so the developer's own environment cannot leak in."""
    base: dict[str, Any] = {
        "hmac_key": None,
        "hmac_key_file": None,
        "demo": False,
        "home": tmp_path / "home",
    }
    base.update(fields)
    return Settings.model_construct(**base)


# pseudonymise


def test_pseudonyms_are_deterministic_hex_of_32_chars() -> None:
    values = pd.Series(["anna@example.com", "bob@example.com", "anna@example.com"])
    first = pseudonymise(values, KEY_A)
    second = pseudonymise(values.copy(), KEY_A)
    assert first.tolist() == second.tolist()
    assert first[0] == first[2] != first[1]
    assert all(len(p) == 32 and int(p, 16) >= 0 for p in first)


def test_pseudonym_is_truncated_hmac_sha256() -> None:
    expected = hmac.new(KEY_A, "Anna Müller".encode(), hashlib.sha256).hexdigest()[:32]
    assert pseudonymise(pd.Series(["Anna Müller"]), KEY_A)[0] == expected


def test_long_keys_follow_hmac_rules() -> None:
    long_key = b"k" * 100  # longer than the SHA-256 block, so HMAC hashes it first
    expected = hmac.new(long_key, b"x", hashlib.sha256).hexdigest()[:32]
    assert pseudonymise(pd.Series(["x"]), long_key)[0] == expected


def test_different_key_gives_different_pseudonyms() -> None:
    values = pd.Series(["anna@example.com", "+49 151 2345678"])
    a = pseudonymise(values, KEY_A)
    b = pseudonymise(values, KEY_B)
    assert (a != b).all()


def test_nulls_stay_null_and_index_and_name_are_kept() -> None:
    values = pd.Series(
        ["x", None, float("nan"), pd.NA, "y"], index=[10, 11, 12, 13, 14], name="email"
    )
    out = pseudonymise(values, KEY_A)
    assert out.index.tolist() == [10, 11, 12, 13, 14]
    assert out.name == "email"
    assert out.isna().tolist() == [False, True, True, True, False]


def test_string_dtype_and_numbers_are_supported() -> None:
    as_string = pseudonymise(pd.Series(["7", None], dtype="string"), KEY_A)
    as_int = pseudonymise(pd.Series([7]), KEY_A)
    assert as_string[0] == as_int[0]
    assert as_string.isna().tolist() == [False, True]


def test_empty_series() -> None:
    assert pseudonymise(pd.Series([], dtype=object), KEY_A).empty


# load_key


def test_key_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILWISE_HMAC_KEY", "  " + "f" * 64 + "\n")
    monkeypatch.delenv("TAILWISE_HMAC_KEY_FILE", raising=False)
    monkeypatch.delenv("TAILWISE_DEMO", raising=False)
    assert load_key(Settings()) == b"f" * 64  # type: ignore[call-arg]


def test_key_from_file_is_stripped(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("0123456789abcdef" * 4 + "\n")
    assert load_key(make_settings(tmp_path, hmac_key_file=key_file)) == b"0123456789abcdef" * 4


def test_unreadable_key_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-key"
    with pytest.raises(PrivacyError, match="no-such-key") as err:
        load_key(make_settings(tmp_path, hmac_key_file=missing))
    assert "TAILWISE_HMAC_KEY_FILE" in str(err.value)


def test_missing_key_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(PrivacyError) as err:
        load_key(make_settings(tmp_path))
    message = str(err.value)
    assert "TAILWISE_HMAC_KEY" in message
    assert "TAILWISE_HMAC_KEY_FILE" in message
    assert "secrets.token_hex(32)" in message
    assert "make demo" in message and "TAILWISE_DEMO=1" in message
    assert not (tmp_path / "home").exists()


def test_short_key_is_rejected_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(PrivacyError, match="TAILWISE_HMAC_KEY"):
        load_key(make_settings(tmp_path, hmac_key=SecretStr("too-short")))


def test_short_key_file_is_rejected_naming_the_variable(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("short\n")
    with pytest.raises(PrivacyError, match="TAILWISE_HMAC_KEY_FILE"):
        load_key(make_settings(tmp_path, hmac_key_file=key_file))


def test_both_sources_set_is_an_error(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("x" * 32)
    settings = make_settings(tmp_path, hmac_key=SecretStr("y" * 32), hmac_key_file=key_file)
    with pytest.raises(PrivacyError, match="Both"):
        load_key(settings)


def test_demo_key_is_created_once_with_mode_0600_and_reused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, demo=True)
    first = load_key(settings)
    key_path = tmp_path / "home" / "hmac.key"
    assert key_path.exists()
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert len(first) == 64 and int(first, 16) >= 0
    assert load_key(settings) == first
    assert [p.name for p in key_path.parent.iterdir()] == ["hmac.key"]


def test_configured_key_wins_over_demo(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, demo=True, hmac_key=SecretStr("z" * 40))
    assert load_key(settings) == b"z" * 40
    assert not (tmp_path / "home").exists()
