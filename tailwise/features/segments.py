"""User segments: K-Means on standardised log1p RFM/activity/tenure, named by rules.

Fit on each user's latest user_daily snapshot at or before a cutoff (so a model trained
on data up to the cutoff can be evaluated after it), then assign every snapshot. The
model is plain JSON (feature order, scaler, centroids, names): `assign_segments` here and
`segment_sql` in the builder apply the same arithmetic, and serving can assign online.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler

SEGMENT_FEATURES = (
    "recency_days",
    "frequency",
    "monetary",
    "views_30d",
    "purchases_30d",
    "sessions_30d",
    "tenure_days",
)


def fit_segments(snapshots: pd.DataFrame, k: int, seed: int) -> dict[str, Any]:
    """The segment model (JSON-ready) from one row per user with SEGMENT_FEATURES."""
    if snapshots.empty:
        raise ValueError("no user snapshots at or before the segment cutoff to fit segments on")
    x = _log(snapshots)
    # K-Means++ seeds by row position, and the builder's query returns users in no fixed
    # order: sorted rows make the model a function of the snapshots alone, not their order.
    x = x[np.lexsort(x.T[::-1])]
    scaler = StandardScaler().fit(x)
    # A tiny data set may have fewer distinct users than k: fit as many clusters as it has.
    k_fit = min(k, len(np.unique(x, axis=0)))
    km = KMeans(n_clusters=k_fit, random_state=seed, n_init=4).fit(scaler.transform(x))
    model: dict[str, Any] = {
        "features": list(SEGMENT_FEATURES),
        "transform": "z = (ln(1 + max(x, 0)) - mean) / scale",
        "mean": scaler.mean_.tolist(),
        "scale": scaler.scale_.tolist(),
        "centroids": km.cluster_centers_.tolist(),
        "seed": seed,
        "k_requested": k,
        "n_fit": len(snapshots),
    }
    model["names"] = name_segments(model)
    return model


def _log(df: pd.DataFrame) -> np.ndarray:
    # ln(1 + x) rather than log1p: DuckDB evaluates the same expression in segment_sql.
    return np.log(1.0 + df[list(SEGMENT_FEATURES)].to_numpy(dtype=float).clip(min=0))


def assign_segments(features: pd.DataFrame, model: dict[str, Any]) -> np.ndarray:
    """Nearest centroid (int64) for rows with SEGMENT_FEATURES: the online assignment."""
    z = (_log(features) - np.asarray(model["mean"])) / np.asarray(model["scale"])
    c = np.asarray(model["centroids"])
    d = ((z[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
    return d.argmin(axis=1).astype(np.int64)


def segment_sql(model: dict[str, Any]) -> tuple[str, str]:
    """SQL expressions (segment, segment_name) over columns named as SEGMENT_FEATURES."""
    z = [
        f"((ln(1.0 + greatest(CAST({f} AS DOUBLE), 0.0)) - {m!r}) / {s!r})"
        for f, m, s in zip(model["features"], model["mean"], model["scale"], strict=True)
    ]
    dists = [
        "(" + " + ".join(f"power({zj} - {cj!r}, 2)" for zj, cj in zip(z, c, strict=True)) + ")"
        for c in model["centroids"]
    ]
    seg = f"CAST(list_position([{', '.join(dists)}], list_min([{', '.join(dists)}])) - 1 AS BIGINT)"
    names = ", ".join("'" + n.replace("'", "''") + "'" for n in model["names"])
    return seg, f"[{names}][({seg}) + 1]"


def name_segments(model: dict[str, Any]) -> list[str]:
    """Readable, unique names from centroids in original units (rules checked in order)."""
    raw = centroids_raw(model)
    f = {name: raw[:, i] for i, name in enumerate(model["features"])}
    names: list[str] = []
    for i in range(len(raw)):
        if f["views_30d"][i] < 1 and f["sessions_30d"][i] < 0.5 and f["purchases_30d"][i] < 0.5:
            rule = "lapsed"  # no activity in the last 30 days
        elif f["purchases_30d"][i] >= 1:
            rule = "frequent buyers"
        elif f["tenure_days"][i] < 90:
            rule = "new"
        elif f["frequency"][i] < 0.5 and f["views_30d"][i] >= 3:
            rule = "browsers"
        else:
            rule = "occasional"
        names.append(rule)
    return _unique(names)


def centroids_raw(model: dict[str, Any]) -> np.ndarray:
    """Centroids mapped back to original units (days, counts, spend)."""
    c = np.asarray(model["centroids"])
    return np.exp(c * np.asarray(model["scale"]) + np.asarray(model["mean"])) - 1


def _unique(names: list[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        if names.count(n) > 1:
            out.append(f"{n} {sum(1 for m in out if m.startswith(n)) + 1}")
        else:
            out.append(n)
    return out


def write_report(model: dict[str, Any], sizes: pd.Series, out: Path) -> None:
    """segments_model.json, segments_report.md and segments.png in `out`."""
    (out / "segments_model.json").write_text(json.dumps(model, indent=2) + "\n")
    c = np.asarray(model["centroids"])
    raw = centroids_raw(model)
    lines = [
        "# User segments",
        "",
        f"K-Means, k={len(c)}, seed {model['seed']}, fit on {model['n_fit']:,} users' latest "
        "snapshot at or before the cutoff; features are ln(1 + x), standardised.",
        "",
        "Centroids in original units (days, counts, spend):",
        "",
        "| segment | name | snapshot rows | " + " | ".join(model["features"]) + " |",
        "|---|---|---|" + "---|" * len(model["features"]),
    ]
    for i, name in enumerate(model["names"]):
        vals = " | ".join(f"{v:,.1f}" for v in raw[i])
        lines.append(f"| {i} | {name} | {int(sizes.get(i, 0)):,} | {vals} |")
    (out / "segments_report.md").write_text("\n".join(lines) + "\n")
    _plot(model, sizes, c, out / "segments.png")


def _plot(model: dict[str, Any], sizes: pd.Series, c: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4), width_ratios=[1, 2])
    names = model["names"]
    a.barh(names, [int(sizes.get(i, 0)) for i in range(len(names))], color="tab:blue")
    a.set_title("snapshot rows per segment")
    im = b.imshow(c, cmap="RdBu_r", vmin=-2.5, vmax=2.5, aspect="auto")
    b.set_xticks(range(len(model["features"])), model["features"], rotation=30, ha="right")
    b.set_yticks(range(len(names)), names)
    b.set_title("centroids (standardised ln(1 + x))")
    fig.colorbar(im, ax=b)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
