"""The reference a window is compared with: what the model saw in training, built once.

    data/models/<version>/manifest.json, ranker/ranker.json --read_model--> ModelInfo
        (data version, end of the training window, ranking feature service, the ranker's
        ordered features and which of them are categorical)

    clean events of the training window's last `reference_days` --sample--> entity rows
        (user, event time - 1 s, device, country: a request just before the interaction)
      --FeastFeatures: get_historical_features(the ranking service's user-level views and
        the request-context on-demand view)--> feature vectors as of those times, with
        exactly the columns serving logs in `features` (ranker features that are user level)
      --> <cache>/<version>-<data version>/features.parquet   (+ events.parquet: the same
          days' events, the reference of the event data quality; reference.json says how)

    the model's first served window (served log) --> scores.parquet, the prediction
        reference: training has no served scores, so the first window a version serves
        is what later windows are compared with; until it has passed there is none.

A cache folder is keyed by model version + data version, so a later run, or a run of
another window, reads Parquet instead of asking Feast again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from monitoring.config import MonitoringParams
from monitoring.windows import Window, load_events, load_requests, served_items
from tailwise.versions import read_manifest, version_folder

FEATURES, EVENTS, SCORES, META = (
    "features.parquet",
    "events.parquet",
    "scores.parquet",
    "reference.json",
)
_TRAINED_ON = re.compile(r"before\s+(\S+)")


class ReferenceBuildError(ValueError):
    """The model version or its reference cannot be read; the message names what."""


@dataclass(frozen=True)
class ModelInfo:
    """What monitoring needs to know about a model version."""

    version: str
    data_version: str
    trained_before: datetime
    created_at: datetime | None
    ranking_service: str
    ranker_features: tuple[str, ...]
    categorical: tuple[str, ...]
    folder: Path

    @property
    def key(self) -> str:
        return f"{self.version}-{self.data_version}"


@dataclass
class Reference:
    """Reference feature vectors and events, how each column is typed, how it was built."""

    features: pd.DataFrame
    events: pd.DataFrame
    numeric: list[str]
    categorical: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    built: bool = False  # built in this run (else read from the cache)


class FeatureSource(Protocol):
    """Point-in-time feature vectors for entity rows (user_id, event_timestamp, request_*)."""

    columns: list[str]

    def __call__(self, entity_rows: pd.DataFrame) -> pd.DataFrame: ...


def read_model(models: Path, version: str | None = None) -> ModelInfo:
    """The version's manifest and ranker metadata; errors name the file and the field."""
    folder = version_folder(models, version)
    manifest = read_manifest(folder)
    where = folder / "manifest.json"
    trained = _TRAINED_ON.search(str(manifest.get("trained_on", "")))
    if not trained:
        raise ReferenceBuildError(
            f"{where}: trained_on should read 'events before <ISO time>', "
            f"got {manifest.get('trained_on')!r}"
        )
    ranker_path = folder / "ranker" / "ranker.json"
    if not ranker_path.exists():
        raise ReferenceBuildError(f"{ranker_path} not found: {folder} has no ranker")
    ranker = json.loads(ranker_path.read_text())
    names = ranker.get("feature_names")
    if not isinstance(names, list) or not names:
        raise ReferenceBuildError(f"{ranker_path}: feature_names should be a non-empty list")
    services = manifest.get("feature_services") or {}
    return ModelInfo(
        version=str(manifest.get("version") or folder.name),
        data_version=str(manifest.get("data_version") or "unknown"),
        trained_before=_utc(trained.group(1), f"{where}: trained_on"),
        created_at=_utc(manifest["created_at"], f"{where}: created_at")
        if manifest.get("created_at")
        else None,
        ranking_service=str(services.get("ranking") or ranker.get("feature_service") or ""),
        ranker_features=tuple(str(n) for n in names),
        categorical=tuple(sorted((ranker.get("categories") or {}).keys())),
        folder=folder,
    )


class FeastFeatures:
    """The user-level features of a ranking feature service, read from Feast offline.

    User level = features of views keyed by user_id and of on-demand views computed from
    the request and user views only: what serving has in a request's row before items
    are joined, so what it logs."""

    def __init__(self, store: Any, service: str, wanted: Sequence[str]) -> None:
        from feast.errors import FeatureServiceNotFoundException

        from tailwise.features.point_in_time import UserFeature

        self.store = store
        try:
            pairs = user_level_features(store, service)
        except FeatureServiceNotFoundException as exc:
            raise ReferenceBuildError(
                f"feature service {service!r} is not in the Feast registry of project "
                f"{store.project}: run `tailwise features apply` first"
            ) from exc
        chosen = set(wanted)
        # None when the ranker reads no user-level feature (a version that keeps a
        # candidate source's order): serving logs none, and feature drift is not measured.
        self.features = [UserFeature(view, name, "") for view, name in pairs if name in chosen]
        self.columns = [f.name for f in self.features]

    def __call__(self, entity_rows: pd.DataFrame) -> pd.DataFrame:
        from tailwise.features.point_in_time import historical_user_features

        if not self.features:
            return pd.DataFrame(index=pd.RangeIndex(len(entity_rows)))
        rows = entity_rows.assign(row_id=np.arange(len(entity_rows)))
        return historical_user_features(self.store, rows, self.features)[self.columns]


def user_level_features(store: Any, service: str) -> list[tuple[str, str]]:
    """(view, feature) of `service` that are known per user and request, in its order."""
    from feast.errors import FeatureViewNotFoundException

    projections = store.get_feature_service(service).feature_view_projections
    item_views, user_views, on_demand = set(), [], []
    for projection in projections:
        try:
            view = store.get_feature_view(projection.name)
        except FeatureViewNotFoundException:
            on_demand.append(store.get_on_demand_feature_view(projection.name))
            continue
        if "user_id" in {c.name for c in view.entity_columns}:
            user_views.append(projection.name)
        else:
            item_views.add(projection.name)
    user_odfvs = {
        o.name for o in on_demand if not set(o.source_feature_view_projections) & item_views
    }
    return [
        (p.name, f.name)
        for p in projections
        if p.name in user_views or p.name in user_odfvs
        for f in p.features
    ]


def load_or_build_reference(
    model: ModelInfo,
    cache: Path,
    params: MonitoringParams,
    clean_events: Path,
    source: Callable[[ModelInfo], FeatureSource],
    step: Callable[[str], None] = lambda _: None,
) -> Reference:
    """The cached reference of `model`, built first when the cache has none.

    `source(model)` is called only when building (opening Feast costs seconds)."""
    folder = cache / model.key
    if (folder / META).exists() and (folder / FEATURES).exists():
        step("reading the cached reference")
        meta = json.loads((folder / META).read_text())
        return Reference(
            pd.read_parquet(folder / FEATURES),
            pd.read_parquet(folder / EVENTS) if (folder / EVENTS).exists() else pd.DataFrame(),
            list(meta["numeric"]),
            list(meta["categorical"]),
            meta,
            built=False,
        )
    days = Window(
        model.trained_before - timedelta(days=params.reference_days), model.trained_before
    )
    step(f"reading clean events of {days}")
    events = load_events(clean_events, days)
    if events.empty:
        raise ReferenceBuildError(
            f"no clean events in {clean_events} for {days}, the last {params.reference_days:g} "
            f"days of model {model.version}'s training window: is that the data it was trained on?"
        )
    sample = _sample(events, params.reference_rows, params.seed)
    step(f"reading {len(sample):,} reference feature vectors from the feature store")
    features = build_feature_reference(sample, source(model))
    numeric, categorical = column_kinds(features.columns, model.categorical)
    features = coerce_columns(features, numeric, categorical)
    meta = {
        "model_version": model.version,
        "data_version": model.data_version,
        "days": str(days),
        "rows": len(features),
        "events_in_days": len(events),
        "source": f"Feast offline store, feature service {model.ranking_service}, "
        "point in time 1 s before sampled events of the training window",
        "numeric": numeric,
        "categorical": categorical,
        "built_at": datetime.now(UTC).isoformat(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    _write(features, folder / FEATURES)
    _write(sample.reset_index(drop=True), folder / EVENTS)
    (folder / META).write_text(json.dumps(meta, indent=2) + "\n")
    return Reference(features, sample.reset_index(drop=True), numeric, categorical, meta, True)


def build_feature_reference(events: pd.DataFrame, source: FeatureSource) -> pd.DataFrame:
    """Feature vectors as of just before each event (one row per event, same order)."""
    from tailwise.features.point_in_time import request_rows

    when = pd.to_datetime(events["timestamp"], utc=True) - pd.Timedelta(seconds=1)
    entity = request_rows(events["user_id"], when, events.get("device"), events.get("country"))
    frame = source(entity)
    if len(frame) != len(entity):
        raise ReferenceBuildError(
            f"the feature source returned {len(frame)} rows for {len(entity)}"
        )
    return frame.reset_index(drop=True)


def column_kinds(columns: Sequence[str], categorical: Sequence[str]) -> tuple[list[str], list[str]]:
    """(numeric, categorical) columns: categorical as the ranker types them."""
    cats = set(categorical)
    return [c for c in columns if c not in cats], [c for c in columns if c in cats]


def coerce_columns(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Numbers (bools as 0/1) as float64, categories as strings; absent columns as nulls."""
    out = pd.DataFrame(index=frame.index)
    for column in numeric:
        values = frame[column] if column in frame.columns else pd.Series(np.nan, index=frame.index)
        if values.dtype == object:  # mixed values (bools, None) need a look at each
            values = values.map(_number)
        out[column] = pd.to_numeric(values, errors="coerce").astype(np.float64)
    for column in categorical:
        values = frame[column] if column in frame.columns else pd.Series(None, index=frame.index)
        text = values.astype(object)
        known = text.notna()
        text[known] = text[known].astype(str)
        out[column] = text.where(known, None)
    return out


def score_reference(
    model: ModelInfo,
    cache: Path,
    served: Path,
    current: Window,
    length: timedelta,
    params: MonitoringParams,
    first: datetime | None,
) -> tuple[pd.DataFrame | None, str]:
    """(scores of the model's first served window, or None; a sentence for the report).

    The first window is [first request, + one window length), cut at the current window's
    start; it is cached once it is complete."""
    path = cache / model.key / SCORES
    if path.exists():
        return pd.read_parquet(path), _read_note(path)
    if first is None:
        return None, (
            f"model {model.version} has no served log yet: the first window it serves "
            "becomes the prediction reference of later runs (training has no served scores)"
        )
    if current.start <= first:
        return None, (
            f"this is model {model.version}'s first served window: its scores become the "
            "prediction reference of later runs (training has no served scores)"
        )
    reference = Window(first, min(first + length, current.start))
    items = served_items(load_requests(served, reference, model.version))
    scores = personalised_scores(items, max(params.ks))
    scores = _sample(scores, params.reference_rows, params.seed).reset_index(drop=True)
    complete = reference.end == first + length
    note = (
        f"prediction reference: scores of model {model.version}'s first served window "
        f"{reference}{'' if complete else ' (so far)'}, {len(scores):,} scores "
        "(training has no served scores)"
    )
    if complete and len(scores):
        path.parent.mkdir(parents=True, exist_ok=True)
        _write(scores, path)
        path.with_suffix(".txt").write_text(note + "\n")
    return scores, note


def personalised_scores(items: pd.DataFrame, max_rank: int) -> pd.DataFrame:
    """The model's own scores: personalised lists only (cold start ranks by popularity)."""
    keep = ~items["cold_start"] & (items["rank"] <= max_rank) & items["score"].notna()
    return items.loc[keep, ["score"]].reset_index(drop=True)


def _read_note(path: Path) -> str:
    note = path.with_suffix(".txt")
    return note.read_text().strip() if note.exists() else "prediction reference (cached)"


def _sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return frame if len(frame) <= n else frame.sample(n=n, random_state=seed).sort_index()


def _write(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


def _number(value: Any) -> Any:
    if isinstance(value, bool | np.bool_):
        return float(value)
    return np.nan if _missing(value) else value


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and arrays are values, not missing
        return False


def _utc(text: str, what: str) -> datetime:
    try:
        stamp = pd.Timestamp(text)
    except (TypeError, ValueError) as exc:
        raise ReferenceBuildError(f"{what}: not an ISO time: {text!r}") from exc
    stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    return stamp.to_pydatetime()
