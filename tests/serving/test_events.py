"""The events path: ingestion rules on API events, and the writes a /recommend relies on."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import redis

from serving import spill
from serving.event_rules import ConsentBook, EventRejected, EventRules
from serving.events import EventWriter, event_json, session_states
from serving.keys import RECENT_MAX, Keys
from tailwise.features.online import OnlineFeatures
from tailwise.ingest.contract import parse_timestamp
from tailwise.params import IngestParams
from tests.serving.events_support import CATEGORIES, NOW, make_event, rules

# -- rules ---------------------------------------------------------------------------


def test_the_date_floor_is_ingest_params_earliest_timestamp() -> None:
    params = IngestParams(earliest_timestamp=datetime(1970, 1, 1))
    floor = EventRules(params, ConsentBook({}, {}, params.consent_default))
    old = make_event(timestamp="1975-06-01T12:00:00Z")
    assert floor.clean([old], NOW).events[0]["timestamp"] == datetime(1975, 6, 1, 12, tzinfo=UTC)
    with pytest.raises(EventRejected) as caught:
        floor.clean([make_event(timestamp="1969-12-31T23:00:00Z")], NOW)
    assert "before 1970-01-01" in caught.value.problems[0]["problem"]


def test_every_bad_field_is_named_and_nothing_is_cleaned() -> None:
    events = [
        make_event(),  # fine
        make_event(event_type="clickk"),
        make_event(timestamp="yesterday"),
        make_event(timestamp="1969-12-31T23:00:00Z"),  # before any floor ingest allows
        make_event(timestamp=(NOW + timedelta(hours=30)).isoformat()),
        make_event(event_type="rating"),  # a rating needs a value
        make_event(event_type="rating", value=7),
        make_event(price=2_000_000),  # a null rule: not a problem when the rest is fine
        make_event(event_type="clickk", value="many"),  # the reject wins, as in batch
        make_event(timestamp="2026-02-30T10:00:00"),
    ]
    with pytest.raises(EventRejected) as caught:
        rules().clean(events, NOW)
    got = {(p["index"], p["field"]): p for p in caught.value.problems}
    assert set(got) == {
        (1, "event_type"),
        (2, "timestamp"),
        (3, "timestamp"),
        (4, "timestamp"),
        (5, "value"),
        (6, "value"),
        (8, "event_type"),
        (9, "timestamp"),
    }
    assert got[(1, "event_type")] == {
        "index": 1,
        "field": "event_type",
        "value": "clickk",
        "problem": "has no weight in params.yaml ingest.event_weights; add it or map it "
        "(known: add_to_cart, page_view, product_view, purchase, rating)",
    }
    assert "not ISO-8601 or epoch seconds" in got[(2, "timestamp")]["problem"]
    before = f"before {IngestParams().earliest_timestamp:%Y-%m-%d}"
    assert before in got[(3, "timestamp")]["problem"]
    assert "more than 24 hours in the future" in got[(4, "timestamp")]["problem"]
    assert "needs a value in 0..5" in got[(5, "value")]["problem"]
    assert got[(6, "value")]["value"] == 7
    assert "not a valid date" in got[(9, "timestamp")]["problem"]
    text = str(caught.value)
    assert "8 problem(s), nothing was written" in text and "events[1].event_type = 'clickk'" in text


def test_values_a_null_rule_catches_are_emptied_and_reported() -> None:
    tracked = rules({"u1": True})
    cleaned = tracked.clean(
        [
            make_event(price=2_000_000),
            make_event(value=float("inf"), price="12.5"),
            make_event(value=-1, price=-3, country="Germany"),
            make_event(event_type="rating", value="4"),
        ],
        NOW,
    )
    rows = cleaned.events
    assert [(r["value"], r["price"]) for r in rows] == [
        (None, None),
        (None, 12.5),
        (None, None),
        (4.0, None),
    ]
    assert rows[2]["country"] is None and rows[3]["weight"] == pytest.approx(2.0 * 4 / 5)
    assert [(a["index"], a["field"], a["value"], a["problem"]) for a in cleaned.adjusted] == [
        (0, "price", 2_000_000, "outside the possible range 0..1e+06"),
        (1, "value", float("inf"), "not a number"),
        (2, "value", -1, "negative"),
        (2, "price", -3, "outside the possible range 0..1e+06"),
        (2, "country", "Germany", "not an ISO-3166 alpha-2 code"),
    ]


def test_clean_events_have_the_clean_columns_weights_and_utc_times() -> None:
    out = (
        rules({"u1": True})
        .clean(
            [
                make_event(event_type="Rating", value=4, timestamp="2026-10-01T12:00:00+02:00"),
                make_event(event_type="purchase", timestamp=1790000000, price=12.5),
                make_event(timestamp="1790000000.25"),
                make_event(timestamp="2026-10-01 10:00"),  # no offset: UTC
            ],
            datetime(2026, 11, 1, tzinfo=UTC),
        )
        .events
    )
    assert list(out[0]) == [
        "event_id",
        "user_id",
        "item_id",
        "event_type",
        "timestamp",
        "value",
        "price",
        "weight",
        "session_id",
        "device",
        "channel",
        "country",
    ]
    assert out[0]["event_type"] == "rating" and out[0]["weight"] == pytest.approx(2.0 * 4 / 5)
    assert out[0]["timestamp"] == datetime(2026, 10, 1, 10, tzinfo=UTC)
    assert out[1]["weight"] == 5.0 and out[1]["price"] == 12.5
    assert out[1]["timestamp"] == datetime.fromtimestamp(1790000000, UTC)
    assert out[2]["timestamp"] == datetime.fromtimestamp(1790000000.25, UTC)
    assert out[3]["timestamp"] == datetime(2026, 10, 1, 10, tzinfo=UTC)


def test_context_is_kept_only_with_tracking_consent() -> None:
    context = {"session_id": " s9 ", "device": "Mobile", "channel": "SEO", "country": "de"}
    book = rules({"yes": True, "no": False})
    kept, dropped, unknown, bad_country = book.clean(
        [
            make_event("yes", **context),
            make_event("no", **context),
            make_event("stranger", **context),  # unknown: params consent_default (False)
            make_event("yes", **{**context, "country": "Germany"}),
        ],
        NOW,
    ).events
    assert (kept["session_id"], kept["device"], kept["channel"], kept["country"]) == (
        "s9",
        "mobile",
        "seo",
        "DE",
    )
    for row in (dropped, unknown):
        assert [row[c] for c in ("session_id", "device", "channel", "country")] == [None] * 4
    assert bad_country["country"] is None and bad_country["device"] == "mobile"


def test_merged_ids_become_the_surviving_id_with_its_consent() -> None:
    book = rules({"u_main": True}, {"u_dup": "u_main", "u_older": "u_dup"})
    (row,) = book.clean([make_event("u_older", device="tablet")], NOW).events
    assert row["user_id"] == "u_main" and row["device"] == "tablet"
    assert book.consent.resolve("nobody") == "nobody"


def test_a_missing_event_id_is_deterministic_across_timestamp_spellings() -> None:
    when = datetime(2026, 10, 1, 10, 0, 0, 250000, tzinfo=UTC)
    spellings = ["2026-10-01T12:00:00.25+02:00", "2026-10-01T10:00:00.250Z", when.timestamp()]
    rows = [
        rules().clean([make_event(timestamp=t)], datetime(2026, 11, 1, tzinfo=UTC)).events[0]
        for t in spellings
    ]
    expected = hashlib.sha1(b"u1|i1|product_view|2026-10-01T10:00:00.250000+00:00").hexdigest()[:16]
    assert {r["event_id"] for r in rows} == {f"srv-{expected}"}
    (given,) = rules().clean([make_event(event_id="e-42")], NOW).events
    assert given["event_id"] == "e-42"


def test_consent_book_reads_an_ingest_output(tmp_path: Path) -> None:
    pd.DataFrame({"user_id": ["u1", "u2"], "consent_tracking": [True, False]}).to_parquet(
        tmp_path / "users.parquet"
    )
    pd.DataFrame(
        {"user_id": ["u9"], "canonical_user_id": ["u1"], "rule": ["email"], "score": [None]}
    ).to_parquet(tmp_path / "user_merges.parquet")
    book = ConsentBook.from_clean(tmp_path, IngestParams(consent_default=True))
    assert book.resolve("u9") == "u1" and book.tracking("u9") is True
    assert book.tracking("u2") is False and book.tracking("new-user") is True
    assert ConsentBook.empty(IngestParams()).tracking("u1") is False
    with pytest.raises(FileNotFoundError, match="tailwise ingest"):
        ConsentBook.from_clean(tmp_path / "missing", IngestParams())


def test_parse_timestamp_rejects_what_ingestion_rejects() -> None:
    assert isinstance(parse_timestamp(True), str)
    assert isinstance(parse_timestamp(1e12), str)  # milliseconds, not seconds
    assert isinstance(parse_timestamp("10/01/2026"), str)
    assert parse_timestamp(datetime(2026, 1, 1)) == datetime(2026, 1, 1, tzinfo=UTC)


# -- writes --------------------------------------------------------------------------


def test_write_reaches_the_stream_the_user_state_and_the_features(
    client: redis.Redis,
    keys: Keys,
    online: OnlineFeatures,
    make_writer: Callable[..., EventWriter],
) -> None:
    writer = make_writer()
    client.hset(keys.rec("u1"), "fp", "{}")  # a cached answer that the event makes stale
    events = (
        rules()
        .clean(
            [
                make_event("u1", "i1", 0, session_id="s1"),
                make_event("u1", "i2", 1, event_type="add_to_cart"),
                make_event("u1", "i2", 2, event_type="purchase", price=9.5),
            ],
            NOW,
        )
        .events
    )
    result = writer.write(events)
    assert (result.accepted, result.spilled) == (3, 0)
    assert result.event_ids == [e["event_id"] for e in events]

    stream = client.xrange(keys.events)
    assert [json.loads(f[b"e"]) for _, f in stream] == [json.loads(event_json(e)) for e in events]
    assert client.smembers(keys.seen("u1")) == {b"i1", b"i2"}
    assert client.smembers(keys.purchased("u1")) == {b"i2"}
    recent = [json.loads(x) for x in client.lrange(keys.recent("u1"), 0, -1)]
    assert [r["event_id"] for r in recent] == [e["event_id"] for e in reversed(events)]
    assert 0 < client.ttl(keys.recent("u1")) <= 2 * 24 * 3600
    assert not client.exists(keys.rec("u1"))

    state = online.read("u1")
    assert state["rt_last_items"] == ["i2", "i1"] and state["rt_last_category"] == "Toys/Dolls"
    assert (state["rt_hour_events"], state["rt_hour_carts"], state["rt_session_events"]) == (
        3,
        1,
        0,  # the consent default drops session_id, so there is no session to count
    )

    writer.write(rules().clean([make_event("u1", "i3", 3)], NOW).events)
    assert online.read("u1")["rt_last_items"] == ["i3", "i2", "i1"]


def test_one_batch_for_several_users_updates_each(
    keys: Keys, online: OnlineFeatures, make_writer: Callable[..., EventWriter]
) -> None:
    book = rules({"a": True})
    make_writer().write(
        book.clean(
            [
                make_event("a", "i1", 0, session_id="s"),
                make_event("b", "i2", 0),
                make_event("a", "i3", 5, session_id="s"),
                make_event("a", "unknown-item", 6, session_id="s"),
            ],
            NOW,
        ).events
    )
    a, b = online.read("a"), online.read("b")
    assert a["rt_last_items"] == ["unknown-item", "i3", "i1"] and a["rt_session_events"] == 3
    assert a["rt_last_category"] is None  # not in the catalogue yet: accepted anyway
    assert b["rt_last_items"] == ["i2"] and b["rt_hour_events"] == 1


def test_the_recent_list_is_capped_and_a_resent_event_counts_once(
    client: redis.Redis,
    keys: Keys,
    online: OnlineFeatures,
    make_writer: Callable[..., EventWriter],
) -> None:
    writer = make_writer()
    events = (
        rules()
        .clean([make_event("u1", f"i{i}", i * 0.5) for i in range(RECENT_MAX + 5)], NOW)
        .events
    )
    writer.write(events)
    assert client.llen(keys.recent("u1")) == RECENT_MAX
    before = online.read("u1")
    writer.write(events[-2:])  # a client retry: the same events again
    assert online.read("u1") == before


def test_an_outage_spills_and_replay_moves_everything_into_redis(
    client: redis.Redis,
    down_client: redis.Redis,
    keys: Keys,
    online: OnlineFeatures,
    make_writer: Callable[..., EventWriter],
    tmp_path: Path,
) -> None:
    down = make_writer(down_client, cooldown_seconds=0)
    batches = [
        rules().clean([make_event("u1", "i1", i), make_event("u2", "i2", i)], NOW).events
        for i in range(3)
    ]
    for batch in batches:
        result = down.write(batch)
        assert (result.accepted, result.spilled) == (2, 2)
    assert client.xlen(keys.events) == 0 and down.spill.pending() == 6
    assert down.replay() == 0 and down.spill.pending() == 6  # still down: nothing lost
    assert (tmp_path / "spill" / spill.FILENAME).exists()

    down.spill.close()  # that process ends; a new one starts with Redis back
    up = make_writer()  # the same spill folder
    assert up.replay(max_batch=4) == 6
    ids = [json.loads(f[b"e"])["event_id"] for _, f in client.xrange(keys.events)]
    assert sorted(ids) == sorted(e["event_id"] for b in batches for e in b)
    assert up.spill.pending() == 0 and not up.spill.has_pending()
    assert online.read("u2")["rt_hour_events"] == 3

    assert up.replay() == 0 and client.xlen(keys.events) == 6  # idempotent


def test_a_replay_interrupted_half_way_loses_nothing(
    client: redis.Redis,
    down_client: redis.Redis,
    keys: Keys,
    make_writer: Callable[..., EventWriter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = rules().clean([make_event("u1", f"i{i}", i) for i in range(7)], NOW).events
    down = make_writer(down_client)
    down.write(events)
    down.spill.close()  # its process ends
    up = make_writer()
    real_send, calls = up._send, []

    def flaky(batch):  # Redis goes away after the first batch
        calls.append(len(batch))
        if len(calls) > 1:
            raise redis.exceptions.ConnectionError("connection reset")
        real_send(batch)

    monkeypatch.setattr(up, "_send", flaky)
    assert up.replay(max_batch=3) == 3 and up.spill.pending() == 4
    monkeypatch.setattr(up, "_send", real_send)
    assert up.replay(max_batch=3) == 4 and up.spill.pending() == 0
    ids = {json.loads(f[b"e"])["event_id"] for _, f in client.xrange(keys.events)}
    assert ids == {e["event_id"] for e in events}


def test_after_a_failure_writes_spill_without_waiting_for_redis(
    down_client: redis.Redis, make_writer: Callable[..., EventWriter]
) -> None:
    writer = make_writer(down_client, cooldown_seconds=60)
    writer.write(rules().clean([make_event()], NOW).events)
    writer.client = None  # type: ignore[assignment]  # any Redis call would now fail loudly
    result = writer.write(rules().clean([make_event(minutes=1)], NOW).events)
    assert result.spilled == 1 and writer.spill.pending() == 2


def test_session_state_reads_recent_entries_written_with_any_utc_spelling() -> None:
    events = rules().clean([make_event("u1", "i1", 0), make_event("u1", "i2", 1)], NOW).events
    texts = [event_json(e) for e in reversed(events)]
    respelled = [t.replace("+00:00", "Z") for t in texts]  # e.g. written by another tool
    categories = pd.Series(CATEGORIES)
    fast = session_states({"u1": texts}, categories, 10)
    slow = session_states({"u1": respelled}, categories, 10)
    assert fast == slow
    values, valid_from = fast["u1"]
    assert values["rt_last_items"] == ["i2", "i1"]
    assert valid_from == events[1]["timestamp"] + timedelta(microseconds=1)


def test_the_same_writer_replays_its_own_spill_once_redis_is_back(
    client: redis.Redis,
    keys: Keys,
    make_writer: Callable[..., EventWriter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writer = make_writer(cooldown_seconds=0)

    def refused(*args: object) -> None:
        raise redis.exceptions.ConnectionError("Connection refused")

    monkeypatch.setattr(writer, "_send", refused)
    monkeypatch.setattr(client, "ping", refused)
    events = rules().clean([make_event(minutes=i) for i in range(3)], NOW).events
    assert writer.write(events).spilled == 3 and writer.replay() == 0
    monkeypatch.undo()  # Redis is back
    assert writer.replay() == 3 and not writer.spill.has_pending()
    assert client.xlen(keys.events) == 3
