"""API keys: which callers may write events, reload models and (when configured) recommend.

`ApiKeys.require` and `ApiKeys.for_recommend` are FastAPI dependencies: they read the
X-API-Key header (so /docs shows it) and raise a 401 before the handler runs.
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import Annotated

from fastapi import Header, HTTPException

from serving.config import ServingConfig

logger = logging.getLogger("tailwise.serving")
KeyHeader = Annotated[
    str | None,
    Header(description="An API key (TAILWISE_API_KEYS or the serving config's api_keys)."),
]


class ApiKeys:
    def __init__(self, keys: list[str], required_for_recommend: bool = False) -> None:
        if not keys:
            raise ValueError("at least one API key is needed")
        self.keys = [k.encode() for k in keys]
        self.required_for_recommend = required_for_recommend

    @classmethod
    def from_config(cls, config: ServingConfig) -> ApiKeys:
        """The configured keys, else TAILWISE_API_KEYS, else one generated (and logged)."""
        keys = list(config.api_keys) or [
            k.strip() for k in os.environ.get("TAILWISE_API_KEYS", "").split(",") if k.strip()
        ]
        if not keys:
            keys = [secrets.token_urlsafe(24)]
            logger.warning("TAILWISE_API_KEYS is not set: generated API key %s", keys[0])
        return cls(keys, config.require_key_for_recommend)

    def valid(self, key: str | None) -> bool:
        # Starlette decodes headers as latin-1: back to the bytes sent, which compare_digest
        # takes whatever they hold (a str with non-ASCII characters would raise).
        if key is None:
            return False
        given = key.encode("latin-1")
        return any(secrets.compare_digest(given, k) for k in self.keys)

    def require(self, x_api_key: KeyHeader = None) -> None:
        """Dependency: a valid key or a 401."""
        if not self.valid(x_api_key):
            raise HTTPException(401, "missing or invalid X-API-Key header")

    def for_recommend(self, x_api_key: KeyHeader = None) -> None:
        """Dependency: a valid key when the config requires one for /recommend."""
        if self.required_for_recommend:
            self.require(x_api_key)
