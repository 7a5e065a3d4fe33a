"""Erasure everywhere: `tailwise forget` leaves no row of the person in any store (clean
data, served logs, feature tables, training sets, model folders, reports, spill logs, the
online store and every DVC-cached version), and a later replay does not bring them back."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import redis
from typer.testing import CliRunner

from serving.keys import Keys
from serving.spill import SpillLog
from tailwise.cli import app
from tailwise.erasure import erased_filter, find_traces, ledger_key
from tailwise.ingest.streams import consume
from tailwise.privacy import pseudonymise
from tests.conftest import PrivateRedis
from tests.feast_project import ROOT

pytestmark = pytest.mark.integration
PERSON, OTHER = "u0042", "u0043"
SECRET = "s" * 40
PROJECT = "erasure_test"


def _dvc_add(repo: Path, *targets: str) -> None:
    """`dvc add` in-process (DVC's own API; a `dvc` process costs seconds to start)."""
    from dvc.repo import Repo

    if not (repo / ".dvc").exists():
        Repo.init(str(repo), no_scm=True)
    with Repo(str(repo)) as dvc:
        dvc.add([str(repo / t) for t in targets])


def _event(user: str, n: int) -> dict[str, object]:
    return {
        "event_id": f"e-{user}-{n}",
        "user_id": user,
        "item_id": f"i{n}",
        "event_type": "purchase",
        "timestamp": "2026-01-02T03:04:05+00:00",
        "value": None,
        "price": 9.5,
        "weight": 1.0,
        "session_id": None,
        "device": None,
        "channel": None,
        "country": None,
    }


def _stores(repo: Path, version: int) -> None:
    """Every kind of store, holding PERSON and OTHER (version: a second DVC version)."""
    users = pd.DataFrame({"user_id": [PERSON, OTHER], "age": [30 + version, 40]})
    (repo / "data/features").mkdir(parents=True, exist_ok=True)
    users.to_parquet(repo / "data/features/user_profile.parquet", index=False)
    (repo / "data/training/ranker").mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"user_id": [PERSON, OTHER] * 2, "label": [1, 0, 0, version]}).to_csv(
        repo / "data/training/ranker/train.csv", index=False
    )
    model = repo / "data/models/v1"
    model.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"user_id": [PERSON, OTHER], "item_id": ["i1", "i2"]}).to_parquet(
        model / "candidates.parquet", index=False
    )
    per_user = {"ndcg_by_user": {PERSON: 0.5, OTHER: 0.25}, "worst": [PERSON, OTHER]}
    (model / "metrics.json").write_text(json.dumps(per_user))
    reports = repo / "monitoring/reports"
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "summary.md").write_text(
        f"| user | n |\n|---|---|\n| {PERSON} | 3 |\n| {OTHER} | 1 |\n"
    )


def test_forget_leaves_no_trace_in_any_store(
    tmp_path: Path, redis_server: Callable[..., PrivateRedis], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    outputs = ("data/features", "data/training", "data/models")
    _stores(repo, 1)
    _dvc_add(repo, *outputs)
    _stores(repo, 2)  # a second version of every output: both end up in the cache
    _dvc_add(repo, *outputs)
    assert find_traces([repo / ".dvc/cache"], [PERSON])
    served = repo / "data/served/events/event_date=2026-01-02"
    served.mkdir(parents=True)
    pd.DataFrame([_event(PERSON, 1), _event(OTHER, 1)]).to_parquet(served / "served-1.parquet")
    (repo / "data/served/rejected").mkdir(parents=True)
    (repo / "data/served/rejected/events-1.jsonl").write_text(
        json.dumps({"raw": json.dumps(_event(PERSON, 9))}) + "\\n"
    )
    spill = SpillLog(repo / ".tailwise/spill" / PROJECT)
    spill.append([_event(PERSON, 2), _event(OTHER, 2)])
    spill.close()

    server = redis_server()
    client = redis.Redis.from_url(server.url)
    keys = Keys(PROJECT)
    for user in (PERSON, OTHER):
        client.rpush(keys.recent(user), json.dumps(_event(user, 3)))
        client.sadd(keys.seen(user), "i3")
        client.xadd(keys.events, {"e": json.dumps(_event(user, 3))})

    monkeypatch.chdir(repo)
    env = {
        "REDIS_URL": server.url,
        "TAILWISE_HMAC_KEY": SECRET,
        "TAILWISE_FEAST_PROJECT": PROJECT,
        "TAILWISE_FEATURE_REPO": str(ROOT / "feature_repo"),
    }
    result = CliRunner().invoke(app, ["forget", "--user", PERSON], env=env)
    assert result.exit_code == 0, result.output
    assert "DVC cache objects" in result.output

    roots = [repo / "data", repo / "monitoring", repo / ".tailwise", repo / ".dvc/cache"]
    assert find_traces(roots, [PERSON]) == []
    assert find_traces([repo / "data/features", repo / ".tailwise"], [OTHER])  # others stay
    for key in client.scan_iter(match=f"tailwise:{PROJECT}:*"):
        assert PERSON.encode() not in key
        kind = client.type(key)
        values = (
            [v for _, fields in client.xrange(key) for v in fields.values()]
            if kind == b"stream"
            else client.lrange(key, 0, -1)
            if kind == b"list"
            else list(client.smembers(key))
            if kind == b"set"
            else []
        )
        assert not any(PERSON.encode() in v for v in values), key
    hashed = pseudonymise(pd.Series([PERSON]), SECRET.encode()).iat[0]
    assert client.sismember(ledger_key(PROJECT), hashed)

    # A replay (spilled events moved on, a resent batch) cannot bring the person back.
    client.xadd(keys.events, {"e": json.dumps(_event(PERSON, 4))})
    erased = erased_filter(client, PROJECT, [repo / "data/clean"], lambda: SECRET.encode())
    out = repo / "data/served"
    done = consume(client, keys, out, erased=erased)
    assert done.erased == 1 and done.written == 1  # OTHER's event is kept
    assert find_traces([out], [PERSON]) == []
