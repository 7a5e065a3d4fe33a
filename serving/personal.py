"""Personal data in user ids: an id that is an e-mail address or a phone number is refused
(422 naming the field) or replaced by its keyed pseudonym before anything stores it.

    request body --> PersonalIds.recommend / .events / .user --> the ids the rest of the
    app sees (Redis keys, streams, logs, caches)

`ServingConfig.personal_ids` chooses: "refuse" (the default) or "pseudonymise", with the
keyed hash of ingestion (tailwise.privacy.pseudonym), so the same person gets the same
pseudonym through the API and through batch ingestion of their address.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException

from serving import api
from tailwise.privacy import load_key, personal_kind, pseudonym
from tailwise.settings import Settings


class PersonalIds:
    def __init__(self, mode: str, key: bytes | None = None) -> None:
        if mode not in ("refuse", "pseudonymise"):
            raise ValueError(f"personal_ids must be refuse or pseudonymise, got {mode!r}")
        if mode == "pseudonymise" and not key:
            raise ValueError("personal_ids=pseudonymise needs the pseudonymisation key")
        self.mode, self.key = mode, key

    @classmethod
    def for_replica(cls, replica: Any) -> PersonalIds:
        mode = replica.config.personal_ids
        return cls(mode, replica_key(replica.settings) if mode == "pseudonymise" else None)

    def user(self, value: str, field: str = "user_id") -> str:
        """The id to use for `value`: itself, its pseudonym, or a 422 naming `field`."""
        kind = personal_kind(value)
        if kind is None:
            return value
        if self.mode == "pseudonymise" and self.key:
            return pseudonym(value, self.key)
        problem = (
            f"looks like {kind}: personal data is not accepted as an id; send a pseudonymous"
            " id (or run the API with personal_ids=pseudonymise)"
        )
        raise HTTPException(
            422,
            {
                "error": f"invalid request: {field}: {problem}",
                "detail": [{"field": field, "problem": problem}],
            },
        )

    def recommend(self, body: api.RecommendRequest) -> api.RecommendRequest:
        user = self.user(body.user_id)
        return body if user == body.user_id else body.model_copy(update={"user_id": user})

    def events(self, events: list[api.Event]) -> list[api.Event]:
        out = []
        for n, event in enumerate(events):
            field = f"events.{n}.user_id" if len(events) > 1 else "user_id"
            user = self.user(event.user_id, field)
            out.append(
                event if user == event.user_id else event.model_copy(update={"user_id": user})
            )
        return out


def replica_key(settings: Settings) -> bytes:
    """The pseudonymisation key in a replica: the app hands replicas settings without the
    key (serving.app.build), so it comes from this process's environment, as ingestion's."""
    if settings.hmac_key is None and settings.hmac_key_file is None:
        env = Settings()
        settings = settings.model_copy(
            update={"hmac_key": env.hmac_key, "hmac_key_file": env.hmac_key_file}
        )
    return load_key(settings)
