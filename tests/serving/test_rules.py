"""Business rules after ranking, and the reasons shown with each item."""

from __future__ import annotations

import numpy as np

from serving.config import RulesConfig
from serving.rules import FALLBACK_REASON, CategoryRules, apply_rules, reasons, text_missing

IDS = np.array(["a", "b", "c", "d", "e", "f"], dtype=object)
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
CATS = ["Home/Kitchen", "Home/Kitchen", "Home/Kitchen", "Sports/Run", None, "Fashion/Shoes"]


def test_k_respected_and_score_order_kept() -> None:
    ranked = apply_rules(RulesConfig(max_per_category=10), IDS, SCORES, CATS, 4)
    assert ranked.item_ids == ["a", "b", "c", "d"]
    assert ranked.scores == sorted(ranked.scores, reverse=True)


def test_at_most_m_per_category() -> None:
    ranked = apply_rules(RulesConfig(max_per_category=2), IDS, SCORES, CATS, 6)
    assert ranked.item_ids == ["a", "b", "d", "e", "f"]  # c is the third Home/Kitchen item


def test_excluded_items_and_categories_never_returned() -> None:
    rules = RulesConfig(max_per_category=10, exclude_categories=["Sports"])
    ranked = apply_rules(rules, IDS, SCORES, CATS, 6, exclude=["a", "unknown-item"])
    assert ranked.item_ids == ["b", "c", "e", "f"]


def test_boost_lifts_a_category_without_reordering_the_rest() -> None:
    rules = RulesConfig(max_per_category=10, boosts={"Fashion": 3.0})
    ranked = apply_rules(rules, IDS, np.log(SCORES), CATS, 3)
    assert ranked.item_ids == ["f", "a", "b"]  # 0.4 * 3 = 1.2 beats 0.9


def test_fewer_items_when_fewer_qualify() -> None:
    ranked = apply_rules(RulesConfig(), IDS[:2], SCORES[:2], CATS[:2], 10, exclude=["a"])
    assert ranked.item_ids == ["b"] and ranked.positions == [1]


def test_reason_names_the_strongest_readable_feature() -> None:
    names = ["retrieval_score", "x_same_rt_category", "age", "x_brand_match"]
    contributions = np.array(
        [
            [0.1, 0.5, 0.9, 0.0, 0.0],  # age is strongest but has no wording: next is category
            [0.0, -0.2, 0.0, 0.3, 0.0],
            [-0.1, -0.1, -0.1, -0.1, 0.0],  # nothing positive
            [0.0, 0.0, 0.0, 0.4, 0.0],  # brand wanted but unknown: falls through
        ]
    )
    items = {
        "category": np.array(["Sports/Run", "Home", "Home", "Home"], dtype=object),
        "brand": np.array(["b1", "Acme", None, None], dtype=object),
    }
    want = [
        "more from Sports/Run, which you are browsing now",
        "a brand you like: Acme",
        FALLBACK_REASON,
        FALLBACK_REASON,
    ]
    assert reasons(contributions, names, items) == want
    # The request path passes the catalogue's `text_missing`, gathered for the rows.
    catalogue = {k: np.concatenate([v, v]) for k, v in items.items()}
    rows = np.array([4, 5, 2, 7])
    chosen = {k: v[rows] for k, v in catalogue.items()}
    assert reasons(contributions, names, chosen, text_missing(catalogue, 8)[rows]) == want


def _rules_by_hand(rules, item_ids, scores, categories, k, exclude):  # type: ignore[no-untyped-def]
    """The rules written out item by item: what the compiled loop must agree with."""
    adjusted = [
        s + (np.log(_factor(rules.boosts, c)) if rules.boosts else 0.0)
        for s, c in zip(scores, categories, strict=True)
    ]
    order = sorted(range(len(adjusted)), key=lambda i: -adjusted[i])  # stable: ties in order
    chosen: list[int] = []
    taken: dict[str, int] = {}
    for pos in order:
        category = categories[pos]
        text = "" if category is None else str(category)
        banned = category is not None and (
            text in rules.exclude_categories or text.split("/")[0] in rules.exclude_categories
        )
        if item_ids[pos] in exclude or banned:
            continue
        if text and taken.get(text, 0) >= rules.max_per_category:
            continue
        taken[text] = taken.get(text, 0) + 1
        chosen.append(pos)
        if len(chosen) == k:
            break
    return chosen, [adjusted[p] for p in chosen]


def _factor(boosts, category):  # type: ignore[no-untyped-def]
    if category is None:
        return 1.0
    return boosts.get(str(category), boosts.get(str(category).split("/")[0], 1.0))


def test_compiled_rules_agree_with_the_rules_written_out() -> None:
    rng = np.random.default_rng(7)
    pool = ["Home/Kitchen", "Home/Bath", "Sports/Run", "Fashion/Shoes", "Toys", "", None]
    configs = [
        RulesConfig(),
        RulesConfig(max_per_category=1, exclude_categories=["Home"]),
        RulesConfig(max_per_category=2, boosts={"Sports": 4.0, "Home/Bath": 0.25}),
        RulesConfig(max_per_category=3, boosts={"Toys": 2.0}, exclude_categories=["Sports/Run"]),
    ]
    for trial in range(200):
        n = int(rng.integers(0, 60))
        ids = np.array([f"i{j}" for j in range(n)], dtype=object)
        # Rounded scores: ties are common, and must keep the candidates' order.
        scores = np.round(rng.normal(size=n), 1)
        categories = [pool[j] for j in rng.integers(0, len(pool), size=n)]
        exclude = {f"i{j}" for j in rng.integers(0, max(n, 1), size=3)}
        rules = configs[trial % len(configs)]
        k = int(rng.integers(1, 12))
        ranked = apply_rules(rules, ids, scores, categories, k, exclude)
        positions, adjusted = _rules_by_hand(rules, list(ids), scores, categories, k, exclude)
        assert ranked.positions == positions
        assert ranked.item_ids == [ids[p] for p in positions]
        np.testing.assert_allclose(ranked.scores, adjusted, rtol=1e-12)


def test_compiled_reason_choice_agrees_with_the_rule_written_out() -> None:
    """The strongest worded, unblocked, positive feature per row, first on ties."""
    rng = np.random.default_rng(3)
    names = ["retrieval_score", "x_same_rt_category", "age", "x_brand_match", "x_cat_l1_share"]
    wordings = {
        "retrieval_score": "close to what you usually interact with",
        "x_same_rt_category": "more from {category}, which you are browsing now",
        "x_brand_match": "a brand you like: {brand}",
        "x_cat_l1_share": "you often shop {category_l1}",
    }
    for _ in range(100):
        rows = int(rng.integers(1, 12))
        contributions = np.round(rng.normal(size=(rows, len(names) + 1)), 1).astype(np.float32)
        items = {
            f: np.array([rng.choice([None, "", "A", "B/C"]) for _ in range(rows)], dtype=object)
            for f in ("category", "category_l1", "brand")
        }
        want = []
        for r in range(rows):
            best, strongest = None, 0.0
            for j, name in enumerate(names):
                value = float(contributions[r, j])
                wording = wordings.get(name)
                needed = [f for f in items if "{" + f + "}" in (wording or "")]
                if wording is None or any(items[f][r] in (None, "") for f in needed):
                    continue
                if value > strongest:
                    best, strongest = name, value
            if best is None:
                want.append(FALLBACK_REASON)
            else:
                want.append(wordings[best].format(**{f: items[f][r] for f in items}))
        assert reasons(contributions, names, items) == want


def test_a_list_the_diversity_limit_left_short_is_topped_up_in_score_order() -> None:
    table = CategoryRules.build(RulesConfig(max_per_category=1), CATS)
    codes = table.encode(CATS)
    pos, adjusted = table.choose(SCORES, codes, 6)
    assert IDS[pos].tolist() == ["a", "d", "e", "f"]  # one Home/Kitchen item only
    pos, adjusted = table.choose_full(SCORES, codes, 6)
    assert IDS[pos].tolist() == ["a", "d", "e", "f", "b", "c"]
    assert adjusted.tolist() == SCORES[pos].tolist()
    banned = CategoryRules.build(RulesConfig(max_per_category=1, exclude_categories=["Home"]), CATS)
    dropped = np.array([False, False, False, False, True, False])
    pos, _ = banned.choose_full(SCORES, banned.encode(CATS), 6, dropped)
    assert IDS[pos].tolist() == ["d", "f"]  # filters still hold: short only when they do


def test_the_version_decides_the_purchased_and_seen_rule_unless_set() -> None:
    default = RulesConfig()
    assert default.exclude_purchased is None and default.exclude_seen is None
    off = default.for_version(allow_repeats=False)
    assert off.exclude_purchased is True and off.exclude_seen is True
    on = default.for_version(allow_repeats=True)
    assert on.exclude_purchased is False and on.exclude_seen is False
    forced = RulesConfig(exclude_purchased=True, exclude_seen=False).for_version(True)
    assert forced.exclude_purchased is True and forced.exclude_seen is False
