"""Names of the serving app's Redis keys, all under `tailwise:<project>:`.

One place spells them, so the events path, the history bootstrap, the consumer and the
ingress agree (layout in the serving design: streams, per-user lists and sets, caches).
Feast's own online-store hashes are not here: `tailwise.features.online` owns that layout.

On a Redis Cluster (`cluster=True`) the per-user keys carry the user id as a hash tag
(`...:recent:{<user>}`), so one user's keys share a slot: the events path's Lua script and
EXISTS over several of them stay single-slot. With `partitions` > 1 the events go to that
many stream keys (`events.<n>`), chosen by `tailwise.ingest.streams.partition_of` of the
user id; each is consumed by its own consumer group, and the keys spread over the nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from tailwise.ingest.streams import partition_of, partition_streams
from tailwise.settings import Settings

RECENT_MAX = 50  # events kept per user in recent:<user> (LTRIM 0 RECENT_MAX-1)
RECENT_TTL_SECONDS = 2 * 24 * 3600


@dataclass(frozen=True)
class Keys:
    """Key names for one Feast project (the project keeps deployments and tests apart)."""

    project: str
    cluster: bool = False
    partitions: int = 1

    def __post_init__(self) -> None:
        if not self.project or any(c in self.project for c in ":*?[]{} "):
            raise ValueError(f"project {self.project!r} cannot be used in Redis key names")
        if self.partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {self.partitions}")

    @classmethod
    def of(cls, project: str, settings: Settings) -> Keys:
        """The key names of `project` for the Redis that `settings` point at."""
        return cls(project, settings.redis_cluster, settings.event_partitions)

    @property
    def prefix(self) -> str:
        return f"tailwise:{self.project}:"

    @property
    def pattern(self) -> str:
        """SCAN pattern matching every key of this project (cleanup, inspection)."""
        return f"{self.prefix}*"

    @property
    def events(self) -> str:
        """Stream of accepted events (field `e`: JSON of the clean event); with several
        partitions, the name the partitions' names start with."""
        return f"{self.prefix}events"

    @property
    def event_streams(self) -> tuple[str, ...]:
        """Every stream key the events go to (one per partition)."""
        return partition_streams(self.events, self.partitions)

    def event_stream(self, user_id: str) -> str:
        """The stream key of `user_id`'s events (a stable hash of the id picks it)."""
        return self.event_streams[partition_of(user_id, self.partitions)]

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
        return self._user("recent", user_id)

    def seen(self, user_id: str) -> str:
        """Set of item ids the user interacted with."""
        return self._user("seen", user_id)

    def purchased(self, user_id: str) -> str:
        """Set of item ids the user purchased."""
        return self._user("purchased", user_id)

    def history(self, user_id: str) -> str:
        """Hash of the user's per-item history: `n:<item>` events, `t:<item>` epoch seconds
        of the newest (serving.history; the ranker's history features)."""
        return self._user("history", user_id)

    def rec(self, user_id: str) -> str:
        """Hash of cached responses for the user (request fingerprint -> JSON)."""
        return self._user("rec", user_id)

    def _user(self, kind: str, user_id: str) -> str:
        if self.cluster:
            return f"{self.prefix}{kind}:{{{user_id}}}"
        return f"{self.prefix}{kind}:{user_id}"
