"""API keys in two scopes: `write` (POST /events, and /recommend when configured) and
`admin` (/admin/*, erasure). A key belongs to one scope; it opens nothing of the other.

    no key, or one in neither scope      --> 401
    a key of the other scope             --> 403 (the key is real, the scope is wrong)

The dependencies (`ApiKeys.require`, `ApiKeys.admin`, `ApiKeys.for_recommend`) read the
X-API-Key header (so /docs shows it) and raise before the handler runs. Keys are compared
as bytes with `hmac.compare_digest`, against every key of both scopes, so the time taken
says nothing about which key (or how much of one) matched.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from typing import Annotated

from fastapi import Header, HTTPException

from serving.config import ServingConfig

logger = logging.getLogger("tailwise.serving")
KeyHeader = Annotated[
    str | None,
    Header(
        description="An API key: a write key (TAILWISE_API_KEYS) for /events, an admin key "
        "(TAILWISE_ADMIN_KEYS) for /admin/*."
    ),
]
WRITE, ADMIN = "write", "admin"
ENV = {WRITE: "TAILWISE_API_KEYS", ADMIN: "TAILWISE_ADMIN_KEYS"}


def env_keys(scope: str) -> list[str]:
    """The comma-separated keys of a scope's environment variable."""
    return [k.strip() for k in os.environ.get(ENV[scope], "").split(",") if k.strip()]


class ApiKeys:
    def __init__(
        self,
        keys: list[str],
        required_for_recommend: bool = False,
        admin_keys: list[str] | None = None,
    ) -> None:
        if not keys:
            raise ValueError("at least one API key is needed")
        admin = list(admin_keys or [])
        if not admin:  # nobody can administer until a key is set: say so, once
            admin = [secrets.token_urlsafe(24)]
            logger.warning("TAILWISE_ADMIN_KEYS is not set: generated admin key %s", admin[0])
        shared = set(keys) & set(admin)
        if shared:
            raise ValueError(
                "a key cannot be both a write key (TAILWISE_API_KEYS / api_keys) and an "
                "admin key (TAILWISE_ADMIN_KEYS / admin_keys): give each scope its own"
            )
        self._scopes = [(k.encode(), WRITE) for k in keys] + [(k.encode(), ADMIN) for k in admin]
        self.required_for_recommend = required_for_recommend

    @classmethod
    def from_config(cls, config: ServingConfig) -> ApiKeys:
        """The configured keys, else the environment's, else one generated (and logged)."""
        keys = list(config.api_keys) or env_keys(WRITE)
        if not keys:
            keys = [secrets.token_urlsafe(24)]
            logger.warning("TAILWISE_API_KEYS is not set: generated API key %s", keys[0])
        admin = list(config.admin_keys) or env_keys(ADMIN)
        return cls(keys, config.require_key_for_recommend, admin)

    def scope_of(self, key: str | None) -> str | None:
        """The scope of `key`, or None. Every key is compared, in constant time each."""
        if key is None:
            return None
        # Starlette decodes headers as latin-1: back to the bytes sent, which compare_digest
        # takes whatever they hold (a str with non-ASCII characters would raise).
        given = key.encode("latin-1")
        found = None
        for known, scope in self._scopes:
            if hmac.compare_digest(given, known):
                found = scope
        return found

    def valid(self, key: str | None) -> bool:
        """A write key (the scope of /events)."""
        return self.scope_of(key) == WRITE

    def _demand(self, key: str | None, scope: str) -> None:
        held = self.scope_of(key)
        if held is None:
            raise HTTPException(401, "missing or invalid X-API-Key header")
        if held != scope:
            raise HTTPException(
                403, f"this X-API-Key has the {held} scope; this endpoint needs the {scope} scope"
            )

    # The dependencies are coroutines: FastAPI runs a plain `def` dependency in a worker
    # thread, a thread hop per request for a dictionary lookup.
    async def require(self, x_api_key: KeyHeader = None) -> None:
        """Dependency: a write key, else 401 (no or unknown key) or 403 (an admin key)."""
        self._demand(x_api_key, WRITE)

    async def admin(self, x_api_key: KeyHeader = None) -> None:
        """Dependency: an admin key, else 401 (no or unknown key) or 403 (a write key)."""
        self._demand(x_api_key, ADMIN)

    async def for_recommend(self, x_api_key: KeyHeader = None) -> None:
        """Dependency: a write key when the config requires one for /recommend."""
        if self.required_for_recommend:
            self._demand(x_api_key, WRITE)
