"""The ranker's lists over the union of candidate sources (training.union)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from pydantic import ValidationError

from tailwise.versions import FORMAT_VERSION, MANIFEST
from tests.training.conftest import events, items
from training.config import SplitParams
from training.ranker import RankerConfig
from training.union import TWO_TOWER, fit_sources, union_labelled_candidates

CFG = RankerConfig(candidates="union", n_per_source=10, n_candidates=30, cut_days=7)


def history() -> pd.DataFrame:
    """Steady traffic on a..f through October; 'hit' appears only in the last week,
    bought by everyone, so a source fitted with the label window would rank it first."""
    rows = []
    for day in range(1, 25):
        for n, user in enumerate(("u1", "u2", "u3", "u4")):
            item = "abcdef"[(day + n) % 6]
            rows.append((user, item, f"2026-10-{day:02d}T10:00", "purchase"))
    # g and h are known before the label window and bought again in it by others.
    rows += [("u1", "g", "2026-10-10T10:00", "purchase"), ("u2", "g", "2026-10-11T10:00")]
    rows += [("u3", "h", "2026-10-12T10:00", "purchase")]
    rows += [("u3", "g", "2026-10-25T12:00", "purchase"), ("u1", "h", "2026-10-25T13:00")]
    rows += [("u4", "g", "2026-10-25T14:00", "purchase")]
    for n, user in enumerate(("u1", "u2", "u3", "u4")):
        rows.append((user, "hit", f"2026-10-{26 + n:02d}T10:00", "purchase"))
        rows.append((user, "z", f"2026-10-{26 + n:02d}T11:00", "purchase"))
    return events(*rows)


def test_label_window_never_reaches_a_source_or_a_count() -> None:
    # hit and z enter the catalogue in the label window, when they are first chosen.
    added = {"hit": "2026-10-26T09:00", "z": "2026-10-26T09:00"}
    lists = union_labelled_candidates(
        None, history(), items(*"abcdefgh", "hit", "z", created=added), CFG, SplitParams()
    )
    assert set(lists["window"]) == {0}
    labelled = lists[lists["label"] > 0]
    # Relevant pairs of the window are labelled where the union proposed them ...
    assert set(labelled["item_id"]) == {"g", "h"}
    assert set(labelled["user_id"]) == {"u1", "u3", "u4"}
    # ... but items added in the window cannot be proposed: nothing before the cut knows
    # them (not the catalogue either), and no popularity or age counts them.
    assert not set(lists["item_id"]) & {"hit", "z"}
    cut = pd.Timestamp("2026-10-29T11:00", tz="UTC") - pd.Timedelta(days=7)
    assert (lists["event_timestamp"] == cut).all()
    assert (lists["item_pop_all"] <= 30).all()
    for column in ("popularity_rank", "ease_rank", "n_sources", "retrieval_rank"):
        assert lists[column].notna().all(), column


def test_negatives_are_capped_per_list_and_every_positive_kept() -> None:
    full = union_labelled_candidates(None, history(), items(*"abcdefgh"), CFG, SplitParams())
    capped = union_labelled_candidates(
        None, history(), items(*"abcdefgh"), CFG.model_copy(update={"negatives": 2}), SplitParams()
    )
    assert capped["label"].sum() == full["label"].sum()
    negatives = capped[capped["label"] == 0].groupby("query").size()
    assert negatives.max() <= 2


def test_sources_fitted_before_the_cut_include_the_two_tower_as_one_source() -> None:
    class Fixed:
        def fit(self, events, items):  # type: ignore[no-untyped-def]
            self.seen_until = events["timestamp"].max()
            return self

        def recommend(self, users, k, exclude_seen=True):  # type: ignore[no-untyped-def]
            return pd.DataFrame({"user_id": list(users), "item_id": "f", "rank": 1, "score": 0.5})

    cut = pd.Timestamp("2026-10-20", tz="UTC")
    fitted = fit_sources(history(), cut, items(*"abcdefgh"), False, Fixed)
    assert fitted.two_tower.seen_until < cut
    assert TWO_TOWER in fitted.names
    rows = fitted.rows(history(), ["u1", "new"], CFG)
    assert "two_tower_rank" in rows.columns
    assert set(rows["user_id"]) == {"u1", "new"}  # a new user gets popular items


def test_candidates_setting_is_validated() -> None:
    with pytest.raises(ValidationError, match="candidates"):
        RankerConfig(candidates="everything")  # type: ignore[arg-type]


def test_serving_refuses_a_union_version_without_its_sources_at_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from serving.bundle import BundleError, load_bundle

    manifest = {
        "format_version": FORMAT_VERSION,
        "version": "v1",
        "params": {"training": {"ranker": {"candidates": "union"}}},
    }
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"training\.ranker\.candidates"):
        load_bundle(tmp_path)


def test_union_settings_replace_the_shared_ones_for_the_union_only() -> None:
    shared = {"max_depth": 4, "min_child_weight": 20, "label_windows": 1}
    union = {"max_depth": 1, "min_child_weight": 0.1, "lambdarank_pair_method": "mean"}
    two_tower = RankerConfig(**shared, union=union)
    assert (two_tower.max_depth, two_tower.min_child_weight) == (4, 20)
    assert two_tower.lambdarank_pair_method == "topk"
    ranked = RankerConfig(**shared, union=union, candidates="union")
    assert (ranked.max_depth, ranked.min_child_weight) == (1, 0.1)
    assert ranked.lambdarank_pair_method == "mean" and ranked.label_windows == 1
    assert two_tower.for_union() == ranked
    # Saved and read back (ranker.json), the settings are the same.
    assert RankerConfig(**ranked.model_dump()) == ranked


def test_union_settings_name_the_bad_field() -> None:
    with pytest.raises(
        ValidationError, match=r"training.ranker.union: unknown setting\(s\) \['depth'\]"
    ):
        RankerConfig(union={"depth": 1})
    with pytest.raises(ValidationError, match="max_depth"):
        RankerConfig(candidates="union", union={"max_depth": 0})
    with pytest.raises(ValidationError, match=r"training\.ranker\.union must map"):
        RankerConfig(union=[1])  # type: ignore[arg-type]


def test_extra_label_windows_fit_sources_once_per_cut_and_time_them() -> None:
    fitted: list[pd.Timestamp] = []

    class Counting:
        def fit(self, events, items):  # type: ignore[no-untyped-def]
            fitted.append(events["timestamp"].max())
            return self

        def recommend(self, users, k, exclude_seen=True):  # type: ignore[no-untyped-def]
            return pd.DataFrame({"user_id": list(users), "item_id": "f", "rank": 1, "score": 0.5})

    # h, known since 10-12, is new to u4 and u2 in the older window (10-19 .. 10-24).
    extra = events(
        ("u4", "h", "2026-10-20T10:00", "purchase"), ("u2", "h", "2026-10-21T10:00", "purchase")
    )
    log = pd.concat([history(), extra.assign(event_id=["x1", "x2"])], ignore_index=True)
    cfg = CFG.model_copy(update={"label_windows": 2, "cut_days": 5})
    timings: dict[str, float] = {}
    said: list[str] = []
    lists = union_labelled_candidates(
        Counting,
        log,
        items(*"abcdefgh"),
        cfg,
        SplitParams(),
        timings=timings,
        say=said.append,
    )
    assert set(lists["window"]) == {0, 1} and len(fitted) == 2
    assert "two_tower_rank" in lists.columns
    assert set(timings) == {"sources_fit", "candidate_rows"}
    assert all(v > 0 for v in timings.values())
    assert len(said) == 2 and said[0].startswith("ranker label window 1/2")
    # Without the two-tower source no window fits it, and its columns are absent.
    fitted.clear()
    without = union_labelled_candidates(
        Counting,
        log,
        items(*"abcdefgh"),
        cfg.model_copy(update={"two_tower_source": False}),
        SplitParams(),
    )
    assert not fitted and "two_tower_rank" not in without.columns
    assert set(without["window"]) == {0, 1}


def test_the_union_order_and_the_ranker_share_one_set_of_rows() -> None:
    from training.union import FusedOrder

    log = history()
    fitted = fit_sources(log, "2026-10-26", items(*"abcdefgh"), allow_repeats=False)
    made: list[tuple[str, ...]] = []
    rows_of = fitted.rows

    def counted(history, users, cfg):  # type: ignore[no-untyped-def]
        made.append(tuple(users))
        return rows_of(history, users, cfg)

    fitted.rows = counted  # type: ignore[method-assign]
    order = FusedOrder(fitted, log, CFG)
    first = order.recommend(["u1", "u2"], 3)
    assert order.timing_note is None
    again = order.rows(["u1", "u2"])  # as the ranker asks for the same users
    assert made == [("u1", "u2")] and order.timing_note is not None
    assert set(first["user_id"]) <= {"u1", "u2"} and len(again) >= len(first) > 0
    order.recommend(["u3"], 3)
    assert made == [("u1", "u2"), ("u3",)] and order.timing_note is None
