"""Fixtures of the content tests: a copy of the repository's content folder to edit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def content_dir(tmp_path: Path) -> Path:
    """A copy of content/ that a test may change."""
    folder = tmp_path / "content"
    shutil.copytree(ROOT / "content", folder)
    return folder
