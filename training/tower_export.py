"""The query tower written as plain data for serving (format: tailwise.tower_export).

    query model (built by training.towers.build_towers)
      --export_query_tower--> retrieval/query_tower.json + query_tower.npz

The layers are taken by the names `build_towers` gave them (`layer_name`,
`normalization_name`, `dense_names`), so the export follows the builder: any number of
hidden layers, their activation by name. A lookup that does not number its tokens as
tailwise.features.tower_inputs.Vocabulary does is refused here, at training time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tailwise.features.tower_inputs import FIRST_TOKEN, TowerInput
from tailwise.tower_export import (
    DenseLayer,
    EmbeddedInput,
    NumericBlock,
    QueryTowerExport,
    write_export,
)
from training.towers import dense_names, layer_name, normalization_name

TOWER = "query"


def export_query_tower(
    model: Any, inputs: Sequence[TowerInput], hidden_layers: Sequence[int], folder: Path
) -> None:
    """Write `model`'s vocabularies, statistics and weights into `folder`."""
    arrays: dict[str, np.ndarray] = {}
    embedded = [_embedded(model, spec, arrays) for spec in inputs if spec.kind != "numeric"]
    numerics = [s.name for s in inputs if s.kind == "numeric"]
    dense = []
    for name in dense_names(TOWER, hidden_layers):
        layer = model.get_layer(name)
        kernel, bias = layer.get_weights()
        arrays[f"{name}/kernel"], arrays[f"{name}/bias"] = kernel, bias
        activation = layer.get_config()["activation"]
        dense.append(
            DenseLayer(
                name=name, activation=str(activation), kernel=f"{name}/kernel", bias=f"{name}/bias"
            )
        )
    export = QueryTowerExport(
        inputs=[s.to_dict() for s in inputs],
        embedded=embedded,
        numeric=_numeric(model, numerics) if numerics else None,
        dense=dense,
    )
    write_export(folder, export, arrays)


def _embedded(model: Any, spec: TowerInput, arrays: dict[str, np.ndarray]) -> EmbeddedInput:
    lookup = model.get_layer(layer_name(spec.name, "lookup"))
    embedding = model.get_layer(layer_name(spec.name, "embedding"))
    vocabulary = [str(t) for t in lookup.get_vocabulary()]
    if vocabulary[:FIRST_TOKEN] != ["", lookup.oov_token] or lookup.num_oov_indices != 1:
        raise ValueError(
            f"query tower input {spec.name!r}: lookup {lookup.name} does not put the mask ''"
            f" and one OOV row first ({vocabulary[:FIRST_TOKEN]}); the export cannot describe it"
        )
    arrays[embedding.name] = embedding.get_weights()[0]
    return EmbeddedInput(
        input=spec.name,
        vocabulary=vocabulary[FIRST_TOKEN:],
        table=embedding.name,
        pooling="mean" if spec.is_list else "row",
    )


def _numeric(model: Any, names: list[str]) -> NumericBlock:
    import tensorflow as tf

    layer = model.get_layer(normalization_name(TOWER))
    mean = np.asarray(layer.mean, dtype=np.float64).reshape(-1)
    variance = np.asarray(layer.variance, dtype=np.float64).reshape(-1)
    if len(mean) != len(names):
        raise ValueError(f"{layer.name}: {len(mean)} statistics for {len(names)} numeric inputs")
    return NumericBlock(
        inputs=names,
        transform="signed_log1p",
        mean=[float(v) for v in mean],
        variance=[float(v) for v in variance],
        epsilon=float(tf.keras.backend.epsilon()),
    )
