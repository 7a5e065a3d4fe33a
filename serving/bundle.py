"""A model version folder loaded for serving: the query model, item vectors, the ranker.

    data/models/<version>/
      manifest.json           version, data version, feature services
      retrieval/manifest.json ordered query-tower inputs (name, kind, length)
      retrieval/query_model/  SavedModel; serving_default takes the raw inputs by name
      retrieval/query_tower.json, .npz  the same query tower as plain data (tailwise.tower_export)
      retrieval/item_embeddings.parquet  item_id, vector (L2-normalised)
      ranker/model.json       XGBoost model; ranker.json: ordered feature names, categories
      cold_start.parquet      popular items by context, for people the model does not know
      sources/                a union version's fitted candidate sources (serving.union)

Serving never imports training code: it reads these files. The request path computes the
query vector from the plain export in numpy (serving.tower); the SavedModel's signature
stays loaded as the reference the export is checked against before the version takes
traffic, and embeds the requests of a version trained before the export existed
(`_read_tower` says what changes then). The ranker scores with XGBoost's own predict
(`ModelBundle.rank`, one call per request) and explains with its own contributions,
counting the trees up to the best iteration when training stopped early: the model
training evaluated. TensorFlow and XGBoost run single-threaded: one request is tiny, and
threads only contend on 2 cores (an XGBoost DMatrix built with its default thread count
spins OpenMP threads per request).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serving.tower import QueryTower, TowerError, read_query_tower
from tailwise.candidates.features import feature_names
from tailwise.features.tower_inputs import TowerInput, encode_rows
from tailwise.quiet import load_tensorflow
from tailwise.repeats import HISTORY_FEATURES
from tailwise.tower_export import DESCRIPTION
from tailwise.versions import read_manifest

# How far the numpy tower and the SavedModel may differ on probe rows before a version serves.
TOWER_TOLERANCE = 1e-4
USER_KEY = "user_id"  # the query tower's id input: its vocabulary is the users it learned
logger = logging.getLogger("tailwise.serving")


class BundleError(RuntimeError):
    """A model version folder is missing or unusable; the message says what and where."""


@dataclass
class ColdStart:
    """Popular items per context dimension ('all', 'device', 'country')."""

    lists: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def scores(self, device: str | None, country: str | None) -> pd.Series:
        """Item -> score blended over what is known of the context ('all' always counts)."""
        parts = [("all", "")]
        if device:
            parts.append(("device", device.lower()))
        if country:
            parts.append(("country", country.upper()))
        total: dict[str, float] = {}
        for key in parts:
            ids, scores = self.lists.get(key, (np.array([], object), np.array([])))
            for item, score in zip(ids, scores, strict=True):
                total[item] = total.get(item, 0.0) + float(score)
        return pd.Series(total, dtype=np.float64).sort_values(ascending=False, kind="stable")


@dataclass
class ModelBundle:
    version: str
    folder: Path
    manifest: dict[str, Any]
    inputs: list[TowerInput]
    item_ids: np.ndarray
    item_vectors: np.ndarray
    ranker: Any  # xgboost.Booster
    ranker_features: list[str]
    categories: dict[str, list[str]]
    cold_start: ColdStart
    tower: QueryTower | None = None  # the query tower in numpy (the request path)
    # Why the version has no numpy tower (the SavedModel itself embeds then).
    tower_fallback: str | None = None
    users: frozenset[str] = frozenset()  # the user ids the query tower learned
    _signature: Any = None
    _packed: Any = None
    _loaded: Any = None
    _item_positions: dict[str, int] | None = None
    _vector_columns: np.ndarray | None = None
    ranker_config: dict[str, Any] = field(default_factory=dict)  # ranker.json's config
    # A union version's order for people with no event yet (ranker.json's metrics).
    new_user_order: str | None = None

    @property
    def candidates_mode(self) -> str:
        """How the version's ranker got its lists: 'two_tower' or 'union' (serving.union)."""
        return str(self.ranker_config.get("candidates", "two_tower"))

    @property
    def union_features(self) -> set[str]:
        """The ranker inputs a union version computes from its sources (serving.union)."""
        if self.candidates_mode != "union":
            return set()
        names = source_names(self.folder)
        if self.ranker_config.get("two_tower_source", True):
            names.append("two_tower")
        return set(feature_names(names))

    @property
    def retrieval_service(self) -> str:
        return str(self.manifest.get("feature_services", {}).get("retrieval", "retrieval_v1"))

    @property
    def ranking_service(self) -> str:
        return str(self.manifest.get("feature_services", {}).get("ranking", "ranking_v1"))

    @property
    def allow_repeats(self) -> bool:
        """The version's repeat decision (manifest `recommend.allow_repeats`, written by
        training; False for a version that has none)."""
        section = self.manifest.get("recommend")
        return bool(section.get("allow_repeats", False)) if isinstance(section, dict) else False

    @property
    def dropped_features(self) -> set[str]:
        """Features training left out of this version (manifest `dropped_features`: model
        -> names, e.g. constant or all-null in the training data)."""
        dropped = self.manifest.get("dropped_features") or {}
        if isinstance(dropped, dict):
            return {str(name) for names in dropped.values() for name in (names or [])}
        return {str(name) for name in dropped}

    @property
    def history_features(self) -> list[str]:
        """The per-(user, item) history features the ranker reads (computed in serving)."""
        return [f for f in HISTORY_FEATURES if f in self.ranker_features]

    @property
    def history_input(self) -> TowerInput | None:
        """The query tower's item_history input (the user's last `length` items), if any."""
        return next((s for s in self.inputs if s.kind == "item_history"), None)

    def knows(self, user_id: str) -> bool:
        """Whether the query tower learned this user's id."""
        return user_id in self.users

    @property
    def item_positions(self) -> dict[str, int]:
        """Item id -> row of `item_ids` / `item_vectors`."""
        if self._item_positions is None:
            self._item_positions = {str(i): n for n, i in enumerate(self.item_ids)}
        return self._item_positions

    @property
    def vector_columns(self) -> np.ndarray:
        """`item_vectors` transposed (dimensions x items, C order), for retrieval's loop."""
        if self._vector_columns is None:
            self._vector_columns = np.ascontiguousarray(self.item_vectors.T)
        return self._vector_columns

    def embed_row(self, row: dict[str, Any]) -> np.ndarray:
        """The query vector of one feature row (the numpy tower; the reference without it)."""
        if self.tower is None:
            return self.embed_reference(encode_rows(self.inputs, [row]))[0]
        return self.tower.embed_row(row)

    def embed_reference(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Query vectors for raw tower inputs (one row per user) through the SavedModel's
        serving signature: the reference the numpy tower is held to.

        The signature takes every input as a named tensor, and binding dozens of them costs
        more Python than the model's arithmetic, so the inputs go in packed as one float
        matrix, one string matrix and the string lists, through a tf.function that unpacks
        them inside the graph (`_packed_signature`)."""
        if self._packed is None:
            self._packed = _packed_signature(self._signature, self.inputs)
        numeric = [s.name for s in self.inputs if s.kind == "numeric"]
        strings = [s.name for s in self.inputs if s.kind in ("id", "categorical")]
        lists = [s.name for s in self.inputs if s.is_list]
        n = len(arrays[self.inputs[0].name])
        num = np.stack([arrays[k] for k in numeric], axis=1) if numeric else np.zeros((n, 0))
        text = np.stack([arrays[k] for k in strings], axis=1) if strings else np.zeros((n, 0))
        packed = [num.astype(np.float32), text.astype(str), *(arrays[k].astype(str) for k in lists)]
        return np.asarray(self._packed(*packed))

    @property
    def iterations(self) -> tuple[int, int]:
        """The ranker's trees that count: up to its best iteration when training stopped
        early (what training evaluated), else all (0, 0)."""
        best = self.ranker.attr("best_iteration")
        return (0, int(best) + 1) if best is not None else (0, 0)

    def rank(self, X: np.ndarray) -> np.ndarray:
        """Ranker scores (float64) of rows in `ranker_features` order (float32, categoricals
        as codes of `categories`, NaN missing): one XGBoost call for all rows. The booster
        holds the feature types training gave it, so the codes take its categorical splits
        as pandas codes did in training (tests/serving/test_ranking.py holds it to that)."""
        scores = self.ranker.inplace_predict(X, iteration_range=self.iterations)
        return np.asarray(scores, dtype=np.float64)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature contributions of a few rows (XGBoost's approximate SHAP, Saabas:
        each split's change of the expected score credited to its feature; what reasons
        read); last column = bias."""
        import xgboost as xgb

        contributions = self.ranker.predict(
            xgb.DMatrix(X, nthread=1),  # the default (all cores) spins OpenMP threads
            pred_contribs=True,
            approx_contribs=True,
            validate_features=False,  # rows in ranker_features order, unnamed
            iteration_range=self.iterations,
        )
        return np.asarray(contributions)


def load_bundle(folder: Path) -> ModelBundle:
    """Read a version folder (found with tailwise.versions.version_folder); raises
    BundleError naming the missing or bad file."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import xgboost as xgb

    tf = load_tensorflow()  # its load-time C++ lines held to TF_CPP_MIN_LOG_LEVEL

    _single_threaded(tf)
    try:
        manifest = read_manifest(folder)
        _servable(folder, manifest)
        tower = json.loads((folder / "retrieval" / "manifest.json").read_text())
        meta = json.loads((folder / "ranker" / "ranker.json").read_text())
        vectors = pd.read_parquet(folder / "retrieval" / "item_embeddings.parquet")
        loaded = tf.saved_model.load(str(folder / "retrieval" / "query_model"))
        booster = xgb.Booster()
        booster.load_model(folder / "ranker" / "model.json")
    except (OSError, KeyError, ValueError, xgb.core.XGBoostError) as exc:
        raise BundleError(f"{folder}: not a complete model version ({exc})") from exc
    booster.set_param({"nthread": 1})
    names = list(meta["feature_names"])
    if list(booster.feature_names or []) != names:
        raise BundleError(f"{folder}/ranker: model.json features differ from ranker.json")
    bundle = ModelBundle(
        version=str(manifest.get("version", folder.name)),
        folder=folder,
        manifest=manifest,
        inputs=[TowerInput.from_dict(d) for d in tower["inputs"]],
        item_ids=vectors["item_id"].astype(str).to_numpy(object),
        item_vectors=np.stack(vectors["vector"].to_numpy()).astype(np.float32),
        ranker=booster,
        ranker_features=names,
        categories={k: list(v) for k, v in meta["categories"].items()},
        cold_start=_cold_start(folder / "cold_start.parquet"),
        ranker_config=dict(meta.get("config") or {}),
        new_user_order=(meta.get("metrics") or {}).get("new_user_order"),
        _signature=loaded.signatures["serving_default"],
        _loaded=loaded,  # owns the variables the signature reads
    )
    _read_tower(bundle)
    return bundle


SERVED_CANDIDATES = ("two_tower", "union")
SOURCES_DIR = "sources"  # a union version's fitted candidate sources (tailwise.candidates)


def _servable(folder: Path, manifest: dict) -> None:
    """Refuse, at load, a version whose ranker expects candidates serving cannot make."""
    ranker = ((manifest.get("params") or {}).get("training") or {}).get("ranker") or {}
    mode = ranker.get("candidates", "two_tower")
    if mode not in SERVED_CANDIDATES:
        raise BundleError(
            f"{folder}: trained with training.ranker.candidates={mode!r}, which serving does "
            f"not run (it serves {', '.join(SERVED_CANDIDATES)}); retrain with "
            "training.ranker.candidates: two_tower to serve this data"
        )
    if mode == "union" and not (folder / SOURCES_DIR / "sources.json").exists():
        raise BundleError(
            f"{folder}: trained with training.ranker.candidates='union' but has no "
            f"{SOURCES_DIR}/sources.json (its fitted candidate sources); retrain the version"
        )


def source_names(folder: Path) -> list[str]:
    """The candidate sources a union version stored (sources.json, ItemStats aside)."""
    spec = json.loads((Path(folder) / SOURCES_DIR / "sources.json").read_text())
    return [str(e["name"]) for e in spec if e.get("class") != "ItemStats"]


def _read_tower(bundle: ModelBundle) -> None:
    """The numpy query tower from training's export, checked against the SavedModel.

    A version trained before the export existed has none: the SavedModel's signature
    embeds every request instead (slower, same vectors), the bundle says why
    (`tower_fallback`, counted per response in /metrics), and the user ids the model
    learned are unknown, so a learned user with neither features nor history gets the
    cold-start lists; retraining the version ends both. An export that is broken, uses an
    activation serving.tower lacks or disagrees with the SavedModel stops the load."""
    retrieval = bundle.folder / "retrieval"
    try:
        bundle.tower = read_query_tower(retrieval)
    except FileNotFoundError:
        bundle.tower_fallback = (
            f"no {DESCRIPTION} in {retrieval} (trained before the query tower was exported):"
            " the SavedModel embeds every request; retrain (`tailwise train`) to serve it in numpy"
        )
        logger.warning("%s", bundle.tower_fallback)
        _probe_reference(bundle)
        return
    except TowerError as exc:
        raise BundleError(str(exc)) from exc
    _probe_reference(bundle)
    if bundle.tower.inputs != bundle.inputs:
        raise BundleError(
            f"{retrieval}: {DESCRIPTION} lists other inputs than manifest.json; retrain the version"
        )
    check_tower(bundle)
    users = bundle.tower.vocabularies.get(USER_KEY)
    bundle.users = frozenset(users.tokens) if users is not None else frozenset()


def _probe_reference(bundle: ModelBundle) -> None:
    """The SavedModel must embed, or the version cannot serve at all."""
    try:
        bundle.embed_reference(encode_rows(bundle.inputs, [{}]))
    except Exception as exc:  # TensorFlow raises many kinds: say which
        raise BundleError(
            f"{bundle.folder}: the query model cannot embed a request ({exc})"
        ) from exc


def check_tower(bundle: ModelBundle) -> None:
    """The numpy tower gives the SavedModel's vectors on probe rows (known, unknown and
    missing values); raises BundleError naming the largest difference otherwise."""
    if bundle.tower is None:
        return
    arrays = encode_rows(bundle.inputs, probe_rows(bundle.tower))
    want = bundle.embed_reference(arrays)
    worst = float(np.abs(want - bundle.tower.embed(arrays)).max())
    if not worst <= TOWER_TOLERANCE:
        raise BundleError(
            f"{bundle.folder}: the exported query tower differs from the SavedModel by"
            f" {worst:.2g} (tolerance {TOWER_TOLERANCE}); retrain the version"
        )


def probe_rows(tower: QueryTower) -> list[dict[str, Any]]:
    """Feature rows touching every embedding table's edges, unknown tokens, missing and
    out-of-range numbers."""
    rng = np.random.default_rng(0)
    lengths = {s.name: s.length for s in tower.inputs}
    numeric = tower.numeric.names if tower.numeric is not None else []
    rows: list[dict[str, Any]] = [{}]
    for n in range(4):
        row: dict[str, Any] = {}
        for part in tower.embedded:
            tokens = [*part.vocabulary.tokens[n::4][:3], "\x00unknown"]
            row[part.name] = tokens[: max(1, lengths[part.name])] if part.length else tokens[0]
        for j, name in enumerate(numeric):
            row[name] = [None, float(rng.normal(0, 50)), -3.5, float("inf")][(n + j) % 4]
        rows.append(row)
    return rows


def _packed_signature(signature: Any, inputs: list[TowerInput]) -> Any:
    """A tf.function over (numeric matrix, string matrix, *string lists) that calls
    `signature` with the named inputs, unpacked inside the graph."""
    import tensorflow as tf

    numeric = [s.name for s in inputs if s.kind == "numeric"]
    strings = [s.name for s in inputs if s.kind in ("id", "categorical")]
    lists = [s for s in inputs if s.is_list]
    spec = [
        tf.TensorSpec([None, len(numeric)], tf.float32),
        tf.TensorSpec([None, len(strings)], tf.string),
        *(tf.TensorSpec([None, s.length], tf.string) for s in lists),
    ]

    @tf.function(input_signature=spec)
    def packed(num: Any, text: Any, *rest: Any) -> Any:
        named = {name: num[:, i] for i, name in enumerate(numeric)}
        named |= {name: text[:, i] for i, name in enumerate(strings)}
        named |= {s.name: rest[i] for i, s in enumerate(lists)}
        return signature(**named)["query_embedding"]

    return packed


def _cold_start(path: Path) -> ColdStart:
    if not path.exists():
        return ColdStart()
    frame = pd.read_parquet(path).sort_values(["dimension", "value", "rank"])
    lists = {}
    for (dimension, value), group in frame.groupby(["dimension", "value"], sort=False):
        lists[(str(dimension), str(value))] = (
            group["item_id"].astype(str).to_numpy(object),
            group["score"].to_numpy(np.float64),
        )
    return ColdStart(lists)


def _single_threaded(tf: Any) -> None:
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # already initialised in this process (a second bundle): keep its setting
