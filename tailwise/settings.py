"""Runtime settings from the environment (one typed object, built at the entry point).

Secrets and endpoints live here, never in params.yaml: `REDIS_URL` (with `REDIS_CLUSTER=1`
a node of a Redis Cluster, see tailwise.redis_clients; `TAILWISE_EVENT_PARTITIONS` stream
keys for the events), the HMAC key for pseudonymisation (`TAILWISE_HMAC_KEY` or a file named by `TAILWISE_HMAC_KEY_FILE`), and
whether this is a demo run that may create a local key (`TAILWISE_DEMO=1`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Environment-driven settings; build once with `Settings()` and pass down."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    redis_url: str = Field("redis://127.0.0.1:6379", validation_alias="REDIS_URL")
    # One switch between a single Redis and a Redis Cluster (REDIS_URL: any of its nodes).
    redis_cluster: bool = Field(False, validation_alias="REDIS_CLUSTER")
    # More cluster nodes to start from when REDIS_URL's node is down ("host:port,...").
    redis_cluster_nodes: str = Field("", validation_alias="REDIS_CLUSTER_NODES")
    # Stream keys the events are spread over by user (1: the one `events` stream).
    event_partitions: int = Field(1, ge=1, le=1024, validation_alias="TAILWISE_EVENT_PARTITIONS")
    hmac_key: SecretStr | None = Field(None, validation_alias="TAILWISE_HMAC_KEY")
    hmac_key_file: Path | None = Field(None, validation_alias="TAILWISE_HMAC_KEY_FILE")
    demo: bool = Field(False, validation_alias="TAILWISE_DEMO")
    params_path: Path = Field(Path("params.yaml"), validation_alias="TAILWISE_PARAMS")
    home: Path = Field(Path(".tailwise"), validation_alias="TAILWISE_HOME")
    feature_repo: Path = Field(Path("feature_repo"), validation_alias="TAILWISE_FEATURE_REPO")
    features_dir: Path = Field(Path("data/features"), validation_alias="TAILWISE_FEATURES_DIR")
    feast_project: str | None = Field(None, validation_alias="TAILWISE_FEAST_PROJECT")
    feast_registry: Path | None = Field(None, validation_alias="TAILWISE_FEAST_REGISTRY")

    def resolved(self) -> Settings:
        """The same settings with absolute paths (for work that runs in another folder)."""
        update = {
            name: getattr(self, name).resolve()
            for name in ("params_path", "home", "feature_repo", "features_dir")
        }
        if self.feast_registry is not None:
            update["feast_registry"] = self.feast_registry.resolve()
        return self.model_copy(update=update)
