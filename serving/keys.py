"""Names of the serving app's Redis keys, all under `tailwise:<project>:`.

One place spells them, so the events path, the history bootstrap, the consumer and the
ingress agree (layout in the serving design: streams, per-user lists and sets, caches).
Feast's own online-store hashes are not here: `tailwise.features.online` owns that layout.
"""

from __future__ import annotations

from dataclasses import dataclass

RECENT_MAX = 50  # events kept per user in recent:<user> (LTRIM 0 RECENT_MAX-1)
RECENT_TTL_SECONDS = 2 * 24 * 3600


@dataclass(frozen=True)
class Keys:
    """Key names for one Feast project (the project keeps deployments and tests apart)."""

    project: str

    def __post_init__(self) -> None:
        if not self.project or any(c in self.project for c in ":*?[] "):
            raise ValueError(f"project {self.project!r} cannot be used in Redis key names")

    @property
    def prefix(self) -> str:
        return f"tailwise:{self.project}:"

    @property
    def pattern(self) -> str:
        """SCAN pattern matching every key of this project (cleanup, inspection)."""
        return f"{self.prefix}*"

    @property
    def events(self) -> str:
        """Stream of accepted events (field `e`: JSON of the clean event)."""
        return f"{self.prefix}events"

    @property
    def served(self) -> str:
        """Stream of served responses (field `r`: JSON request log entry)."""
        return f"{self.prefix}served"

    @property
    def exposures(self) -> str:
        """Stream of experiment exposures (field `x`: JSON row of the exposures table)."""
        return f"{self.prefix}exposures"

    @property
    def model(self) -> str:
        """The model version replicas should serve."""
        return f"{self.prefix}serving:model"

    @property
    def history_loaded_at(self) -> str:
        """Stamp (JSON with the clean data's fingerprint) of the last history bootstrap."""
        return f"{self.prefix}history:loaded_at"

    def recent(self, user_id: str) -> str:
        """List of the user's newest events as JSON, newest first."""
        return f"{self.prefix}recent:{user_id}"

    def seen(self, user_id: str) -> str:
        """Set of item ids the user interacted with."""
        return f"{self.prefix}seen:{user_id}"

    def purchased(self, user_id: str) -> str:
        """Set of item ids the user purchased."""
        return f"{self.prefix}purchased:{user_id}"

    def history(self, user_id: str) -> str:
        """Hash of the user's per-item history: `n:<item>` events, `t:<item>` epoch seconds
        of the newest (serving.history; the ranker's history features)."""
        return f"{self.prefix}history:{user_id}"

    def rec(self, user_id: str) -> str:
        """Hash of cached responses for the user (request fingerprint -> JSON)."""
        return f"{self.prefix}rec:{user_id}"
