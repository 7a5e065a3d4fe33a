"""The slot manifest (content/slots.yaml): which templates a slot has and how it picks one.

    slots:
      home_hero:
        audience: segment            # push: one block per segment (`user`: one per user)
        items: 4                     # recommended items handed to the templates
        default: default             # when no rule matches
        fallback: fallback           # when anything is missing or a template fails
        experiment: hero_test        # optional: an experiment whose variants name templates
        templates:
          default: {file: home_hero/default.mustache, headline: "...", cta_text: "...",
                    cta_url: "...", requires: [items]}
        rules:                       # the first match wins
          - {when: {segment: [lapsed]}, template: lapsed}
    push:                            # optional: where `tailwise content push` delivers
      url: https://cms.example/hooks/tailwise
      secret_env: TAILWISE_CONTENT_WEBHOOK_SECRET

Validated with pydantic; `ManifestError` lists every bad field as `slots.<slot>.<field>`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MANIFEST = "slots.yaml"
NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# What a template may declare it needs; without it the slot's fallback renders.
REQUIREMENTS = ("items", "segment", "recent_items", "top_categories", "top_brands")


class ManifestError(ValueError):
    """The manifest or a template file is wrong; the message names each bad field."""


class Template(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str = Field(description="Mustache file, relative to the content folder.")
    headline: str = Field("", max_length=300, description="Mustache text of the headline.")
    cta_text: str = Field("", max_length=120, description="Mustache text of the call to action.")
    cta_url: str = Field("", max_length=500, description="Mustache text of its link.")
    requires: list[Literal[REQUIREMENTS]] = Field(  # type: ignore[valid-type]
        default_factory=list, description="Data the template needs; else the fallback renders."
    )


class Condition(BaseModel):
    """Every listed field must match; an empty condition always matches."""

    model_config = ConfigDict(extra="forbid")

    segment: list[str] | None = None
    device: list[str] | None = None
    daypart: list[Literal["morning", "afternoon", "evening", "night"]] | None = None
    has: list[Literal[REQUIREMENTS]] | None = None  # type: ignore[valid-type]


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    when: Condition = Field(default_factory=Condition)
    template: str


class Slot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    audience: Literal["segment", "user"] = "segment"
    items: int = Field(4, ge=0, le=50)
    default: str
    fallback: str
    experiment: str | None = None
    templates: dict[str, Template] = Field(min_length=1)
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_exist(self) -> Slot:
        problems = [
            f"template name {n!r} must match {NAME.pattern}"
            for n in self.templates
            if not NAME.match(n)
        ]
        for field, name in (("default", self.default), ("fallback", self.fallback)):
            if name not in self.templates:
                problems.append(
                    f"{field}: {name!r} is not one of its templates {sorted(self.templates)}"
                )
        for i, rule in enumerate(self.rules):
            if rule.template not in self.templates:
                problems.append(
                    f"rules.{i}.template: {rule.template!r} is not one of its templates "
                    f"{sorted(self.templates)}"
                )
        if self.fallback in self.templates and self.templates[self.fallback].requires:
            problems.append(
                f"fallback: {self.fallback!r} may not require data (it renders when data is missing)"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class PushTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, description="Webhook URL the blocks are POSTed to.")
    secret_env: str = Field(
        "TAILWISE_CONTENT_WEBHOOK_SECRET",
        description="Environment variable holding the Standard Webhooks secret (whsec_...).",
    )
    outbox: str = Field(".tailwise/content/outbox.sqlite3", description="SQLite outbox file.")
    attempts: int = Field(5, ge=1, le=20, description="Tries per block per push run.")
    backoff_seconds: float = Field(0.5, gt=0, le=60, description="First retry wait (doubles).")
    timeout_seconds: float = Field(5.0, gt=0, le=120)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slots: dict[str, Slot] = Field(min_length=1)
    push: PushTarget = Field(default_factory=PushTarget)

    @model_validator(mode="after")
    def _slot_names(self) -> Manifest:
        bad = [n for n in self.slots if not NAME.match(n)]
        if bad:
            raise ValueError(f"slot names must match {NAME.pattern}: {bad}")
        return self


def load_manifest(folder: Path) -> Manifest:
    """The manifest of `folder`, every template file checked to exist inside it."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ManifestError(f"no content manifest: {path} does not exist")
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path} is not valid YAML: {exc}") from exc
    try:
        manifest = Manifest.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in e['loc']) or 'manifest'}: {e['msg']}"
            for e in exc.errors()
        ]
        raise ManifestError(f"{path} has {len(lines)} problem(s):\n" + "\n".join(lines)) from None
    root = Path(folder).resolve()
    missing = []
    for slot_name, slot in manifest.slots.items():
        for name, template in slot.templates.items():
            file = (root / template.file).resolve()
            if not file.is_relative_to(root) or not file.is_file():
                missing.append(
                    f"  slots.{slot_name}.templates.{name}.file: no file {template.file!r} in {root}"
                )
    if missing:
        raise ManifestError(f"{path} has {len(missing)} problem(s):\n" + "\n".join(missing))
    return manifest
