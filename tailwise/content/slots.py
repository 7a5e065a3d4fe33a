"""Which template of a slot a request gets: the experiment's, else the first matching
rule's, else the slot's default.

The experiment hook: an `Assigner` answers "which variant for this user in this slot"
(tailwise.experiments assigns users to variants; a variant may name a template). When it
returns an `Assignment` whose template is one of the slot's, that template renders and
the response carries the experiment, variant and propensity so clicks attribute to it.
`assignment_from_answer` reads the same fields from a `/recommend` body that has them.
Until an experiment runs on a slot, its rules decide.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tailwise.content.manifest import Condition, Slot


@dataclass(frozen=True)
class Assignment:
    experiment: str
    variant: str
    propensity: float | None = None
    template: str | None = None  # the template of the slot the variant names, if any


class Assigner(Protocol):
    def assign(self, user_id: str, slot: str, experiment: str | None) -> Assignment | None:
        """The user's variant in the experiment running on `slot` (None: no experiment)."""
        ...


def choose(
    slot: Slot, variables: Mapping[str, Any], assignment: Assignment | None = None
) -> tuple[str, str]:
    """(template name, chosen_by): experiment, rule or default."""
    if assignment is not None and assignment.template in slot.templates:
        return str(assignment.template), "experiment"
    for rule in slot.rules:
        if matches(rule.when, variables):
            return rule.template, "rule"
    return slot.default, "default"


def matches(when: Condition, variables: Mapping[str, Any]) -> bool:
    """Every field of `when` holds: its value is listed (case-insensitive), or for `has`
    every named list is non-empty."""
    for name in ("segment", "device", "daypart"):
        allowed = getattr(when, name)
        if allowed is not None:
            value = str(variables.get(name) or "").lower()
            if value not in {a.lower() for a in allowed}:
                return False
    return all(variables.get(need) for need in when.has or ())


def assignment_from_answer(body: Mapping[str, Any], slot: Slot) -> Assignment | None:
    """The experiment fields of a `/recommend` body, when it has them: `experiment`,
    `variant`, `propensity` and optionally `template` (else the variant's name, when the
    slot has a template of that name)."""
    experiment, variant = body.get("experiment"), body.get("variant")
    if not experiment or not variant:
        return None
    if slot.experiment is not None and experiment != slot.experiment:
        return None
    template = body.get("template") or (variant if variant in slot.templates else None)
    propensity = body.get("propensity")
    return Assignment(
        str(experiment),
        str(variant),
        float(propensity) if isinstance(propensity, (int, float)) else None,
        str(template) if template else None,
    )
