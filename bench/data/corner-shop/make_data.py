"""Write the corner-shop dataset: a small shop's till and loyalty-app exports, with the
mess such exports have.

    .venv/bin/python bench/data/corner-shop/make_data.py            # into this folder
    .venv/bin/python bench/data/corner-shop/make_data.py --out DIR

customers.csv, products.csv and sales.csv use the shop's own column names and formats
(mapping.yaml maps them onto the contract). Customers are households of three kinds
(family, student, pensioner) that like some shop sections more than others; each has a
few staples bought again most weeks, and browses the loyalty app now and then. The
mess, on purpose: headers with spaces and capitals, no age, gender, income band or
consent columns, a category path with ' > ', prices with a currency sign or blank, dates
in four formats (naive, with an offset, epoch seconds, and a few day-first ones the
contract does not accept), till lines exported twice, a refund type no weight is given
for, a sale for a customer the loyalty scheme does not know and one without a SKU.
Same seed, same files.
"""

from __future__ import annotations

import argparse
import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 20261203
START = datetime(2026, 9, 7, tzinfo=UTC)  # a Monday; eight weeks to 2026-11-01
WEEKS = 8
SECTIONS = {
    "Dairy > Milk": ["Whole milk 1l", "Semi-skimmed 2l", "Oat drink 1l", "Goat milk"],
    "Dairy > Cheese": ["Cheddar 200g", "Feta", "Halloumi", "Brie"],
    "Bakery > Bread": ["Sourdough", "White loaf", "Rye bread", "Bagels 4"],
    "Bakery > Cakes": ["Flapjack", "Carrot cake", "Scones 2", "Eclairs"],
    "Fruit & Veg": ["Bananas", "Apples 6", "Carrots 1kg", "Spinach", "Avocado", "Lemons"],
    "Drinks > Soft": ["Cola 2l", "Orange juice", "Sparkling water", "Lemonade"],
    "Drinks > Beer": ["Lager 4x", "IPA", "Cider", "Stout"],
    "Snacks": ["Crisps", "Peanuts", "Chocolate bar", "Popcorn", "Biscuits"],
    "Household": ["Washing-up liquid", "Bin bags", "Light bulb", "Batteries AA"],
    "Newsagent": ["Daily paper", "Puzzle book", "Lottery ticket", "Greeting card"],
    "Baby": ["Nappies", "Baby wipes", "Formula"],
    "Pet": ["Cat food", "Dog treats", "Cat litter"],
}
MAKERS = ["Village Farm", "Hearth", "Brightside", "Own label", "Hopgood", ""]
KINDS = {  # section -> liking per household kind
    "family": {"Dairy > Milk": 3, "Bakery > Bread": 2, "Fruit & Veg": 2, "Baby": 3, "Snacks": 1},
    "student": {"Drinks > Beer": 3, "Snacks": 3, "Drinks > Soft": 2, "Bakery > Cakes": 1},
    "pensioner": {"Newsagent": 3, "Bakery > Cakes": 2, "Dairy > Cheese": 2, "Pet": 2},
}
TOWNS = ["Northgate", "Riverside", "Old Town", "Hill End"]


def _products(rng: np.random.Generator) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for section, names in SECTIONS.items():
        for name in names:
            price = float(np.round(rng.gamma(2.0, 1.4) + 0.3, 2))
            shown = f"{price:.2f}"
            if rng.random() < 0.08:
                shown = f"£{price:.2f}"  # not a number: set to unknown, then imputed
            elif rng.random() < 0.05:
                shown = ""
            rows.append(
                {
                    "SKU": f"{len(rows) + 1:05d}",
                    "Product Name": name,
                    "Section": section if rng.random() > 0.1 else section.lower(),
                    "Maker": str(rng.choice(MAKERS)),
                    "RRP": shown,
                }
            )
    return rows


def _customers(rng: np.random.Generator, n: int) -> tuple[list[dict[str, str]], list[str]]:
    rows, kinds = [], []
    for i in range(n):
        kind = str(rng.choice(list(KINDS), p=[0.45, 0.25, 0.3]))
        joined = START - timedelta(days=int(rng.integers(10, 900)))
        rows.append(
            {
                "Card Number": f"CS-{1000 + i}",
                "Joined": joined.strftime("%Y-%m-%d"),
                "E-mail": f"customer{i}@example.org" if rng.random() < 0.8 else "",
                "Town": str(rng.choice(TOWNS)),
                "Country": "gb" if rng.random() < 0.9 else "GB",
            }
        )
        kinds.append(kind)
    return rows, kinds


def _when(rng: np.random.Generator, at: datetime) -> str:
    """The till writes naive local time, the app ISO with an offset, the old export epoch
    seconds; a few lines were typed day-first by hand."""
    style = rng.random()
    if style < 0.5:
        return at.strftime("%Y-%m-%d %H:%M:%S")
    if style < 0.8:
        return (at + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S+01:00")
    if style < 0.985:
        return str(int(at.timestamp()))
    return at.strftime("%d/%m/%Y %H:%M")


def _sales(
    rng: np.random.Generator, products: list[dict[str, str]], cards: list[str], kinds: list[str]
) -> list[dict[str, str]]:
    canonical = [s for s, names in SECTIONS.items() for _ in names]  # products' order
    rows: list[dict[str, str]] = []
    for card, kind in zip(cards, kinds, strict=True):
        liking = np.array([KINDS[kind].get(s, 0.2) for s in canonical], dtype=float)
        liking = liking * rng.gamma(1.0, 1.0, len(canonical))
        liking /= liking.sum()
        staples = rng.choice(len(products), 3, replace=False, p=liking)
        visits = rng.binomial(WEEKS, rng.uniform(0.3, 0.9))
        for visit in sorted(rng.choice(WEEKS * 7, max(visits, 1), replace=False)):
            at = START + timedelta(days=int(visit), minutes=int(rng.integers(7 * 60, 21 * 60)))
            receipt = f"R{len(rows) + 10000}"
            basket = {int(s) for s in staples if rng.random() < 0.6}
            basket |= {int(i) for i in rng.choice(len(products), rng.integers(0, 3), p=liking)}
            for line, item in enumerate(sorted(basket)):
                rows.append(_line(rng, receipt, line, card, products[item], "sale", at))
            if rng.random() < 0.3:  # browsed the app the evening before
                seen = int(rng.choice(len(products), p=liking))
                rows.append(_line(rng, f"A{receipt[1:]}", 0, card, products[seen], "app_view", at))
    return rows


def _line(
    rng: np.random.Generator,
    receipt: str,
    line: int,
    card: str,
    product: dict[str, str],
    what: str,
    at: datetime,
) -> dict[str, str]:
    return {
        "Line ID": f"{receipt}-{line}",
        "Card": card,
        "SKU": product["SKU"],
        "Type": what,
        "Date/Time": _when(rng, at if what == "sale" else at - timedelta(hours=14)),
        "Qty": str(int(rng.integers(1, 4))) if what == "sale" else "",
    }


def _mess(rng: np.random.Generator, sales: list[dict[str, str]]) -> list[dict[str, str]]:
    """Till lines exported twice, refunds, an unknown card, a blank SKU."""
    out = list(sales)
    for k in sorted(rng.choice(len(sales), 6, replace=False), reverse=True):
        out.insert(int(k) + 1, dict(sales[int(k)]))
    for k in rng.choice(len(sales), 3, replace=False):
        out.append({**sales[int(k)], "Line ID": f"F{k}", "Type": "refund"})
    out.append({**sales[0], "Line ID": "X1", "Card": "CS-9999"})
    out.append({**sales[1], "Line ID": "X2", "SKU": ""})
    return out


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write(out: Path, customers: int = 70) -> dict[str, int]:
    """Write the three files into `out`; returns rows per file."""
    rng = np.random.default_rng(SEED)
    products = _products(rng)
    people, kinds = _customers(rng, customers)
    sales = _mess(rng, _sales(rng, products, [p["Card Number"] for p in people], kinds))
    out.mkdir(parents=True, exist_ok=True)
    files = {"customers.csv": people, "products.csv": products, "sales.csv": sales}
    for name, rows in files.items():
        _write(out / name, rows)
    return {name: len(rows) for name, rows in files.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    for name, n in write(args.out).items():
        print(f"{args.out / name}: {n} rows")


if __name__ == "__main__":
    main()
