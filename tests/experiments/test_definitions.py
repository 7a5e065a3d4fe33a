"""Experiment definitions: a good folder parses; every bad one gets an error naming the
file and the field (weights, model version, layers, variant type, dates, sources)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tailwise.candidates import default_sources
from tailwise.experiments.definitions import (
    CANDIDATE_SOURCES,
    DefinitionError,
    load_definitions,
    load_experiments_params,
)
from tailwise.params import ParamsError

GOOD: dict[str, Any] = {
    "name": "homepage_ranker",
    "salt": "homepage-2026-12",
    "layer": "homepage",
    "traffic": {"offset": 0.0, "share": 0.6},
    "start": "2026-12-01",
    "stop": "2027-01-15",
    "bandit": {"metric": "click", "burn_in": 500, "floor": 0.05},
    "variants": [
        {"name": "champion", "weight": 0.45},
        {
            "name": "challenger",
            "weight": 0.45,
            "model_version": "v2",
            "rules": {"max_per_category": 2},
            "sources": ["covisitation", "ease"],
        },
        {"name": "popular", "type": "holdout", "weight": 0.1},
    ],
}


@pytest.fixture
def models(tmp_path: Path) -> Path:
    for version in ("v1", "v2"):
        (tmp_path / "models" / version).mkdir(parents=True)
        (tmp_path / "models" / version / "manifest.json").write_text("{}")
    return tmp_path / "models"


def write(folder: Path, *experiments: dict[str, Any]) -> Path:
    folder.mkdir(exist_ok=True)
    for e in experiments:
        (folder / f"{e['name']}.yaml").write_text(yaml.safe_dump(e))
    return folder


def error(folder: Path, models: Path | None = None) -> str:
    with pytest.raises(DefinitionError) as caught:
        load_definitions(folder, models)
    return str(caught.value)


def changed(**fields: Any) -> dict[str, Any]:
    return {**GOOD, **fields}


def test_a_good_folder_parses_into_typed_experiments(tmp_path: Path, models: Path) -> None:
    other = changed(
        name="search_rules",
        salt="search-1",
        layer="search",
        bandit=None,
        traffic={"share": 1.0},
        variants=[{"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.5}],
    )
    found = load_definitions(write(tmp_path / "exp", GOOD, other), models)
    e = found.by_name("homepage_ranker")
    assert e.weights == {"champion": 0.45, "challenger": 0.45, "popular": 0.1}
    assert e.variant("popular").type == "holdout" and e.start.tzinfo is not None
    assert e.variant("challenger").rules == {"max_per_category": 2}
    assert load_definitions(tmp_path / "none").experiments == []


def test_weights_not_summing_to_one(tmp_path: Path) -> None:
    bad = changed(variants=[{"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.4}])
    text = error(write(tmp_path / "exp", bad))
    assert "homepage_ranker.yaml" in text and "weights must sum to 1, got 0.9" in text


def test_an_unknown_model_version_names_the_variant_and_what_exists(
    tmp_path: Path, models: Path
) -> None:
    bad = changed(
        variants=[{"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.5, "model_version": "v9"}]
    )
    text = error(write(tmp_path / "exp", bad), models)
    assert "variants.1.model_version" in text and "'v9'" in text and "'v2'" in text


def test_overlapping_experiments_in_a_layer(tmp_path: Path) -> None:
    second = changed(name="second", salt="second-salt", traffic={"offset": 0.5, "share": 0.3})
    text = error(write(tmp_path / "exp", GOOD, second))
    assert "layer 'homepage'" in text and "overlap" in text and "'second'" in text


def test_traffic_over_the_whole_layer(tmp_path: Path) -> None:
    second = changed(name="second", salt="second-salt", traffic={"offset": 0.6, "share": 0.5})
    assert "leaves the layer" in error(write(tmp_path / "a", second))
    third = changed(name="third", salt="third-salt", traffic={"offset": 0.0, "share": 0.6})
    assert "add up to 1.2 > 1" in error(write(tmp_path / "b", GOOD, third))


def test_an_unknown_variant_type(tmp_path: Path) -> None:
    bad = changed(
        variants=[{"name": "a", "weight": 0.5, "type": "shadow"}, {"name": "b", "weight": 0.5}]
    )
    text = error(write(tmp_path / "exp", bad))
    assert "variants.0.type" in text and "unknown variant type 'shadow'" in text


def test_stop_before_start(tmp_path: Path) -> None:
    text = error(write(tmp_path / "exp", changed(stop="2026-11-01")))
    assert "stop 2026-11-01" in text and "not after start" in text


def test_other_bad_fields_are_named(tmp_path: Path) -> None:
    assert "unknown candidate source(s) ['eese']" in error(
        write(
            tmp_path / "a",
            changed(
                variants=[
                    {"name": "a", "weight": 1.0, "sources": ["eese"]},
                    {"name": "b", "weight": 0.0},
                ]
            ),
        )
    )
    assert "a holdout variant serves the popular list" in error(
        write(
            tmp_path / "b",
            changed(
                variants=[
                    {"name": "a", "weight": 0.5},
                    {"name": "h", "type": "holdout", "weight": 0.5, "model_version": "v1"},
                ]
            ),
        )
    )
    assert "salt" in error(write(tmp_path / "c", GOOD, changed(name="copy", layer="other")))
    assert "variants: List should have at least 2 items" in error(
        write(tmp_path / "d", changed(variants=[{"name": "a", "weight": 1.0}]))
    )
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "x.yaml").write_text("name: [unclosed")
    assert "not valid YAML" in error(tmp_path / "e")
    assert "colour: Extra inputs are not permitted" in error(
        write(tmp_path / "f", changed(colour=1))
    )


def test_the_known_sources_are_the_candidate_packages_own() -> None:
    items = pd.DataFrame(
        {
            "item_id": ["a"],
            "category_l1": ["x"],
            "category": ["x"],
            "brand": ["y"],
            "created_at": [pd.Timestamp("2026-01-01", tz="UTC")],
        }
    )
    names = {s.name for s in default_sources(True, items=items)} | {"two_tower"}
    assert names == set(CANDIDATE_SOURCES)


def test_params_have_an_experiments_section(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("experiments: {attribution_hours: 12, allocation_refresh_seconds: 5}\n")
    params = load_experiments_params(path)
    assert params.attribution_hours == 12 and params.dir == Path("experiments")
    path.write_text("experiments: {attribution_hours: -1}\n")
    with pytest.raises(
        ParamsError, match=r"experiments\.attribution_hours: Input should be greater"
    ):
        load_experiments_params(path)


def test_the_committed_examples_parse() -> None:
    examples = Path(__file__).resolve().parents[2] / "experiments" / "examples"
    found = load_definitions(examples)
    assert [e.name for e in found.experiments] == ["homepage_ranker"]
    assert found.experiments[0].variant("popular").type == "holdout"
