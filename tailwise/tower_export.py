"""The query tower as plain data: the files training writes next to the SavedModel on
purpose and serving evaluates, so neither reads the other's code nor Keras' graph.

    <version>/retrieval/query_tower.json   QueryTowerExport (this module's schema)
    <version>/retrieval/query_tower.npz    the arrays its fields name (float32)

The tower it describes, evaluated in order:
  1. each `embedded` input's codes (tailwise.features.tower_inputs.Vocabulary over its
     `vocabulary`) pick rows of its `table`; `pooling` 'row' takes the row, 'mean' the mean
     of a list's filled slots (zeros when none is filled)
  2. `numeric` inputs: non-finite -> 0, sign(x)*log1p(|x|), (x - mean) / max(sqrt(variance),
     epsilon)
  3. the embedded parts in their order, then the numeric block, concatenated
  4. every `dense` layer in order: activation(x @ kernel + bias)
  5. `normalize` 'l2': x / sqrt(max(sum(x^2), NORM_EPSILON)) (tf.math.l2_normalize)

Versions: 1 has inputs of kind id, categorical, numeric and string_list. 2 adds the kind
item_history (the user's last M items, `length` M; pooled 'mean' over the item-id table,
so the request must pass the user's latest items, tailwise.features.tower_inputs
.latest_items). A reader of version 2 reads version 1 unchanged; an export that has an
item_history input must say version 2.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

FORMAT_VERSION: Literal[2] = 2
READABLE_VERSIONS = (1, 2)
HISTORY_KIND = "item_history"  # the input kind version 2 added
DESCRIPTION = "query_tower.json"
WEIGHTS = "query_tower.npz"
NORM_EPSILON = 1e-12  # tf.math.l2_normalize's floor on the squared norm


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmbeddedInput(_Strict):
    input: str = Field(description="The tower input (tailwise.features.tower_inputs).")
    vocabulary: list[str] = Field(description="Tokens from row 2 on (0: mask, 1: OOV).")
    table: str = Field(description="Key of the embedding table in query_tower.npz.")
    pooling: Literal["row", "mean"]


class NumericBlock(_Strict):
    inputs: list[str]
    transform: Literal["signed_log1p"]
    mean: list[float]
    variance: list[float]
    epsilon: float = Field(gt=0, description="Floor on the standard deviation.")


class DenseLayer(_Strict):
    name: str
    activation: str = Field(description="A name serving's activation table must know.")
    kernel: str = Field(description="Key of the (inputs, units) kernel in query_tower.npz.")
    bias: str = Field(description="Key of the (units,) bias in query_tower.npz.")


class QueryTowerExport(_Strict):
    format_version: Literal[1, 2] = FORMAT_VERSION
    inputs: list[dict[str, Any]] = Field(description="TowerInput.to_dict of each, in order.")
    embedded: list[EmbeddedInput]
    numeric: NumericBlock | None
    dense: list[DenseLayer] = Field(min_length=1)
    normalize: Literal["l2"] = "l2"

    @model_validator(mode="after")
    def _kinds_of_its_version(self) -> QueryTowerExport:
        history = [d.get("name") for d in self.inputs if d.get("kind") == HISTORY_KIND]
        if history and self.format_version < 2:
            raise ValueError(
                f"format_version {self.format_version}: inputs {history} of kind"
                f" {HISTORY_KIND!r} need format_version 2"
            )
        return self


def write_export(folder: Path, export: QueryTowerExport, arrays: dict[str, np.ndarray]) -> None:
    """Write the description and its arrays into `folder` (a retriever's folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    named = {key: np.asarray(value, dtype=np.float32) for key, value in arrays.items()}
    missing = _keys(export) - set(named)
    if missing:
        raise ValueError(f"query tower export: no array for {sorted(missing)}")
    np.savez(folder / WEIGHTS, allow_pickle=False, **named)
    (folder / DESCRIPTION).write_text(export.model_dump_json(indent=1) + "\n")


def read_export(folder: Path) -> tuple[QueryTowerExport, dict[str, np.ndarray]]:
    """The description and arrays in `folder`. FileNotFoundError when it has none;
    ValueError naming the field or array when they are not this format."""
    text = (folder / DESCRIPTION).read_text()
    export = QueryTowerExport.model_validate_json(text)  # ValidationError is a ValueError
    try:
        with np.load(folder / WEIGHTS, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{folder / WEIGHTS}: not an .npz file ({exc})") from exc
    missing = _keys(export) - set(arrays)
    if missing:
        raise ValueError(f"{folder / WEIGHTS}: no array {sorted(missing)}")
    return export, arrays


def _keys(export: QueryTowerExport) -> set[str]:
    tables = {e.table for e in export.embedded}
    return tables | {k for layer in export.dense for k in (layer.kernel, layer.bias)}
