"""Quiet output: the listed third-party warnings are not shown, whoever reset the filters
since, and every other warning still is."""

from __future__ import annotations

import warnings

import pytest

from tailwise.quiet import QUIETED, quiet_third_party

pytestmark = pytest.mark.unit
FEAST = "/venv/lib/python3.11/site-packages/feast/feature_store.py"
IBIS = "/venv/lib/python3.11/site-packages/ibis/backends/duckdb/__init__.py"


def test_listed_warnings_are_hidden_and_others_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[str] = []
    monkeypatch.setattr(warnings, "showwarning", lambda m, *a, **k: shown.append(str(m)))
    with warnings.catch_warnings():
        quiet_third_party()
        warnings.simplefilter("once")  # what Feast does when it is imported
        show = warnings.showwarning
        show(
            RuntimeWarning("On demand feature view is an experimental feature."),
            RuntimeWarning,
            FEAST,
            1,
        )
        show(
            DeprecationWarning("fetch_arrow_table() is deprecated, use x"),
            DeprecationWarning,
            IBIS,
            1,
        )
        show(UserWarning("a warning of our own"), UserWarning, "/repo/tailwise/x.py", 1)
        show(RuntimeWarning("something else in Feast"), RuntimeWarning, FEAST, 1)
    assert shown == ["a warning of our own", "something else in Feast"]
    assert all(q.reason for q in QUIETED)
