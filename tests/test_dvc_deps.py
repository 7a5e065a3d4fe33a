"""dvc.yaml's code dependencies cover everything each stage imports.

A stage re-runs when one of its `deps` changes, so a module a stage imports but does not
list would let `dvc repro` keep outputs the new code would compute differently. The import
graph (grimp, the library import-linter builds on) says which modules each stage's code
reaches from its entry modules; each of them must lie under one of the stage's deps.
"""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
# The modules each stage's command runs (its CLI glue aside).
ENTRIES = {
    "generate": ["tailwise.synthetic", "tailwise.synthetic.profiles"],
    "ingest": ["tailwise.ingest.pipeline"],
    "features": ["tailwise.features.build"],
    "train_retrieval": ["training.pipeline"],
    "train_ranker": ["training.pipeline"],
    "evaluate": ["training.pipeline", "training.evaluate", "tailwise.versions"],
}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("tailwise", "training")


@pytest.fixture(scope="module")
def stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def module_path(module: str) -> str:
    """The module's file relative to the repo (a package: its folder's __init__.py)."""
    relative = Path(*module.split("."))
    package = relative / "__init__.py"
    return str(package if (REPO / package).exists() else relative.with_suffix(".py"))


def test_every_stage_is_listed() -> None:
    names = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert set(names) == set(ENTRIES)


@pytest.mark.parametrize("stage", list(ENTRIES))
def test_a_stage_depends_on_every_module_it_imports(
    stage: str, graph: grimp.ImportGraph, stages: dict
) -> None:
    code = [d.rstrip("/") for d in stages[stage]["deps"] if not d.startswith("data/")]
    assert all((REPO / d).exists() for d in code), code
    modules = set(ENTRIES[stage])
    for entry in ENTRIES[stage]:
        modules |= graph.find_upstream_modules(entry)
    missing = sorted(
        path
        for path in map(module_path, modules)
        if not any(path == d or path.startswith(d + "/") for d in code)
    )
    assert not missing, f"dvc.yaml stage {stage!r} imports but does not depend on {missing}"
