"""A version's fitted sources on disk, and back: `write_sources` / `read_sources`.

    fitted sources --write_sources(folder)--> folder/<source>/<table>.parquet (save_artifacts)
                                              folder/sources.json: class, settings, cut
    folder --read_sources--> the same fitted sources, ready for `candidates()`

Only the settings (numbers, strings, None) and the tables are stored; a source's class
says which table is which attribute (TABLES), so nothing is pickled.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from tailwise.candidates.base import CandidateSource, as_instant
from tailwise.candidates.buy_again import BuyAgain
from tailwise.candidates.covisitation import CoVisitation
from tailwise.candidates.ease import EaseNeighbours
from tailwise.candidates.features import ItemStats
from tailwise.candidates.popularity import NewArrivals, Popularity, Trending
from tailwise.candidates.profile import ProfilePopularity
from tailwise.candidates.taste import AttributePopularity

SPEC_FILE = "sources.json"
# class -> {artifact table: attribute it restores}
TABLES: dict[type, dict[str, str]] = {
    Popularity: {"popularity": "table"},
    Trending: {"trending": "table"},
    NewArrivals: {"new_arrivals": "table"},
    CoVisitation: {"neighbours": "table"},
    EaseNeighbours: {"neighbours": "table"},
    AttributePopularity: {
        "item_group": "item_group",
        "group_items": "table",
        "group_share": "group_share",
    },
    ProfilePopularity: {"base": "base", "lift": "lift"},
    BuyAgain: {},
    ItemStats: {"item_stats": "table"},
}
CLASSES = {cls.__name__: cls for cls in TABLES}
_SETTING_TYPES = (int, float, str, bool, type(None))


def write_sources(sources: Iterable[CandidateSource | ItemStats], folder: Path) -> Path:
    """Every fitted source's tables and sources.json (see the module docstring)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec = []
    for source in sources:
        if type(source) not in TABLES:
            raise ValueError(f"write_sources: no table map for {type(source).__name__}")
        if not hasattr(source, "cut"):
            raise ValueError(f"write_sources: {source.name} is not fitted")
        for table, frame in source.artifact().items():
            path = folder / source.name / f"{table}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.to_parquet(path, index=False)
        settings = {
            k: v for k, v in vars(source).items() if isinstance(v, _SETTING_TYPES) and k != "cut"
        }
        spec.append(
            {
                "name": source.name,
                "class": type(source).__name__,
                "settings": settings,
                "cut": source.cut.isoformat(),
            }
        )
    (folder / SPEC_FILE).write_text(json.dumps(spec, indent=2) + "\n")
    return folder


def read_sources(folder: Path) -> list[Any]:
    """The fitted sources write_sources stored in `folder`, in their order."""
    folder = Path(folder)
    path = folder / SPEC_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: was this version trained with sources?")
    out = []
    for entry in json.loads(path.read_text()):
        cls = CLASSES.get(entry.get("class"))
        if cls is None:
            raise ValueError(f"{path}: unknown source class {entry.get('class')!r}")
        source: Any = object.__new__(cls)  # restored from settings, not __init__
        vars(source).update(entry["settings"])
        source.cut = as_instant(entry["cut"], f"{path}: cut of {entry['name']}")
        for table, attribute in TABLES[cls].items():
            setattr(source, attribute, pd.read_parquet(folder / entry["name"] / f"{table}.parquet"))
        out.append(source)
    return out
