"""Train, save, load and use the two-tower retriever.

    examples (dataset.retrieval_examples) + items
      --train_retrieval(cfg)--> RetrievalResult: query model, item vectors, input specs
      --save(folder)--> query_model/ (SavedModel, serving_default takes raw features by name)
                        query_tower.json + .npz (the same tower as plain data for serving:
                                       tailwise.tower_export, written by training.tower_export)
                        item_embeddings.parquet (item_id, vector)
                        manifest.json (ordered feature names + specs, feature service,
                                       config, data range, training figures)
      --load(folder)--> RetrievalResult backed by the SavedModel signature

Training: TFRS' Retrieval task, in-batch softmax at `temperature` with the logQ
sampling-bias correction (each item's share of the examples) and accidental hits removed
(the same item elsewhere in the batch is no negative). With `validation_share`, the
latest examples are held out and Keras' EarlyStopping watches their recall@N after each
epoch (restoring the best weights), then `refit` trains on everything for that many
epochs. With `history_items` M, the query tower also reads the user's last M items before
each example (an item_history input: the mean of their item-id embeddings).

`TwoTowerRecommender` plugs this into the evaluation harness: `fit` builds examples from
Feast and the events and trains; `recommend` reads each user's features as of `as_of`
(the window start; by default the last training event) and their last items before it,
embeds them and searches the item vectors, leaving out what the user has already seen.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tailwise.features.point_in_time import historical_user_features, request_rows
from tailwise.features.tower_inputs import TowerInput, encode_frame, items_before
from training.dataset import SERVICE, retrieval_examples, user_features
from training.index import ExactIndex
from training.tower_export import export_query_tower
from training.towers import (
    HISTORY_ITEMS,
    USER_ID,
    build_towers,
    fit_preprocessing,
    informative,
    query_specs,
)

FORMAT_VERSION = 1
UNKNOWN_USER = "\x00unknown-user"  # never a real id: maps to the OOV row


class RetrievalConfig(BaseModel):
    """Hyper-parameters of the two-tower retriever."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    embedding_dim: int = Field(32, ge=2, description="Size of query and item vectors.")
    hidden_layers: tuple[int, ...] = Field(
        (64,), min_length=1, description="Units of each tower's hidden layers, in order."
    )
    activation: Literal["relu", "gelu", "tanh", "sigmoid"] = Field(
        "relu", description="Activation of the hidden layers."
    )
    epochs: int = Field(3, ge=1, description="At most this many (early stopping may stop sooner).")
    batch_size: int = Field(512, ge=2, description="Also the number of in-batch negatives.")
    learning_rate: float = Field(0.005, gt=0, description="Adam learning rate.")
    seed: int = 0
    temperature: float = Field(0.1, gt=0, description="Softmax temperature over cosines.")
    user_id_dropout: float = Field(
        0.1, ge=0, lt=1, description="Share of examples trained as an unknown user (cold start)."
    )
    max_list_length: int = Field(10, ge=1, description="Slots kept of each list feature.")
    ignored_features: tuple[str, ...] = Field(
        ("signup_epoch", "segment"),
        description="Service features the tower skips (absolute epoch; segment's int code "
        "duplicates segment_name).",
    )
    service: str = Field(SERVICE, description="Feast feature service of the query tower.")
    history_items: int = Field(
        0,
        ge=0,
        description="The user's last this many items before the moment, read by the query "
        "tower (mean of their item-id embeddings); 0: not read.",
    )
    first_touch_only: bool = Field(
        False,
        description="Train only on a user's first interaction with each item (what is "
        "recommended when repeats are not allowed).",
    )
    validation_share: float = Field(
        0.0,
        ge=0,
        lt=0.5,
        description="Latest share of the examples (by time) held out to pick the number of "
        "epochs by recall@validation_n (early stopping); 0: none, train `epochs`.",
    )
    validation_n: int = Field(100, ge=1, description="N of the held-out recall@N watched.")
    patience: int = Field(2, ge=1, description="Epochs without a held-out gain before stopping.")
    refit: bool = Field(
        True, description="After early stopping, train again on every example for the best epochs."
    )

    @model_validator(mode="before")
    @classmethod
    def _one_hidden_layer_of_old(cls, data: Any) -> Any:
        """Versions trained before `hidden_layers` recorded one layer as `hidden_units`."""
        if isinstance(data, dict) and "hidden_units" in data:
            data = dict(data)
            units = data.pop("hidden_units")
            data.setdefault("hidden_layers", (units,))
        return data


@dataclass
class RetrievalResult:
    """A trained (or loaded) retriever: embed users, score against item vectors."""

    config: RetrievalConfig
    inputs: list[TowerInput]
    item_ids: np.ndarray
    item_vectors: np.ndarray
    embed: Callable[[dict[str, np.ndarray]], np.ndarray]
    query_model: Any = None  # the Keras model when trained in this process
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return [s.name for s in self.inputs]

    def query_embeddings(self, frame: pd.DataFrame) -> np.ndarray:
        """Vectors of the users in `frame` (raw feature columns named as in `inputs`)."""
        return self.embed(encode_frame(frame, self.inputs))

    def index(self) -> ExactIndex:
        return ExactIndex().build(self.item_ids, self.item_vectors)


def _tensorflow() -> Any:
    """TensorFlow with Keras 2, its load-time C++ log lines held to TF_CPP_MIN_LOG_LEVEL."""
    from tailwise.quiet import load_tensorflow

    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    return load_tensorflow()


@dataclass(frozen=True)
class EpochFigures:
    """One epoch's held-out figures: each held-out (user, item) pair's rank (1 = first)
    among every catalogue item, and the training loss."""

    epoch: int  # 1-based
    ranks: np.ndarray
    loss: float

    def metric(self, measure: str, k: int) -> float:
        """`measure`@k over the pairs (each pair one relevant item): recall and hit_rate
        (rank <= k), ndcg (1/log2(rank+1) within k), precision (hit / k), map (1/rank)."""
        if not len(self.ranks):
            return 0.0
        hit = self.ranks <= k
        values = {
            "recall": hit,
            "hit_rate": hit,
            "ndcg": np.where(hit, 1.0 / np.log2(self.ranks + 1.0), 0.0),
            "precision": hit / k,
            "map": np.where(hit, 1.0 / self.ranks, 0.0),
        }
        if measure not in values:
            raise ValueError(f"held-out metric {measure!r}: one of {sorted(values)}")
        return float(np.mean(values[measure]))


EpochHook = Callable[[EpochFigures], None]


def train_retrieval(
    cfg: RetrievalConfig,
    train_examples: pd.DataFrame,
    items: pd.DataFrame,
    features: list | None = None,
    on_epoch: EpochHook | None = None,
) -> RetrievalResult:
    """Fit both towers on `train_examples` (dataset.retrieval_examples) for one seed.

    With `validation_share` > 0, the latest share of the examples (by time) is held out:
    after every epoch the towers' recall@`validation_n` of its (user, item) pairs is
    measured (`on_epoch` sees each epoch's EpochFigures, e.g. for a Ray Tune report) and Keras'
    EarlyStopping stops after `patience` epochs without a gain and restores the best
    weights; with `refit`, the towers are then trained again from scratch on every
    example for the best number of epochs, so the latest interactions are learned too.

    `features`: the service's UserFeature list; by default every column of the examples
    that is not an id, label or item attribute counts as numeric/categorical by dtype."""
    if train_examples.empty:
        raise ValueError("no training examples: the event log has no positive event")
    if cfg.history_items and HISTORY_ITEMS not in train_examples.columns:
        raise ValueError(
            f"history_items={cfg.history_items}: the examples lack the {HISTORY_ITEMS!r} column"
            " (dataset.retrieval_examples(..., history_items=...))"
        )
    features = features if features is not None else _features_from_frame(train_examples)
    examples = train_examples
    if cfg.first_touch_only and "first_touch" in examples.columns:
        examples = examples[examples["first_touch"].astype(bool)].reset_index(drop=True)
        if examples.empty:
            raise ValueError("first_touch_only: no example is a user's first touch of an item")
    fit, held_out = _time_holdout(examples, cfg.validation_share)
    if _held_out_pairs(held_out, items).empty:  # nothing to watch: train the set epochs
        return _fit(cfg, examples, items, features, cfg.epochs, None, on_epoch)
    result = _fit(cfg, fit, items, features, cfg.epochs, held_out, on_epoch)
    if not cfg.refit:
        return result
    best = int(result.info["best_epoch"])
    final = _fit(cfg, examples, items, features, best, None, None)
    final.info["validation"] = result.info["validation"]
    final.info["best_epoch"] = best
    final.info["train_seconds"] += result.info["train_seconds"]
    return final


def _time_holdout(examples: pd.DataFrame, share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(earlier, latest `share`) of the examples by event time; everything and nothing
    when the share is 0 or either part would be empty."""
    if share <= 0:
        return examples, examples.iloc[:0]
    stamps = pd.to_datetime(examples["event_timestamp"], utc=True)
    cut = stamps.quantile(1 - share)
    late = (stamps >= cut).to_numpy()
    if late.all() or not late.any():
        return examples, examples.iloc[:0]
    return examples[~late].reset_index(drop=True), examples[late].reset_index(drop=True)


def _fit(
    cfg: RetrievalConfig,
    train_examples: pd.DataFrame,
    items: pd.DataFrame,
    features: list,
    epochs: int,
    held_out: pd.DataFrame | None,
    on_epoch: EpochHook | None,
) -> RetrievalResult:
    """One training run of `epochs` (early stopping on `held_out` when given)."""
    tf = _tensorflow()
    import tensorflow_recommenders as tfrs

    tf.keras.utils.set_random_seed(cfg.seed)
    tf.config.experimental.enable_op_determinism()
    q_specs = query_specs(features, train_examples, cfg.ignored_features, cfg.max_list_length)
    if cfg.history_items:
        q_specs.append(TowerInput(HISTORY_ITEMS, "item_history", cfg.history_items))
    q_specs, q_dropped = informative(train_examples, q_specs)
    prep = fit_preprocessing(train_examples, items, q_specs)
    query_model, candidate_model = build_towers(
        q_specs, prep, cfg.embedding_dim, cfg.hidden_layers, cfg.activation
    )

    rng = np.random.default_rng(cfg.seed)
    q_raw = encode_frame(train_examples, q_specs)
    dropped = rng.random(len(train_examples)) < cfg.user_id_dropout
    q_raw[USER_ID] = np.where(dropped, UNKNOWN_USER, q_raw[USER_ID])
    c_raw = encode_frame(train_examples, prep.candidate_inputs())
    # logQ correction: each candidate's share of the training examples is its chance of
    # being an in-batch negative (Yi et al. 2019), given to TFRS' Retrieval task.
    counts = train_examples["item_id"].astype(str).map(train_examples["item_id"].value_counts())
    probability = (counts / len(train_examples)).to_numpy(np.float32)
    data = tf.data.Dataset.from_tensor_slices(
        {
            "query": q_raw,
            "candidate": c_raw,
            "weight": train_examples["weight"].to_numpy(np.float32),
            "probability": probability,
        }
    )
    data = data.shuffle(len(train_examples), seed=cfg.seed, reshuffle_each_iteration=True)
    data = data.batch(cfg.batch_size).prefetch(2)

    model = build_retrieval_model(tfrs, query_model, candidate_model, cfg.temperature)
    model.compile(optimizer=tf.keras.optimizers.Adam(cfg.learning_rate))
    item_frame = items.drop_duplicates("item_id").sort_values("item_id")
    item_inputs = encode_frame(item_frame, prep.candidate_inputs())
    callbacks = []
    watch = None
    if held_out is not None:
        watch = validation_callback(
            tf,
            cfg,
            query_model,
            candidate_model,
            q_specs,
            held_out,
            item_frame,
            item_inputs,
            on_epoch,
        )
        stop = tf.keras.callbacks.EarlyStopping(
            monitor=watch.monitor, mode="max", patience=cfg.patience, restore_best_weights=True
        )
        callbacks = [watch, stop]
    started = time.perf_counter()
    history = model.fit(data, epochs=epochs, verbose=0, callbacks=callbacks)
    seconds = time.perf_counter() - started

    item_vectors = candidate_model.predict(item_inputs, batch_size=4096, verbose=0)
    stamps = pd.to_datetime(train_examples["event_timestamp"], utc=True)
    info: dict[str, Any] = {
        "examples": len(train_examples),
        "users": int(train_examples["user_id"].nunique()),
        "items_trained": int(train_examples["item_id"].nunique()),
        "catalogue_items": len(item_frame),
        "data_from": stamps.min().isoformat(),
        "data_to": stamps.max().isoformat(),
        "loss": [float(v) for v in history.history["loss"]],
        "train_seconds": round(seconds, 3),
        "dropped_features": {"query": q_dropped, "candidate": prep.dropped},
    }
    if watch is not None:
        info["validation"] = watch.summary()
        info["best_epoch"] = int(stop.best_epoch) + 1
    return RetrievalResult(
        config=cfg,
        inputs=q_specs,
        item_ids=item_frame["item_id"].astype(str).to_numpy(object),
        item_vectors=np.asarray(item_vectors, dtype=np.float32),
        embed=lambda arrays: np.asarray(query_model(arrays, training=False)),
        query_model=query_model,
        info=info,
    )


def validation_callback(
    tf: Any,
    cfg: RetrievalConfig,
    query_model: Any,
    candidate_model: Any,
    q_specs: list[TowerInput],
    held_out: pd.DataFrame,
    item_frame: pd.DataFrame,
    item_inputs: dict[str, np.ndarray],
    on_epoch: EpochHook | None,
) -> Any:
    """A Keras callback that writes the held-out pairs' recall@N and NDCG@10 into each
    epoch's logs (where EarlyStopping reads them) and hands them to `on_epoch`.

    Pairs: each (user, item) of `held_out` once, first touches only when the examples
    say which, items of the catalogue only; an item ranks among every catalogue item."""
    pairs = _held_out_pairs(held_out, item_frame)
    rows = pd.Index(item_frame["item_id"].astype(str)).get_indexer(pairs["item_id"].astype(str))
    queries = encode_frame(pairs, q_specs)
    n = cfg.validation_n

    class HeldOutRecall(tf.keras.callbacks.Callback):
        monitor = f"val_recall_at_{n}"

        def __init__(self) -> None:
            super().__init__()
            self.epochs: list[dict[str, float]] = []

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            q = query_model.predict(queries, batch_size=4096, verbose=0)
            c = candidate_model.predict(item_inputs, batch_size=4096, verbose=0)
            loss = float((logs or {}).get("loss", np.nan))
            held = EpochFigures(epoch + 1, _ranks(q, c, rows), loss)
            figures = {
                self.monitor: held.metric("recall", n),
                "val_ndcg_at_10": held.metric("ndcg", 10),
                "loss": loss,
            }
            if logs is not None:
                logs.update(figures)
            self.epochs.append(figures)
            if on_epoch is not None:
                on_epoch(held)

        def summary(self) -> dict[str, Any]:
            return {"pairs": len(rows), "n": n, "epochs": self.epochs}

    return HeldOutRecall()


def _ranks(queries: np.ndarray, items: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """1-based rank of item `rows[i]` for query i among all items (ties count against it)."""
    out = np.empty(len(rows), dtype=np.int64)
    for start in range(0, len(rows), 2048):
        scores = queries[start : start + 2048] @ items.T
        own = scores[np.arange(len(scores)), rows[start : start + 2048]]
        out[start : start + 2048] = (scores > own[:, None]).sum(axis=1) + 1
    return out


def _features_from_frame(examples: pd.DataFrame) -> list:
    from tailwise.features.point_in_time import UserFeature
    from training.dataset import HISTORY_COLUMN, ITEM_COLUMNS

    skip = {"example_id", "user_id", "item_id", "event_timestamp", "weight", "first_touch"}
    skip |= {HISTORY_COLUMN, *ITEM_COLUMNS}
    out = []
    for name in examples.columns:
        if name in skip:
            continue
        sample = examples[name].dropna()
        if len(sample) and isinstance(sample.iloc[0], (list, np.ndarray)):
            first = next((v for v in sample if len(v)), [""])
            kind = "string_list" if isinstance(first[0], str) else "float_list"
        elif examples[name].dtype == object:
            kind = "categorical"
        else:
            kind = "numeric"
        out.append(UserFeature("", name, kind))
    return out


def build_retrieval_model(
    tfrs: Any, query_model: Any, candidate_model: Any, temperature: float
) -> Any:
    """The tfrs.Model that trains both towers together: in-batch softmax with
    sampling-bias correction and event weights."""

    class TwoTower(tfrs.models.Model):
        def __init__(self) -> None:
            super().__init__()
            self.query_model = query_model
            self.candidate_model = candidate_model
            self.task = tfrs.tasks.Retrieval(temperature=temperature, remove_accidental_hits=True)

        def compute_loss(self, batch: dict, training: bool = False) -> Any:
            return self.task(
                self.query_model(batch["query"], training=training),
                self.candidate_model(batch["candidate"], training=training),
                sample_weight=batch["weight"],
                candidate_sampling_probability=batch["probability"],
                candidate_ids=batch["candidate"]["item_id"],
                compute_metrics=False,
            )

    return TwoTower()


def save(result: RetrievalResult, folder: Path | str) -> Path:
    """Write the self-describing model folder (see the module docstring)."""
    tf = _tensorflow()
    if result.query_model is None:
        raise ValueError("only a freshly trained result can be saved (it holds the Keras model)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = result.query_model
    signature = {
        s.name: tf.TensorSpec(
            s.shape, tf.float32 if s.dtype == "float32" else tf.string, name=s.name
        )
        for s in result.inputs
    }

    @tf.function(input_signature=[signature])
    def serve(features: dict) -> dict:
        return {"query_embedding": model(features, training=False)}

    model.save(folder / "query_model", save_format="tf", signatures={"serving_default": serve})
    export_query_tower(model, result.inputs, result.config.hidden_layers, folder)
    pd.DataFrame(
        {"item_id": result.item_ids, "vector": list(result.item_vectors.astype(np.float32))}
    ).to_parquet(folder / "item_embeddings.parquet", index=False)
    manifest = {
        "format_version": FORMAT_VERSION,
        "model": "two_tower_retrieval",
        "feature_service": result.config.service,
        "feature_names": result.feature_names,
        "dropped_features": result.info.get("dropped_features", {}),
        "inputs": [s.to_dict() for s in result.inputs],
        "output": {"name": "query_embedding", "dim": result.config.embedding_dim},
        "score": "inner product of L2-normalised vectors",
        "config": result.config.model_dump(mode="json"),
        "data": result.info,
        "tensorflow": tf.__version__,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return folder


def load_manifest(folder: Path | str) -> dict[str, Any]:
    """The saved retriever's manifest.json (inputs, config, training figures)."""
    folder = Path(folder)
    manifest: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{folder}: format_version {manifest.get('format_version')} unsupported")
    return manifest


def load(folder: Path | str) -> RetrievalResult:
    """A RetrievalResult whose query embeddings come from the saved serving signature."""
    tf = _tensorflow()
    folder = Path(folder)
    manifest = load_manifest(folder)
    inputs = [TowerInput.from_dict(d) for d in manifest["inputs"]]
    serving = tf.saved_model.load(str(folder / "query_model")).signatures["serving_default"]
    vectors = pd.read_parquet(folder / "item_embeddings.parquet")

    def embed(arrays: dict[str, np.ndarray]) -> np.ndarray:
        tensors = {
            name: tf.constant(values.astype(str) if values.dtype == object else values)
            for name, values in arrays.items()
        }
        return serving(**tensors)["query_embedding"].numpy()

    return RetrievalResult(
        config=RetrievalConfig(**manifest["config"]),
        inputs=inputs,
        item_ids=vectors["item_id"].astype(str).to_numpy(object),
        item_vectors=np.stack(vectors["vector"].to_numpy()).astype(np.float32),
        embed=embed,
        info={**manifest["data"], "loaded": True},
    )


class TwoTowerRecommender:
    """The retriever behind the harness interface (`training.evaluate.Recommender`)."""

    name = "two_tower"

    def __init__(
        self,
        store: Any,
        config: RetrievalConfig | None = None,
        as_of: Any = None,
        on_epoch: EpochHook | None = None,
    ) -> None:
        self.store = store
        self.config = config or RetrievalConfig()
        self.as_of = None if as_of is None else pd.Timestamp(as_of)
        self.on_epoch = on_epoch  # per-epoch held-out figures (train_retrieval), e.g. Tune

    def fit(self, train_events: pd.DataFrame, items: pd.DataFrame | None) -> Self:
        """Examples from Feast as of each event, then train; remember what users saw."""
        if items is None:
            raise ValueError("TwoTowerRecommender needs the items table (item attributes)")
        features = user_features(self.store, self.config.service)
        self.examples = retrieval_examples(
            self.store, train_events, items, self.config.service, self.config.history_items
        )
        result = train_retrieval(self.config, self.examples, items, features, self.on_epoch)
        return self.attach(result, train_events)

    def attach(self, result: RetrievalResult, train_events: pd.DataFrame) -> Self:
        """Serve a trained or loaded `result`; `train_events` is what the users have seen."""
        self.result = result
        self._index = self.result.index()
        events = train_events.assign(user_id=train_events["user_id"].astype(str))
        self.seen = events.groupby("user_id")["item_id"].agg(lambda s: set(s.astype(str)))
        last = events.sort_values("timestamp").groupby("user_id").tail(1).set_index("user_id")
        self.context = last.reindex(columns=["device", "country"])
        self.trained_until = pd.to_datetime(train_events["timestamp"], utc=True).max()
        self.events = events[["user_id", "item_id", "timestamp"]]
        return self

    def recommend(self, user_ids: Iterable[str], k: int, exclude_seen: bool = True) -> pd.DataFrame:
        """Top-k items per user as of `as_of` (rank 1 first); fewer when fewer are left."""
        if not hasattr(self, "result"):
            raise RuntimeError(f"{self.name}: call fit() before recommend()")
        if k < 1:
            raise ValueError(f"{self.name}: k must be >= 1, got {k}")
        users = pd.unique(pd.Series(list(user_ids), dtype=object).astype(str))
        if len(users) == 0:
            return pd.DataFrame({"user_id": [], "item_id": [], "rank": [], "score": []})
        when = self.as_of if self.as_of is not None else self.trained_until
        context = self.context.reindex(users)
        entity = request_rows(
            pd.Series(users), pd.Series([when] * len(users)), context["device"], context["country"]
        ).assign(row_id=np.arange(len(users)))
        features = user_features(self.store, self.config.service)
        frame = historical_user_features(self.store, entity, features)
        history = [s for s in self.result.inputs if s.kind == "item_history"]
        for spec in history:  # the user's last items before `when`, as in training
            at = pd.DataFrame({"user_id": users, "timestamp": [when] * len(users)})
            frame[spec.name] = items_before(self.events, at, spec.length)
        vectors = self.result.query_embeddings(frame)
        exclude = [self.seen.get(u, set()) for u in users] if exclude_seen else None
        found = self._index.search(vectors, k, exclude)
        keep = found.found.ravel()
        return pd.DataFrame(
            {
                "user_id": np.repeat(users, k)[keep],
                "item_id": found.ids.ravel()[keep],
                "rank": np.tile(np.arange(1, k + 1), len(users))[keep],
                "score": found.scores.ravel()[keep],
            }
        )


def _held_out_pairs(held_out: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """The (user, item) pairs early stopping scores: each once, first touches only when the
    examples say which, catalogue items only (may be empty on small or repeat-heavy data)."""
    pairs = held_out
    if "first_touch" in pairs.columns:
        pairs = pairs[pairs["first_touch"].astype(bool)]
    pairs = pairs.drop_duplicates(["user_id", "item_id"])
    known = pairs["item_id"].astype(str).isin(set(items["item_id"].astype(str)))
    return pairs[known.to_numpy()]
