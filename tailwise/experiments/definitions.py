"""Experiments as code: the YAML files of `experiments/`, parsed into typed, checked models.

    experiments/<name>.yaml --load_definitions--> Definitions (one Experiment per file)
        checked per field (pydantic), then across files: unique names and salts, layers
        whose experiments' traffic ranges do not overlap nor pass 100%, model versions
        that exist in the models folder, candidate sources tailwise.candidates knows

One file per experiment, not a params.yaml section: starting, changing or stopping an
experiment is a one-file diff a reviewer reads alone, and no DVC stage that reads
params.yaml is invalidated by it. How experiments run (attribution window, how often a
replica reads the allocation) is a params.yaml setting (`experiments:`, ExperimentsParams).

Layers: every experiment names a layer and a traffic range [offset, offset + share) of it.
A user's position in a layer is a hash of the layer name and the user id
(tailwise.experiments.assignment), so experiments in one layer never share a user and
different layers are independent. Within an experiment a second hash, salted with the
experiment's salt, picks the variant by the variants' weights.

`sequential:` is how the report's sequential test keeps alpha when it is read repeatedly:
fixed with the experiment (a plan that moves with the data is no plan).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tailwise.experiments.declines import DeclinePolicy
from tailwise.experiments.group_sequential import SequentialPlan
from tailwise.params import ParamsError, load_params

NAME = r"^[a-z0-9][a-z0-9_\-]{0,63}$"
WEIGHT_TOLERANCE = 1e-6
VARIANT_TYPES = ("treatment", "holdout")
CANDIDATE_SOURCES = (  # default_sources' names and two_tower (a test keeps them equal)
    "popularity",
    "popularity_7d",
    "popularity_device",
    "popularity_country",
    "popular_in_category_l1",
    "popular_in_category",
    "popular_in_brand",
    "trending",
    "new_arrivals",
    "covisitation",
    "ease",
    "buy_again",
    "two_tower",  # the query tower's top N, a source when training.ranker.two_tower_source
)


class DefinitionError(ValueError):
    """An experiment definition is wrong; the message names the file and the field."""


class Variant(BaseModel):
    """One arm. A `treatment` may change the model version, the rules, the candidate-source
    mix and the content template (unset: as served); a `holdout` is the popular list, no
    personalisation, and changes nothing else."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    type: str = Field("treatment", description="treatment or holdout")
    weight: float = Field(ge=0, le=1, description="Share of the experiment's users (sum 1).")
    model_version: str | None = Field(None, description="A version in the models folder.")
    rules: dict[str, Any] = Field(
        default_factory=dict, description="serving.config.RulesConfig fields to override."
    )
    sources: list[str] | None = Field(None, description="Candidate sources to use, by name.")
    template: str | None = Field(None, min_length=1, description="Content template name.")

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in VARIANT_TYPES:
            raise ValueError(
                f"unknown variant type {value!r}: expected one of {', '.join(VARIANT_TYPES)}"
            )
        return value

    @field_validator("model_version")
    @classmethod
    def _version_exists(cls, value: str | None, info: ValidationInfo) -> str | None:
        models_dir = (info.context or {}).get("models_dir")
        if value is None or models_dir is None:
            return value
        if not (Path(models_dir) / value / "manifest.json").exists():
            known = sorted(p.parent.name for p in Path(models_dir).glob("*/manifest.json"))
            raise ValueError(f"unknown model version {value!r} in {models_dir} (have: {known})")
        return value

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("an empty source list: leave `sources` out to keep the served mix")
        unknown = [s for s in value if s not in CANDIDATE_SOURCES]
        if unknown:
            raise ValueError(
                f"unknown candidate source(s) {unknown}: known are {', '.join(CANDIDATE_SOURCES)}"
            )
        return value

    @model_validator(mode="after")
    def _holdout_changes_nothing(self) -> Variant:
        if self.type == "holdout":
            set_ = [f for f in ("model_version", "template", "sources") if getattr(self, f)]
            set_ += ["rules"] if self.rules else []
            if set_:
                raise ValueError(f"a holdout variant serves the popular list: drop {set_}")
        return self


class Traffic(BaseModel):
    """The range [offset, offset + share) of the layer the experiment takes."""

    model_config = ConfigDict(extra="forbid")

    share: float = Field(gt=0, le=1)
    offset: float = Field(0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _inside_the_layer(self) -> Traffic:
        if self.offset + self.share > 1 + WEIGHT_TOLERANCE:
            raise ValueError(
                f"offset {self.offset} + share {self.share} passes 1: the range leaves the layer"
            )
        return self

    @property
    def end(self) -> float:
        return self.offset + self.share


class Bandit(BaseModel):
    """Thompson sampling over the variants (tailwise.experiments.bandit.allocation): the
    definition's weights until every variant has `burn_in` exposures, then each variant's
    posterior probability of being the best, no variant below `floor`, recomputed at most
    every `update_seconds` (on the event consumer's passes)."""

    model_config = ConfigDict(extra="forbid")

    metric: Literal["click", "conversion"] = "click"
    burn_in: int = Field(
        1000, ge=0, description="Exposures every variant needs before the allocation is used."
    )
    floor: float = Field(0.05, ge=0, lt=1, description="Smallest share of any variant.")
    update_seconds: float = Field(
        0.0, ge=0, description="Least time between allocation changes; 0: every consumer pass."
    )


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    description: str = ""
    salt: str = Field(min_length=4, max_length=128)
    layer: str = Field("default", pattern=NAME)
    traffic: Traffic = Field(default_factory=lambda: Traffic(share=1.0))
    start: datetime
    stop: datetime | None = None
    variants: list[Variant] = Field(min_length=2)
    bandit: Bandit | None = Field(None, description="Unset: the variants' weights stay fixed.")
    sequential: SequentialPlan = Field(
        default_factory=SequentialPlan,
        description="How repeated reports keep alpha: the confidence sequence (default) "
        "or a group-sequential plan (tailwise.experiments.group_sequential).",
    )

    @field_validator("start", "stop", mode="before")
    @classmethod
    def _utc(cls, value: Any) -> Any:
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        return value

    @field_validator("start", "stop")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Experiment:
        if self.stop is not None and self.stop <= self.start:
            raise ValueError(
                f"stop {self.stop.isoformat()} is not after start {self.start.isoformat()}"
            )
        total = sum(v.weight for v in self.variants)
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            weights = {v.name: v.weight for v in self.variants}
            raise ValueError(f"variant weights must sum to 1, got {total:g} ({weights})")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names repeat: {names}")
        if self.bandit is not None and self.bandit.floor * len(names) > 1 + WEIGHT_TOLERANCE:
            raise ValueError(
                f"bandit.floor {self.bandit.floor:g} x {len(names)} variants passes 1: "
                f"the floor can be at most {1 / len(names):.4g}"
            )
        return self

    def active(self, now: datetime) -> bool:
        return self.start <= now and (self.stop is None or now < self.stop)

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(f"experiment {self.name!r} has no variant {name!r}")

    @property
    def weights(self) -> dict[str, float]:
        return {v.name: v.weight for v in self.variants}


class ExperimentsParams(BaseModel):
    """params.yaml `experiments:`: where the definitions are and how they run."""

    model_config = ConfigDict(extra="forbid")

    dir: Path = Field(Path("experiments"), description="Folder of experiment YAML files.")
    attribution_hours: float = Field(
        24.0,
        gt=0,
        description="An event without a request id is credited to the user's "
        "latest exposure of the experiment at most this many hours before it.",
    )
    allocation_refresh_seconds: float = Field(
        10.0, gt=0, description="How often a replica reads the bandit allocation from Redis."
    )
    thompson_draws: int = Field(10_000, ge=100, description="Posterior draws per allocation.")
    seed: int = 0
    declines: DeclinePolicy = Field(
        default_factory=DeclinePolicy, description="When a variant's KPI decline is flagged."
    )


def load_experiments_params(path: Path) -> ExperimentsParams:
    """params.yaml's `experiments:` section (defaults when missing); the stage sections of
    tailwise.params stay apart, so DVC stages do not depend on this module."""
    section = (load_params(path).model_extra or {}).get("experiments") or {}
    try:
        return ExperimentsParams.model_validate(section)
    except ValidationError as exc:
        raise ParamsError(f"{path}: experiments.{_describe(exc)}") from exc


class Definitions(BaseModel):
    """Every experiment of the folder, checked across files."""

    experiments: list[Experiment] = Field(default_factory=list)

    @model_validator(mode="after")
    def _apart(self) -> Definitions:
        _unique([e.name for e in self.experiments], "experiment name")
        _unique([e.salt for e in self.experiments], "salt")
        layers: dict[str, list[Experiment]] = {}
        for e in self.experiments:
            layers.setdefault(e.layer, []).append(e)
        for layer, members in layers.items():
            check_layer(layer, members)
        return self

    def by_name(self, name: str) -> Experiment:
        for e in self.experiments:
            if e.name == name:
                return e
        known = [e.name for e in self.experiments]
        raise DefinitionError(f"no experiment {name!r} (defined: {known})")

    def active(self, now: datetime) -> list[Experiment]:
        return [e for e in self.experiments if e.active(now)]


def check_layer(layer: str, members: Iterable[Experiment]) -> None:
    """Experiments of one layer take disjoint ranges that together fit in it. Ranges are
    checked whatever the dates, so a paused experiment's users cannot be reused unnoticed."""
    ordered = sorted(members, key=lambda e: e.traffic.offset)
    total = sum(e.traffic.share for e in ordered)
    if total > 1 + WEIGHT_TOLERANCE:
        shares = {e.name: e.traffic.share for e in ordered}
        raise ValueError(f"layer {layer!r}: traffic shares add up to {total:g} > 1 ({shares})")
    for a, b in itertools.pairwise(ordered):
        if b.traffic.offset < a.traffic.end - WEIGHT_TOLERANCE:
            raise ValueError(
                f"layer {layer!r}: experiments {a.name!r} [{a.traffic.offset:g}, "
                f"{a.traffic.end:g}) and {b.name!r} [{b.traffic.offset:g}, {b.traffic.end:g}) "
                "overlap; give one another offset or another layer"
            )


def load_definitions(
    folder: Path,
    models_dir: Path | None = None,
    check_variant: Callable[[Experiment, Variant], None] | None = None,
) -> Definitions:
    """Every `*.yaml` / `*.yml` file of `folder` (none, or no folder: no experiments).

    `models_dir` given: every variant's model version must exist there. `check_variant`
    (serving passes its rules check) raises ValueError for a variant it cannot run."""
    folder = Path(folder)
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []
    experiments = [parse_experiment(p, models_dir) for p in files]
    try:
        definitions = Definitions(experiments=experiments)
    except ValidationError as exc:
        raise DefinitionError(f"{folder}: {_describe(exc)}") from exc
    if check_variant is not None:
        for e, path in zip(experiments, files, strict=True):
            for n, v in enumerate(e.variants):
                try:
                    check_variant(e, v)
                except ValueError as exc:
                    raise DefinitionError(f"{path}: variants.{n} ({v.name}): {exc}") from exc
    return definitions


def parse_experiment(path: Path, models_dir: Path | None = None) -> Experiment:
    """One file; DefinitionError naming the file and every bad field."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise DefinitionError(f"{path}: expected a mapping of fields, got {type(raw).__name__}")
    try:
        return Experiment.model_validate(raw, context={"models_dir": models_dir})
    except ValidationError as exc:
        raise DefinitionError(f"{path}: {_describe(exc)}") from exc


def _unique(values: list[str], what: str) -> None:
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{what} used by more than one experiment: {repeated}")


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "experiment"
        msg = re.sub(r"^(Value|Assertion) error, ", "", err["msg"])
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)
