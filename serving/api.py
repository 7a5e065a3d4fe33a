"""The HTTP contract applications code against: request and response bodies of the API.

Pydantic models, so FastAPI validates every request before a handler runs and a bad field
comes back as a 422 naming the field, and `/docs` shows the same shapes. Events follow the
ingestion contract (`tailwise.schema.EVENTS`); the rules beyond types (known event type,
time window, value ranges, consent) are the event contract of batch ingestion
(`tailwise.ingest.contract`), applied by `serving.events`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    Tag,
)

# Ids and event types lose surrounding ASCII whitespace; the schema's pattern (at least one
# other character) says which strings survive, in a regex every JSON Schema engine reads
# alike (str.strip() would also take characters that regex engines disagree about).
_BLANK = " \t\n\r\x0b\x0c"
_SOMETHING = r"[^ \t\n\r\x0b\x0c]"


def _stripped(value: str) -> str:
    return value.strip(_BLANK)


def _json_integer(value: Any) -> Any:
    """A JSON integer (93 or 93.0, as JSON Schema counts them): not true, not "93"."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected an integer")
    return value


def _iso_text(value: Any) -> Any:
    """An ISO-8601 text, as the schema's date-time says: not a number read as epoch seconds."""
    if isinstance(value, int | float):
        raise ValueError("expected an ISO-8601 date-time text")
    return value


Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=_SOMETHING),
    AfterValidator(_stripped),
]
MAX_EXCLUDE = 1000
MAX_EVENTS = 1000
# Any JSON scalar: the event contract (tailwise.ingest.contract), not the schema, decides
# what a value that is not a usable number means, so the API and batch ingestion agree.
Number = float | int | bool | str | None
_NUMBER = (
    "A number. Text holding a number is read as one; any other value is emptied under the "
    "event contract's rules and listed in the response's `adjusted`."
)


class RequestContext(BaseModel):
    """What the application knows about the request; every field is optional."""

    model_config = ConfigDict(extra="allow")

    device: str | None = Field(None, max_length=32, examples=["mobile"])
    country: str | None = Field(None, max_length=8, examples=["DE"])
    timestamp: Annotated[datetime, BeforeValidator(_iso_text)] | None = Field(
        None, description="When the request happens (default: now, UTC)."
    )


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Id = Field(examples=["u0000030"])
    k: Annotated[int, BeforeValidator(_json_integer)] = Field(
        10, ge=1, le=100, description="How many items to return (1..100)."
    )
    context: RequestContext = Field(default_factory=RequestContext)
    exclude: list[Id] = Field(
        default_factory=list, max_length=MAX_EXCLUDE, description="Item ids never to return."
    )
    slot: str | None = Field(
        None, max_length=64, description="Where the list is shown (logged with exposures)."
    )


class RecommendedItem(BaseModel):
    item_id: str
    score: float
    reason: str = Field(description="Short human-readable explanation of why this item.")


class RecommendResponse(BaseModel):
    request_id: str
    model_version: str
    items: list[RecommendedItem]
    degraded: bool = Field(
        False, description="True when answered from the in-memory fallback (Redis down)."
    )
    experiment: str | None = Field(None, description="The experiment the user is in, if any.")
    variant: str | None = Field(None, description="The user's variant of that experiment.")
    propensity: float | None = Field(
        None, description="The probability the user had of getting this variant (its weight)."
    )


class Event(BaseModel):
    """One interaction, as in the ingestion contract (tailwise.schema.EVENTS)."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    item_id: Id
    event_type: Annotated[
        str,
        StringConstraints(min_length=1, max_length=64, pattern=_SOMETHING),
        AfterValidator(_stripped),
    ]
    # strict members: JSON true/false are not epoch seconds, as the schema says
    timestamp: Annotated[datetime, Strict()] | StrictFloat | StrictInt | StrictStr = Field(
        description="ISO-8601 (any offset; none means UTC) or epoch seconds.",
    )
    event_id: Id | None = None
    value: Number = Field(None, description=_NUMBER)
    price: Number = Field(None, description=_NUMBER)
    session_id: str | None = Field(None, max_length=128)
    device: str | None = Field(None, max_length=32)
    channel: str | None = Field(None, max_length=64)
    country: str | None = Field(None, max_length=8)
    request_id: Id | None = Field(
        None, description="The /recommend response this event follows (experiment attribution)."
    )
    slot: str | None = Field(None, max_length=64, description="Where the item was shown.")
    position: int | None = Field(
        None, ge=0, le=10_000, description="The item's 0-based position in the shown list."
    )


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[Event] = Field(min_length=1, max_length=MAX_EVENTS)


def _events_shape(value: Any) -> str:
    if isinstance(value, list):
        return EVENT_LIST
    if isinstance(value, dict) and "events" in value:
        return EVENT_BATCH
    return ONE_EVENT


ONE_EVENT, EVENT_LIST, EVENT_BATCH = "Event", "list[Event]", "EventBatch"
# The three shapes POST /events takes, told apart by shape so a bad body's errors are
# those of the shape it has (the tag names are left out of the field paths reported).
EventsBody = Annotated[
    Annotated[Event, Tag(ONE_EVENT)]
    | Annotated[list[Event], Tag(EVENT_LIST), Field(min_length=1, max_length=MAX_EVENTS)]
    | Annotated[EventBatch, Tag(EVENT_BATCH)],
    Discriminator(_events_shape),
]
UNION_TAGS = frozenset({ONE_EVENT, EVENT_LIST, EVENT_BATCH})


def events_of(body: Event | list[Event] | EventBatch) -> list[Event]:
    if isinstance(body, EventBatch):
        return body.events
    return body if isinstance(body, list) else [body]


class EventProblem(BaseModel):
    """A value the event contract caught: `events[index].field` was `value`."""

    index: int
    field: str
    value: Any = None
    problem: str


class EventsResponse(BaseModel):
    accepted: int
    event_ids: list[str]
    spilled: int = Field(
        0, description="Events kept in the local durable log while Redis is unreachable."
    )
    adjusted: list[EventProblem] = Field(
        default_factory=list,
        description="Values emptied by a null rule of the event contract (the event was "
        "accepted without them), as batch ingestion empties them.",
    )


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str | None = Field(None, description="Model version (default: the LATEST one).")


class ReloadResponse(BaseModel):
    previous: str
    model_version: str
    seconds: float


class ErasureResponse(BaseModel):
    user_id: str = Field(description="The id erased (its pseudonym when it was personal).")
    online_removed: int = Field(description="Redis keys and stream entries removed.")
    spill_removed: int = Field(description="Events removed from the local spill log.")
    offline: str = Field(description="What erases the offline copies (tables, DVC cache).")


class Problem(BaseModel):
    field: str = Field(description="Dotted path of the bad field in the body ('body': all).")
    problem: str
    index: int | None = Field(None, description="/events: the event's position in the batch.")
    value: Any = Field(None, description="/events: the value sent, where the contract caught it.")


class ErrorResponse(BaseModel):
    """The body of every 4xx response."""

    error: str = Field(description="What is wrong, in a sentence a person can act on.")
    detail: list[Problem] | None = None


# --------------------------------------------------------------------- POST /content


class ContentContext(RequestContext):
    """The request context plus the daypart, when the page knows it (else the timestamp
    and country give it)."""

    daypart: Literal["morning", "afternoon", "evening", "night"] | None = None


class ContentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Id = Field(examples=["u0000030"])
    slot: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = Field(
        examples=["home_hero"], description="A slot of the content manifest (content/slots.yaml)."
    )
    context: ContentContext = Field(default_factory=ContentContext)


class ContentItem(BaseModel):
    item_id: str
    title: str = ""
    brand: str = ""
    category: str = ""
    category_l1: str = ""
    price: str = Field("", description="Two decimals; empty when unknown.")
    price_band: str = ""
    reason: str = ""
    position: str = ""


class CallToAction(BaseModel):
    text: str
    url: str


class ContentPayload(BaseModel):
    headline: str
    cta: CallToAction
    items: list[ContentItem]


class ContentResponse(BaseModel):
    request_id: str
    model_version: str
    slot: str
    template: str = Field(description="The template that rendered (the fallback on error).")
    html: str = Field(description="The rendered block; every variable HTML-escaped.")
    content: ContentPayload
    fallback: bool = Field(False, description="True when the slot's fallback rendered.")
    experiment: str | None = Field(None, description="Experiment that picked the template.")
    variant: str | None = None
    propensity: float | None = Field(None, description="Probability of this variant then.")
    degraded: bool = Field(
        False, description="True when the items came from the in-memory fallback (Redis down)."
    )
