"""Opening the Feast feature store the way every Tailwise entry point needs it.

feature_store.yaml stays the readable source of truth for `feast plan/apply`; here it is
loaded, the Redis connection is taken from REDIS_URL, and the project and registry can
be overridden (tests and several deployments share one Redis under their own project).
Definitions are read from feature_repo/ with Feast's own parser.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml

from tailwise.settings import Settings

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


class FeatureStoreError(RuntimeError):
    """The feature repo or its configuration cannot be used; the message says why."""


def feast_connection_string(url: str) -> str:
    """redis://[user:password@]host:port/db -> Feast's 'host:port,db=N,...' form."""
    u = urlparse(url)
    if u.scheme not in ("redis", "rediss"):
        raise FeatureStoreError(f"REDIS_URL must start with redis:// or rediss://, got {url!r}")
    db = int((u.path or "/0").lstrip("/") or 0)
    parts = [f"{u.hostname or 'localhost'}:{u.port or 6379}", f"db={db}"]
    if u.password:
        if "," in unquote(u.password):
            raise FeatureStoreError("a Redis password containing ',' cannot be passed to Feast")
        parts.append(f"password={unquote(u.password)}")
    if u.username and u.username != "default":
        parts.append(f"username={unquote(u.username)}")
    if u.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)


def repo_config(settings: Settings) -> Any:
    """The RepoConfig of feature_store.yaml with this environment's overrides."""
    from feast.repo_config import RepoConfig

    repo = settings.feature_repo.resolve()
    path = repo / "feature_store.yaml"
    if not path.exists():
        raise FeatureStoreError(f"{path} not found; set TAILWISE_FEATURE_REPO to the feature repo")
    raw = yaml.safe_load(os.path.expandvars(path.read_text()))
    raw["online_store"]["connection_string"] = feast_connection_string(settings.redis_url)
    if settings.feast_project:
        raw["project"] = settings.feast_project
    registry = settings.feast_registry or (repo / raw["registry"]["path"])
    Path(registry).parent.mkdir(parents=True, exist_ok=True)
    raw["registry"]["path"] = str(Path(registry).resolve())
    config = RepoConfig(**raw)
    config.repo_path = repo
    return config


def open_store(settings: Settings) -> Any:
    """A FeatureStore for this environment (registry, project and Redis from settings)."""
    from feast import FeatureStore

    os.environ["TAILWISE_FEATURES_DIR"] = str(settings.features_dir.resolve())
    return FeatureStore(config=repo_config(settings))


@contextmanager
def _inside(repo: Path) -> Iterator[None]:
    """Feast imports definitions as top-level modules from inside the repo folder."""
    before, path_before = Path.cwd(), list(sys.path)
    os.chdir(repo)
    sys.path.insert(0, str(repo))
    try:
        yield
    finally:
        os.chdir(before)
        sys.path[:] = path_before


def definitions(settings: Settings) -> list[Any]:
    """Every Feast object defined in feature_repo/ (entities, sources, views, services)."""
    from feast.repo_operations import parse_repo

    os.environ["TAILWISE_FEATURES_DIR"] = str(settings.features_dir.resolve())
    repo = settings.feature_repo.resolve()
    with _inside(repo):
        contents = parse_repo(repo)
    return [
        *contents.entities,
        *contents.data_sources,
        *contents.feature_views,
        *contents.on_demand_feature_views,
        *contents.feature_services,
    ]


def apply(settings: Settings) -> tuple[Any, list[str]]:
    """Register the definitions (like `feast apply`); returns the store and object names."""
    store = open_store(settings)
    objects = definitions(settings)
    store.apply(objects)
    return store, sorted(f"{type(o).__name__}:{o.name}" for o in objects)


def materialize(settings: Settings, end: datetime | None = None) -> dict[str, Any]:
    """Newest values into Redis: everything the first time, then only what is new."""
    import redis as redis_lib

    from tailwise.features.online import stamp_now

    started = time.perf_counter()
    store = open_store(settings)
    end = end or datetime.now(UTC)
    views = store.list_feature_views()
    if not views:
        raise FeatureStoreError("no feature views registered; run `tailwise features apply` first")
    first = any(v.most_recent_end_time is None for v in views)
    if first:
        # A view's values are valid for its ttl (ttl=0: forever). Feast's incremental start
        # for ttl=0 views is "a year ago", and profiles can be older, so start explicitly.
        starts: dict[datetime, list[str]] = {}
        for view in views:
            start = max(EARLIEST, end - view.ttl) if view.ttl else EARLIEST
            starts.setdefault(start, []).append(view.name)
        for start, names in sorted(starts.items()):
            store.materialize(start_date=start, end_date=end, feature_views=names)
    else:
        store.materialize_incremental(end_date=end)
    stamp_now(redis_lib.Redis.from_url(settings.redis_url), store.project)
    return {
        "mode": "full" if first else "incremental",
        "end": end.isoformat(),
        "seconds": round(time.perf_counter() - started, 2),
    }
