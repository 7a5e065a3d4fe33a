"""Simulated shoppers: people of the generator's ground truth using the running API.

    ground_truth/ (users, items, world.json) --Shoppers--> per simulated day, people drawn
    by activity arrive at times of the day, POST /recommend with their context (device,
    timestamp), look down the list with position bias, click and buy by their true utility
    (tailwise.synthetic.utility.true_utility), and POST /events (product_view, add_to_cart,
    purchase) carrying the request id and position when the API takes them.

The choice model (`choose`) is a pure function: the probability of examining position j is
1 / (j + 1) ** position_decay; an examined item is clicked with sigmoid(click_base +
click_scale * (u - u_ref)), u its true utility and u_ref the person's mean utility over a
sample of the catalogue (so "better than usual for this person" is what earns a click); a
click is bought with the generator's own cart and purchase logits (world.json coefficients,
the person's buy propensity). Everything is seeded; the run is bounded by the number of
requests and by wall time, and reports progress through a callback.

The response's `experiment`, `variant` and `propensity` are used when present (they are
logged with every request); without them the model version stands in for the variant.
The run keeps its own log in the tables of tailwise.experiments (exposures, outcomes) plus
the mean true utility of what each variant showed, so an experiment's report can be held
against the truth.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tailwise.synthetic.utility import load_ground_truth, true_utility

DEVICES = ("mobile", "desktop", "tablet")
NO_EXPERIMENT = "(none)"


class SimulationError(ValueError):
    """Bad simulation input (ground truth, parameters, an API that refuses); names it."""


@dataclass(frozen=True)
class ChoiceModel:
    position_decay: float = 1.0
    click_base: float = -2.5
    click_scale: float = 1.0
    cart_base: float = -3.2  # replaced by world.json's coefficients when loaded
    cart_utility: float = 0.35
    purchase_base: float = -1.25
    purchase_utility: float = 0.25
    buy_boost: float = 2.0  # a click from a recommendation is closer to buying than a browse

    def with_world(self, world: dict[str, Any]) -> ChoiceModel:
        c = world.get("coefficients", {})
        keys = ("cart_base", "cart_utility", "purchase_base", "purchase_utility")
        return ChoiceModel(**{**self.__dict__, **{k: float(c[k]) for k in keys if k in c}})


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def click_probabilities(utility: np.ndarray, reference: float, model: ChoiceModel) -> np.ndarray:
    """P(click) of each position of a shown list, in the order shown."""
    examine = 1.0 / (np.arange(len(utility)) + 1.0) ** model.position_decay
    return examine * _sigmoid(model.click_base + model.click_scale * (utility - reference))


def choose(
    utility: np.ndarray,
    reference: float,
    rng: np.random.Generator,
    model: ChoiceModel,
    buy_propensity: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(clicked, bought) flags per position of a shown list with true utilities `utility`."""
    utility = np.asarray(utility, float)
    clicked = rng.random(len(utility)) < click_probabilities(utility, reference, model)
    rel = utility - reference
    cart = _sigmoid(model.cart_base + model.buy_boost + buy_propensity + model.cart_utility * rel)
    buy = _sigmoid(model.purchase_base + 0.5 * buy_propensity + model.purchase_utility * rel)
    bought = clicked & (rng.random(len(utility)) < cart * buy)
    return clicked, bought


@dataclass(frozen=True)
class SimulationConfig:
    days: int = 3
    users_per_day: int = 100
    k: int = 10
    seed: int = 0
    concurrency: int = 8
    max_requests: int = 10_000
    time_limit_s: float = 600.0
    end: datetime | None = None  # the last simulated day ends here (default: now, UTC)
    raw_ids: bool = True  # False: send keyed pseudonyms, as ingested data holds them
    model: ChoiceModel = field(default_factory=ChoiceModel)

    def __post_init__(self) -> None:
        for name in ("days", "users_per_day", "k", "concurrency", "max_requests"):
            if getattr(self, name) < 1:
                raise SimulationError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 1 <= self.k <= 100:
            raise SimulationError(f"k must lie in 1..100, got {self.k}")
        if self.time_limit_s <= 0:
            raise SimulationError(f"time_limit_s must be positive, got {self.time_limit_s}")


class Shoppers:
    """The ground truth's people with their true utilities (cached per person)."""

    def __init__(self, truth_dir: Path, model: ChoiceModel, sample: int = 200, seed: int = 0):
        gt = Path(truth_dir) / "ground_truth"
        if not (gt / "world.json").exists():
            raise SimulationError(
                f"--truth {truth_dir}: no ground_truth/world.json (a `tailwise generate` folder)"
            )
        self.users, self.items, self.world = load_ground_truth(Path(truth_dir))
        self.model = model.with_world(self.world)
        self.user_ids = self.users.column("user_id").to_pylist()
        self.item_pos = {v: k for k, v in enumerate(self.items.column("item_id").to_pylist())}
        self.prices = self.items.column("price").to_numpy(zero_copy_only=False)
        activity = self.users.column("activity").to_numpy(zero_copy_only=False).astype(float)
        self.activity = activity / activity.sum()
        self.buy = self.users.column("buy_propensity").to_numpy(zero_copy_only=False)
        devices = self.users.column("device_probs").combine_chunks()
        self.device_probs = devices.flatten().to_numpy(zero_copy_only=False).reshape(-1, 3)
        rng = np.random.default_rng(seed)
        self.sample = rng.choice(len(self.item_pos), min(sample, len(self.item_pos)), replace=False)
        self._reference: dict[int, float] = {}

    def utility(self, user: int, item_ids: list[str], device: str, at: datetime) -> np.ndarray:
        """True utilities of the shown items for this person here and now; an item the
        ground truth does not know is scored well below the person's usual."""
        known = [i for i in item_ids if i in self.item_pos]
        out = np.full(len(item_ids), self.reference(user) - 5.0)
        if known:
            rows = [self.item_pos[i] for i in known]
            scores = true_utility(
                self.users.take([user]), self.items.take(rows), self.world,
                [self.user_ids[user]] * len(rows), known, device=device,
                weekend=at.weekday() >= 5, at=int(at.timestamp()),
            )  # fmt: skip
            where = [k for k, i in enumerate(item_ids) if i in self.item_pos]
            out[where] = scores
        return out

    def reference(self, user: int) -> float:
        if user not in self._reference:
            ids = self.items.column("item_id").take(pa.array(self.sample)).to_pylist()
            scores = true_utility(
                self.users.take([user]), self.items.take(self.sample), self.world,
                [self.user_ids[user]] * len(ids), ids,
            )  # fmt: skip
            self._reference[user] = float(np.mean(scores[np.isfinite(scores)]))
        return self._reference[user]


@dataclass
class SimulationResult:
    requests: int = 0
    failed: int = 0
    clicks: int = 0
    purchases: int = 0
    revenue: float = 0.0
    seconds: float = 0.0
    stopped: str = ""  # why the run ended early, if it did
    errors: list[str] = field(default_factory=list)  # the first few failures, as answered
    exposures: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)

    def per_variant(self) -> dict[str, dict[str, float]]:
        """Requests, clicks, purchases, revenue and mean true utility shown, per variant."""
        if not self.exposures:
            return {}
        e = pd.DataFrame(self.exposures)
        o = pd.DataFrame(self.outcomes, columns=["variant", "event_type", "revenue"])
        out = {}
        for variant, g in e.groupby("variant"):
            mine = o.loc[o["variant"] == variant]
            out[str(variant)] = {
                "requests": len(g),
                "clicks": int((mine["event_type"] == "product_view").sum()),
                "purchases": int((mine["event_type"] == "purchase").sum()),
                "revenue": float(mine["revenue"].sum()),
                "mean_true_utility": float(g["true_utility"].mean()),
            }
        return out

    def write(self, out: Path) -> None:
        """exposures.parquet and outcomes.parquet in the tables of tailwise.experiments."""
        out.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(self.exposures).to_parquet(out / "exposures.parquet", index=False)
        cols = ["request_id", "user_id", "experiment", "variant", "event_type", "revenue",
                "position", "timestamp"]  # fmt: skip
        pd.DataFrame(self.outcomes, columns=cols).to_parquet(out / "outcomes.parquet", index=False)


def arrivals(shoppers: Shoppers, cfg: SimulationConfig) -> list[tuple[int, datetime, str]]:
    """(person, when, device) of every visit, in time order: users_per_day a day."""
    rng = np.random.default_rng(cfg.seed)
    end = cfg.end or datetime.now(UTC)
    start = end - timedelta(days=cfg.days)
    visits = []
    for day in range(cfg.days):
        people = rng.choice(len(shoppers.activity), cfg.users_per_day, p=shoppers.activity)
        seconds = np.sort(rng.uniform(0, 86400, cfg.users_per_day))
        for person, s in zip(people, seconds, strict=True):
            device = DEVICES[
                rng.choice(3, p=shoppers.device_probs[person] / shoppers.device_probs[person].sum())
            ]
            visits.append((int(person), start + timedelta(days=day, seconds=float(s)), device))
    return visits[: cfg.max_requests]


async def simulate(
    client: Any,
    shoppers: Shoppers,
    cfg: SimulationConfig,
    user_id: Callable[[str], str] = lambda u: u,
    headers: dict[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationResult:
    """Run every visit against the API behind `client` (an httpx.AsyncClient)."""
    visits = arrivals(shoppers, cfg)
    result = SimulationResult()
    started = time.monotonic()
    sends_ids = await _events_take_request_id(client, headers)
    gate = asyncio.Semaphore(cfg.concurrency)
    rngs = np.random.default_rng(cfg.seed + 1).spawn(len(visits))

    async def visit(k: int) -> None:
        async with gate:
            if time.monotonic() - started > cfg.time_limit_s:
                result.stopped = f"time limit {cfg.time_limit_s:g}s reached"
                return
            try:
                await _one_visit(client, shoppers, cfg, visits[k], rngs[k], result, user_id,
                                 headers or {}, sends_ids)  # fmt: skip
            except SimulationError as exc:
                result.failed += 1
                if len(result.errors) < 5:
                    result.errors.append(str(exc))
            if progress is not None:
                progress(result.requests + result.failed, len(visits))

    await asyncio.gather(*(visit(k) for k in range(len(visits))))
    result.seconds = time.monotonic() - started
    return result


async def _events_take_request_id(client: Any, headers: dict[str, str] | None) -> bool:
    """Whether the API's event model has request_id (read from its OpenAPI document)."""
    try:
        reply = await client.get("/openapi.json", headers=headers or {})
        schemas = reply.json()["components"]["schemas"].values()
    except Exception:  # an API without the document: send the fields of today's contract
        return False
    return any(
        {"user_id", "item_id", "event_type", "request_id"} <= set(s.get("properties", {}))
        for s in schemas
    )


async def _one_visit(
    client: Any,
    shoppers: Shoppers,
    cfg: SimulationConfig,
    visit_: tuple[int, datetime, str],
    rng: np.random.Generator,
    result: SimulationResult,
    user_id: Callable[[str], str],
    headers: dict[str, str],
    sends_ids: bool,
) -> None:
    person, at, device = visit_
    uid = user_id(shoppers.user_ids[person])
    body = {"user_id": uid, "k": cfg.k, "context": {"device": device, "timestamp": at.isoformat()}}
    reply = await _post(client, "/recommend", body, headers)
    if not 200 <= reply.status_code < 300:
        raise SimulationError(f"/recommend answered {reply.status_code}: {reply.text[:200]}")
    data = reply.json()
    shown = [i["item_id"] for i in data.get("items", [])]
    result.requests += 1
    utility = shoppers.utility(person, shown, device, at)
    clicked, bought = choose(utility, shoppers.reference(person), rng, shoppers.model,
                             float(shoppers.buy[person]))  # fmt: skip
    experiment = data.get("experiment") or NO_EXPERIMENT
    variant = data.get("variant") or data.get("model_version", "")
    request_id = data.get("request_id")
    result.exposures.append({
        "request_id": request_id, "user_id": uid, "experiment": experiment, "variant": variant,
        "propensity": float(data.get("propensity") or 1.0), "slot": data.get("slot"),
        "timestamp": at, "true_utility": float(np.mean(utility)) if len(shown) else np.nan,
    })  # fmt: skip
    events = []
    for pos in np.flatnonzero(clicked):
        item, when = shown[pos], at + timedelta(seconds=5 + 20 * int(pos))
        price = (
            float(shoppers.prices[shoppers.item_pos[item]]) if item in shoppers.item_pos else None
        )
        types = ["product_view"] + (["add_to_cart", "purchase"] if bought[pos] else [])
        for step, kind in enumerate(types):
            event = {"user_id": uid, "item_id": item, "event_type": kind, "device": device,
                     "timestamp": (when + timedelta(seconds=30 * step)).isoformat(), "price": price}  # fmt: skip
            if sends_ids:
                event.update(request_id=request_id, position=int(pos))
            events.append(event)
            if kind in ("product_view", "purchase"):
                revenue = (price or 0.0) if kind == "purchase" else 0.0
                result.outcomes.append({
                    "request_id": request_id, "user_id": uid, "experiment": experiment,
                    "variant": variant, "event_type": kind, "revenue": revenue,
                    "position": int(pos), "timestamp": when,
                })  # fmt: skip
    result.clicks += int(clicked.sum())
    result.purchases += int(bought.sum())
    result.revenue += float(
        sum(
            shoppers.prices[shoppers.item_pos[shown[p]]]
            for p in np.flatnonzero(bought)
            if shown[p] in shoppers.item_pos
        )
    )
    if events:
        sent = await _post(client, "/events", events, headers)
        if not 200 <= sent.status_code < 300:
            raise SimulationError(f"/events answered {sent.status_code}: {sent.text[:200]}")


OVERLOAD_RETRIES = 5  # a 503 with Retry-After is the server asking to come back, not a failure


async def _post(client: Any, path: str, body: Any, headers: dict[str, str]) -> Any:
    """POST, coming back after Retry-After when the server sheds load (at most
    OVERLOAD_RETRIES times, then the 503 answers); a timeout fails this visit only (a
    refused connection ends the run)."""
    import httpx

    try:
        for attempt in range(OVERLOAD_RETRIES + 1):
            reply = await client.post(path, json=body, headers=headers)
            wait = _retry_after(reply)
            if wait is None or attempt == OVERLOAD_RETRIES:
                return reply
            await asyncio.sleep(wait)
    except httpx.TimeoutException as exc:
        raise SimulationError(f"{path} timed out ({exc!r})") from exc
    raise AssertionError("unreachable: the last attempt returns")


def _retry_after(reply: Any) -> float | None:
    """Seconds to wait before coming back, for a 503 with Retry-After; else None."""
    if reply.status_code != 503 or "retry-after" not in reply.headers:
        return None
    try:
        return min(max(float(reply.headers["retry-after"]), 0.0), 30.0)
    except ValueError:  # an HTTP date rather than seconds
        return 1.0
