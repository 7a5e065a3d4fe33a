"""Settings that give a test its own Feast project and registry over its own feature tables."""

from __future__ import annotations

import uuid
from pathlib import Path

from tailwise.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def isolated_feast_settings(features: Path, registry: Path, prefix: str = "tw_test") -> Settings:
    """This repo's feature_repo, the given tables, a fresh project name, a private registry."""
    return Settings(
        TAILWISE_FEATURE_REPO=ROOT / "feature_repo",
        TAILWISE_FEATURES_DIR=features,
        TAILWISE_FEAST_PROJECT=f"{prefix}_{uuid.uuid4().hex[:8]}",
        TAILWISE_FEAST_REGISTRY=registry,
    )
