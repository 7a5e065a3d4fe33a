"""Opening the Feast feature store the way every Tailwise entry point needs it.

feature_store.yaml stays the readable source of truth for `feast plan/apply`; here it is
loaded, the Redis connection is taken from REDIS_URL, and the project and registry can
be overridden (tests and several deployments share one Redis under their own project).
Definitions are read from feature_repo/ with Feast's own parser. The registry's sources
carry the data version of the tables (`registry_data_version`): materialising other
tables, or serving a model trained on other data, is refused (`check_registry`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlparse

import yaml

from tailwise import lineage
from tailwise.settings import Settings

# A full load starts here: data of any era after 1970 reaches Redis, whatever the TTLs.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


class FeatureStoreError(RuntimeError):
    """The feature repo or its configuration cannot be used; the message says why."""


# rediss:// query parameters Feast's Redis client takes too (its connection_string passes
# `key=value` items to redis.Redis): the CA to trust, a client certificate, the checks.
FEAST_URL_PARAMETERS = frozenset(
    {
        "ssl_ca_certs",
        "ssl_ca_path",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_cert_reqs",
        "ssl_check_hostname",
        "socket_timeout",
        "socket_connect_timeout",
    }
)


def feast_connection_string(url: str, cluster: bool = False) -> str:
    """redis[s]://[user:password@]host:port/db[?ssl_ca_certs=...] -> Feast's
    'host:port,db=N,ssl=true,ssl_ca_certs=...' form (a cluster: no db, the node given
    is where Feast's cluster client discovers the others)."""
    u = urlparse(url)
    if u.scheme not in ("redis", "rediss"):
        raise FeatureStoreError(f"REDIS_URL must start with redis:// or rediss://, got {url!r}")
    db = int((u.path or "/0").lstrip("/") or 0)
    parts = [f"{u.hostname or 'localhost'}:{u.port or 6379}"]
    if cluster and db:
        raise FeatureStoreError(f"REDIS_URL {url!r}: a Redis Cluster has only database 0")
    if not cluster:
        parts.append(f"db={db}")
    if u.password:
        if "," in unquote(u.password):
            raise FeatureStoreError("a Redis password containing ',' cannot be passed to Feast")
        parts.append(f"password={unquote(u.password)}")
    if u.username and u.username != "default":
        parts.append(f"username={unquote(u.username)}")
    if u.scheme == "rediss":
        parts.append("ssl=true")
    for name, value in parse_qsl(u.query, keep_blank_values=True):
        if name not in FEAST_URL_PARAMETERS:
            known = ", ".join(sorted(FEAST_URL_PARAMETERS))
            raise FeatureStoreError(f"REDIS_URL parameter {name!r} is not one of: {known}")
        if "," in value:
            raise FeatureStoreError(f"REDIS_URL parameter {name}: a ',' cannot be passed to Feast")
        parts.append(f"{name}={value}")
    return ",".join(parts)


def repo_config(settings: Settings, skip_dedup: bool = False) -> Any:
    """The RepoConfig of feature_store.yaml with this environment's overrides.

    skip_dedup makes Redis writes unconditional: a full reload after a rebuild must
    overwrite values whose event time did not move (a corrected profile, a refit segment).
    """
    from feast.repo_config import RepoConfig

    repo = settings.feature_repo.resolve()
    path = repo / "feature_store.yaml"
    if not path.exists():
        raise FeatureStoreError(f"{path} not found; set TAILWISE_FEATURE_REPO to the feature repo")
    raw = yaml.safe_load(os.path.expandvars(path.read_text()))
    connection = feast_connection_string(settings.redis_url, settings.redis_cluster)
    if settings.redis_cluster:  # Feast's cluster client tries every node listed first
        from tailwise.redis_clients import startup_nodes

        node, rest = connection.split(",", 1) if "," in connection else (connection, "")
        listed = [node, *(f"{h}:{p}" for h, p in startup_nodes(settings))]
        connection = ",".join([*listed, *([rest] if rest else [])])
    raw["online_store"]["connection_string"] = connection
    # One setting switches Feast and Tailwise's own clients between one Redis and a cluster.
    raw["online_store"]["redis_type"] = "redis_cluster" if settings.redis_cluster else "redis"
    raw["online_store"]["skip_dedup"] = skip_dedup
    if settings.feast_project:
        raw["project"] = settings.feast_project
    registry = settings.feast_registry or (repo / raw["registry"]["path"])
    Path(registry).parent.mkdir(parents=True, exist_ok=True)
    raw["registry"]["path"] = str(Path(registry).resolve())
    config = RepoConfig(**raw)
    config.repo_path = repo
    return config


def open_store(settings: Settings, skip_dedup: bool = False) -> Any:
    """A FeatureStore for this environment (registry, project and Redis from settings)."""
    from feast import FeatureStore

    os.environ["TAILWISE_FEATURES_DIR"] = str(settings.features_dir.resolve())
    return FeatureStore(config=repo_config(settings, skip_dedup))


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
    # Feast imports the repo's files as top-level modules and Python caches them: drop
    # earlier imports so sources.py reads this call's TAILWISE_FEATURES_DIR, not the first.
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None)
        if origin and Path(origin).resolve().parent == repo:
            del sys.modules[name]
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
    """Register the definitions like `feast apply`: new and changed objects are written, and
    objects no longer defined in feature_repo/ are removed. Returns the store and names."""
    _require_tables(settings)
    store = open_store(settings)
    objects = definitions(settings)
    defined = {(type(o).__name__, o.name) for o in objects}
    registered = [
        *store.list_feature_services(),
        *store.list_on_demand_feature_views(),
        *store.list_feature_views(),
    ]
    stale = [o for o in registered if (type(o).__name__, o.name) not in defined]
    store.apply(objects, objects_to_delete=stale, partial=False)
    return store, sorted(f"{type(o).__name__}:{o.name}" for o in objects)


def _require_tables(settings: Settings) -> dict[str, Any]:
    """The build manifest of settings.features_dir; an error naming what is missing."""
    manifest = settings.features_dir / "features_manifest.json"
    if not manifest.exists():
        raise FeatureStoreError(
            f"{manifest} not found: run `tailwise features build --out {settings.features_dir}`"
        )
    return dict(json.loads(manifest.read_text()))


def _check_sources(store: Any, settings: Settings) -> None:
    """The registry must point at the tables this command was given."""
    wanted = settings.features_dir.resolve()
    for source in store.list_data_sources():
        path = getattr(source, "path", None)
        if path and Path(path).parent != wanted:
            raise FeatureStoreError(
                f"the registry reads {source.name} from {Path(path).parent}, not {wanted}: run "
                f"`tailwise features apply --features {settings.features_dir}` first"
            )


def registry_data_version(store: Any) -> str | None:
    """The data version the registered sources were built from (None: none recorded)."""
    tags = {
        source.tags.get("data_version", "")
        for source in store.list_data_sources()
        if getattr(source, "path", None)
    }
    versions = sorted(tags - {""})
    if len(versions) > 1:
        raise lineage.DataMismatchError(
            f"the Feast registry of project {store.project!r} mixes data versions "
            f"{[v[:12] for v in versions]}: run `tailwise features apply`"
        )
    return versions[0] if versions else None


def check_registry(store: Any, expected: str | None, whose: str, fix: str) -> None:
    """Refuse a registry whose data version differs from `expected` (the data version of
    `whose`, e.g. "model version v3"); `fix` is the command(s) that put it right. Nothing
    to check when `expected` is None or not a `tailwise.lineage` data version (an artifact
    written before data versions, which cannot be compared)."""
    if not lineage.is_version(expected):
        return
    registered = registry_data_version(store)
    if registered != expected:
        held = f"data version {registered[:12]}" if registered else "no data version"
        raise lineage.DataMismatchError(
            f"the Feast registry of project {store.project!r} holds features of {held}, but "
            f"{whose} comes from data version {str(expected)[:12]}: run {fix}"
        )


def _check_version(store: Any, settings: Settings) -> None:
    """The tables must be the data version the registry was applied with."""
    record = lineage.recorded(settings.features_dir) or {}
    check_registry(
        store,
        record.get("data_version"),
        f"the tables in {settings.features_dir}",
        f"`tailwise features apply --features {settings.features_dir}` first",
    )


def materialize(settings: Settings, end: datetime | None = None) -> dict[str, Any]:
    """Newest values into Redis: all of them the first time and after every rebuild of the
    tables (so corrected and late rows land), else only what is new since the last run."""
    from tailwise.features.online import stamp_now
    from tailwise.redis_clients import open_redis

    started = time.perf_counter()
    built_at = str(_require_tables(settings)["built_at"])
    store = open_store(settings)
    _check_sources(store, settings)
    _check_version(store, settings)
    end = end or datetime.now(UTC)
    views = store.list_feature_views()
    if not views:
        raise FeatureStoreError("no feature views registered; run `tailwise features apply` first")
    client = open_redis(settings)
    build_key = f"tailwise:{store.project}:built_at"
    previous = client.get(build_key)
    same_build = isinstance(previous, bytes) and previous.decode() == built_at
    full = not same_build or any(v.most_recent_end_time is None for v in views)
    if full:
        _materialize_all(open_store(settings, skip_dedup=True), views, end)
    else:
        store.materialize_incremental(end_date=end)
    client.set(build_key, built_at)
    stamp_now(client, store.project)
    return {
        "mode": "full" if full else "incremental",
        "end": end.isoformat(),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _materialize_all(store: Any, views: list[Any], end: datetime) -> None:
    # Views without expiry (ttl 0: profiles, catalogue, daily snapshots) load from the 1970
    # floor, so a dataset of any era reaches Redis. A view with a TTL (the real-time session
    # state) loads only what is still valid at `end`, as an offline read at `end` would:
    # Feast's online reads do not expire values themselves.
    starts: dict[datetime, list[str]] = {}
    for view in views:
        start = max(EARLIEST, end - view.ttl) if view.ttl else EARLIEST
        starts.setdefault(start, []).append(view.name)
    for start, names in sorted(starts.items()):
        store.materialize(start_date=start, end_date=end, feature_views=names)


def teardown(settings: Settings, store: Any) -> None:
    """Remove a project: Feast's teardown (its Redis keys, its registry) and our stamps."""
    from tailwise.redis_clients import open_redis

    store.teardown()
    client = open_redis(settings)
    for key in (f"tailwise:{store.project}:{k}" for k in ("built_at", "materialized_at")):
        client.delete(key)  # one key per command: on a cluster they sit in different slots
