"""Tests for tailwise.ingest.identity: normalisers and near-duplicate resolution.

`make_users` also serves as the generator for measuring resolve_duplicates at scale:
    python -c "from tests.ingest.test_identity import make_users; ..."
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pytest
from rapidfuzz import fuzz

from tailwise.ingest.identity import (
    normalise_email,
    normalise_name,
    normalise_phone,
    resolve_duplicates,
)

FIRST = [
    "Anna",
    "Lena",
    "Jonas",
    "Lukas",
    "Marie",
    "Sophie",
    "Paul",
    "Leon",
    "Emma",
    "Mia",
    "Jörg",
    "Björn",
    "Zoë",
    "Ömer",
    "Fatma",
    "Mehmet",
    "Sven",
    "Katrin",
    "José",
    "Luis",
    "Hannah",
    "Felix",
    "Noah",
    "Clara",
    "Jürgen",
    "Ingrid",
    "Maximilian",
    "Charlotte",
]
LAST = [
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Koch",
    "Bauer",
    "Richter",
    "Klein",
    "Wolf",
    "Schröder",
    "Neumann",
    "Schwarz",
    "Zimmermann",
    "Braun",
    "Krüger",
    "Hartmann",
    "Lange",
    "Krause",
    "Öztürk",
    "Yılmaz",
    "García",
    "Nowak",
    "Kowalski",
    "O'Neill",
    "Meyer-Landrut",
]
DOMAINS = ["example.com", "mail.example.de", "web.example.org", "post.example.net"]
# mobile prefixes whose last two digits differ, so the 9-digit phone key stays unique
PREFIXES = [
    "151",
    "152",
    "157",
    "159",
    "160",
    "162",
    "163",
    "170",
    "171",
    "172",
    "173",
    "174",
    "175",
    "176",
    "177",
    "178",
    "179",
]
PHONE_FORMATS = (
    lambda p, s: f"+49 {p} {s}",
    lambda p, s: f"0049-{p}-{s}",
    lambda p, s: f"(0{p}) {s}",
    lambda p, s: f"0{p}{s}",
)
NAME_FORMATS = (
    lambda f, last: f"{f} {last}",
    lambda f, last: f"  {f.lower()}  {last.lower()}",
    lambda f, last: f"{last}, {f}",
    lambda f, last: f"{f.upper()} {last.upper()}",
)
EMAIL_FORMATS = (
    lambda e: e,
    lambda e: e.upper(),
    lambda e: f"  {e} ",
    lambda e: f"mailto:{e}",
    lambda e: e.replace("@", " @ "),
)


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(c for c in ascii_name.lower() if c.isalnum())


def make_users(
    n_people: int, n_duplicates: int, seed: int = 0, n_placeholder: int = 0
) -> pd.DataFrame:
    """A users table with known truth in `person_id`.

    Every person has a unique email and phone; `n_duplicates` extra records copy a random
    person (with replacement, so some get two) under a new user_id with random formatting
    of phone and name, and in 40% of them a different email address. `n_placeholder`
    further strangers share the placeholder phone 000000000 and one name.
    """
    rng = np.random.default_rng(seed)
    first_i = rng.integers(len(FIRST), size=n_people)
    last_i = rng.integers(len(LAST), size=n_people)
    tails = rng.choice(len(PREFIXES) * 10**7, size=n_people, replace=False)
    firsts = [FIRST[i] for i in first_i]
    lasts = [LAST[i] for i in last_i]
    slugs_f = [_slug(FIRST[i]) for i in range(len(FIRST))]
    slugs_l = [_slug(LAST[i]) for i in range(len(LAST))]
    domain_i = rng.integers(len(DOMAINS), size=n_people)
    emails = [
        f"{slugs_f[f]}.{slugs_l[s]}{k}@{DOMAINS[d]}"
        for k, (f, s, d) in enumerate(zip(first_i, last_i, domain_i, strict=True))
    ]
    prefixes = [PREFIXES[t // 10**7] for t in tails]
    subscribers = [f"{t % 10**7:07d}" for t in tails]
    fmt = rng.integers(len(PHONE_FORMATS), size=n_people)
    phones = [PHONE_FORMATS[f](p, s) for f, p, s in zip(fmt, prefixes, subscribers, strict=True)]
    names = [f"{f} {s}" for f, s in zip(firsts, lasts, strict=True)]

    src = rng.integers(n_people, size=n_duplicates)
    new_email = rng.random(n_duplicates) < 0.4
    e_fmt = rng.integers(len(EMAIL_FORMATS), size=n_duplicates)
    p_fmt = rng.integers(len(PHONE_FORMATS), size=n_duplicates)
    n_fmt = rng.integers(len(NAME_FORMATS), size=n_duplicates)
    dup_emails = [
        f"{slugs_f[first_i[p]]}{k}.alt@other.example.com" if new else EMAIL_FORMATS[ef](emails[p])
        for k, (p, new, ef) in enumerate(zip(src, new_email, e_fmt, strict=True))
    ]
    dup_phones = [
        PHONE_FORMATS[pf](prefixes[p], subscribers[p]) for p, pf in zip(src, p_fmt, strict=True)
    ]
    dup_names = [NAME_FORMATS[nf](firsts[p], lasts[p]) for p, nf in zip(src, n_fmt, strict=True)]

    placeholder_emails = [f"shared.phone{k}@example.com" for k in range(n_placeholder)]
    total = n_people + n_duplicates + n_placeholder
    users = pd.DataFrame(
        {
            "person_id": np.concatenate(
                [np.arange(n_people), src, n_people + np.arange(n_placeholder)]
            ),
            "email": emails + dup_emails + placeholder_emails,
            "phone": phones + dup_phones + ["000 000 000"] * n_placeholder,
            "full_name": names + dup_names + ["Anna Müller"] * n_placeholder,
        }
    )
    start = pd.Timestamp("2022-01-01", tz="UTC")
    seconds = rng.integers(0, 2 * 365 * 86400, size=total)
    signup = start + pd.to_timedelta(seconds, unit="s")
    users["signup_at"] = pd.Series(signup).where(rng.random(total) > 0.01)
    users["user_id"] = [f"u{k:08d}" for k in rng.permutation(total)]
    return users.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def duplicate_metrics(users: pd.DataFrame, result: pd.DataFrame) -> tuple[float, float]:
    """Record-level (recall, precision) of duplicate resolution against `person_id`.

    Recall: of the k-1 extra records of each person, how many landed in the person's
    largest predicted cluster. Precision: of the records mapped to another record, how
    many were mapped to a record of the same person.
    """
    person_of = dict(zip(users["user_id"], users["person_id"], strict=True))
    frame = result.assign(person=result["user_id"].map(person_of))
    largest = frame.groupby(["person", "canonical_user_id"]).size().groupby(level=0).max()
    sizes = frame.groupby("person").size()
    recall = float((largest - 1).sum() / (sizes - 1).sum())
    merged = frame[frame["canonical_user_id"] != frame["user_id"]]
    correct = merged["canonical_user_id"].map(person_of) == merged["person"]
    precision = float(correct.mean()) if len(merged) else 1.0
    return recall, precision


def users_frame(rows: Sequence[Mapping[str, object]]) -> pd.DataFrame:
    """Hand-made users; missing fields default to null, signups to a fixed day + i hours."""
    base = pd.Timestamp("2024-01-01", tz="UTC")
    filled = [
        {
            "user_id": r.get("user_id", f"u{i}"),
            "email": r.get("email"),
            "phone": r.get("phone"),
            "full_name": r.get("full_name"),
            "signup_at": r.get("signup_at", base + pd.Timedelta(hours=i)),
        }
        for i, r in enumerate(rows)
    ]
    frame = pd.DataFrame(filled, columns=["user_id", "email", "phone", "full_name", "signup_at"])
    frame["signup_at"] = pd.to_datetime(frame["signup_at"], utc=True)
    return frame


def canonical_of(result: pd.DataFrame) -> dict[str, str]:
    return dict(zip(result["user_id"], result["canonical_user_id"], strict=True))


# normalisers


def test_normalise_email() -> None:
    raw = pd.Series(
        [
            " Anna.Mueller@Example.COM ",
            "MAILTO:anna.mueller@example.com",
            "anna. mueller @example.com",
            "not-an-email",
            "",
            None,
        ]
    )
    assert normalise_email(raw).tolist() == ["anna.mueller@example.com"] * 3 + [None] * 3


def test_normalise_phone() -> None:
    raw = pd.Series(
        [
            "+49 151 2345678",
            "0049-151-2345678",
            "(0151) 2345678",
            "01512345678",
            " 0151 / 234 56 78 ",
            "12-34",
            "",
            None,
        ]
    )
    assert normalise_phone(raw).tolist() == ["512345678"] * 5 + [None] * 3


def test_normalise_name() -> None:
    raw = pd.Series(
        [
            "Anna Müller",
            "  anna  müller",
            "Müller, Anna",
            "ANNA MÜLLER",
            "Anna Müller.",
            " , ",
            None,
        ]
    )
    assert normalise_name(raw).tolist() == ["anna müller"] * 5 + [None] * 2


# matching rules


@pytest.mark.parametrize("name_fmt", range(len(NAME_FORMATS)))
@pytest.mark.parametrize("phone_fmt", range(len(PHONE_FORMATS)))
def test_phone_and_name_variants_match(phone_fmt: int, name_fmt: int) -> None:
    users = users_frame(
        [
            {"email": "anna@example.com", "phone": "+49 151 2345678", "full_name": "Anna Müller"},
            {
                "email": "anna.other@example.org",
                "phone": PHONE_FORMATS[phone_fmt]("151", "2345678"),
                "full_name": NAME_FORMATS[name_fmt]("Anna", "Müller"),
            },
        ]
    )
    result = resolve_duplicates(users)
    assert result["canonical_user_id"].tolist() == ["u0", "u0"]
    assert result["rule"].tolist() == ["self", "phone+name"]
    assert result["score"][1] == pytest.approx(100.0)


@pytest.mark.parametrize("email_fmt", range(len(EMAIL_FORMATS)))
def test_email_variants_match(email_fmt: int) -> None:
    users = users_frame(
        [
            {"email": "Anna.Mueller@example.com", "phone": "+49 151 2345678", "full_name": "Anna"},
            {
                "email": EMAIL_FORMATS[email_fmt]("anna.mueller@EXAMPLE.com"),
                "phone": "+1 415 555 0134",
                "full_name": "A. M.",
            },
        ]
    )
    result = resolve_duplicates(users)
    assert result["canonical_user_id"].tolist() == ["u0", "u0"]
    assert result["rule"].tolist() == ["self", "email"]
    assert np.isnan(result["score"]).all()


def test_strangers_with_similar_names_are_not_merged() -> None:
    users = users_frame(
        [
            {"email": "anna@example.com", "phone": "+49 151 2345678", "full_name": "Anna Müller"},
            {
                "email": "a.mueller@example.org",
                "phone": "+49 152 7654321",
                "full_name": "Anna Müller",
            },
            {"email": "anna.m@example.net", "phone": "0171 1112223", "full_name": "Müller, Anna"},
        ]
    )
    result = resolve_duplicates(users)
    assert (result["canonical_user_id"] == result["user_id"]).all()
    assert (result["rule"] == "self").all()


def test_same_phone_with_a_different_name_is_not_merged() -> None:
    users = users_frame(
        [
            {"email": "anna@example.com", "phone": "+49 151 2345678", "full_name": "Anna Müller"},
            {"email": "jonas@example.com", "phone": "01512345678", "full_name": "Jonas Weber"},
            {"email": "anne@example.com", "phone": "01512345678", "full_name": "Anne Möller"},
        ]
    )
    result = resolve_duplicates(users)
    assert (result["rule"] == "self").all()


def test_phone_match_needs_both_names() -> None:
    users = users_frame(
        [
            {"email": "anna@example.com", "phone": "+49 151 2345678", "full_name": "Anna Müller"},
            {"email": "other@example.com", "phone": "01512345678", "full_name": None},
        ]
    )
    assert (resolve_duplicates(users)["rule"] == "self").all()


def test_placeholder_phone_block_is_skipped() -> None:
    rows = [
        {"email": f"person{i}@example.com", "phone": "000-000-000", "full_name": "Anna Müller"}
        for i in range(50)
    ]
    rows += [
        {"email": "x@example.com", "phone": "0151 2345678", "full_name": "Jo Ko"},
        {"email": "y@example.com", "phone": "+49 151 2345678", "full_name": "Jo Ko"},
    ]
    result = resolve_duplicates(users_frame(rows))
    assert (result["rule"][:50] == "self").all()
    assert result["rule"][51] == "phone+name"
    assert result.attrs["skipped_blocks"] == 1
    assert result.attrs["skipped_phone_blocks"] == 1
    assert result.attrs["skipped_email_blocks"] == 0


def test_placeholder_email_block_is_skipped() -> None:
    rows = [
        {"email": "noreply@example.com", "phone": f"0151 {i:07d}", "full_name": f"P {i}"}
        for i in range(21)
    ]
    result = resolve_duplicates(users_frame(rows))
    assert (result["rule"] == "self").all()
    assert result.attrs["skipped_email_blocks"] == 1


def test_block_of_exactly_max_block_is_used() -> None:
    rows = [{"email": "same@example.com"} for _ in range(5)]
    result = resolve_duplicates(users_frame(rows), max_block=5)
    assert set(result["canonical_user_id"]) == {"u0"}
    assert result.attrs["skipped_blocks"] == 0


def test_chain_forms_one_cluster() -> None:
    users = users_frame(
        [
            {
                "user_id": "A",
                "email": "a@example.com",
                "phone": "0170 1111111",
                "full_name": "Ann Lee",
            },
            {
                "user_id": "B",
                "email": "A@Example.com ",
                "phone": "0151 2345678",
                "full_name": "Anna Müller",
            },
            {
                "user_id": "C",
                "email": "c@example.com",
                "phone": "+49 151 2345678",
                "full_name": "Müller, Anna",
            },
            {
                "user_id": "D",
                "email": "d@example.com",
                "phone": "0160 9999999",
                "full_name": "Dora",
            },
        ]
    )
    result = resolve_duplicates(users)
    assert canonical_of(result) == {"A": "A", "B": "A", "C": "A", "D": "D"}
    assert result["rule"].tolist() == ["self", "email", "phone+name", "self"]


def test_canonical_is_earliest_signup_then_smallest_user_id() -> None:
    t = pd.Timestamp("2024-05-01", tz="UTC")
    users = users_frame(
        [
            # cluster 1: earliest signup wins although its id is the largest
            {"user_id": "z1", "email": "one@example.com", "signup_at": t},
            {"user_id": "a1", "email": "one@example.com", "signup_at": t + pd.Timedelta(days=1)},
            # cluster 2: tie on signup -> smallest user_id
            {"user_id": "m2", "email": "two@example.com", "signup_at": t},
            {"user_id": "k2", "email": "two@example.com", "signup_at": t},
            # cluster 3: NaT loses to any real signup
            {"user_id": "a3", "email": "three@example.com", "signup_at": pd.NaT},
            {"user_id": "b3", "email": "three@example.com", "signup_at": t + pd.Timedelta(days=9)},
            # cluster 4: all NaT -> smallest user_id
            {"user_id": "q4", "email": "four@example.com", "signup_at": pd.NaT},
            {"user_id": "p4", "email": "four@example.com", "signup_at": pd.NaT},
        ]
    )
    result = resolve_duplicates(users)
    assert canonical_of(result) == {
        "z1": "z1",
        "a1": "z1",
        "m2": "k2",
        "k2": "k2",
        "a3": "b3",
        "b3": "b3",
        "q4": "p4",
        "p4": "p4",
    }
    assert result["rule"].tolist() == [
        "self",
        "email",
        "email",
        "self",
        "email",
        "self",
        "email",
        "self",
    ]


def test_one_row_per_user_in_input_order() -> None:
    users = users_frame([{"email": "a@example.com"}, {"email": None}, {"email": "a@example.com"}])
    result = resolve_duplicates(users)
    assert list(result.columns) == ["user_id", "canonical_user_id", "rule", "score"]
    assert result["user_id"].tolist() == users["user_id"].tolist()
    assert result["score"].dtype == float


def test_empty_table() -> None:
    result = resolve_duplicates(users_frame([]))
    assert result.empty
    assert result.attrs["skipped_blocks"] == 0


def test_bad_input_is_rejected_with_the_bad_value() -> None:
    users = users_frame([{"user_id": "dup"}, {"user_id": "dup"}])
    with pytest.raises(ValueError, match="dup"):
        resolve_duplicates(users)
    with pytest.raises(ValueError, match="full_name"):
        resolve_duplicates(users_frame([{}]).drop(columns="full_name"))


# quality on generated data


def test_duplicate_metrics_notice_misses_and_false_merges() -> None:
    users = pd.DataFrame({"user_id": ["a", "b", "c", "d"], "person_id": [1, 1, 2, 3]})
    nothing = users[["user_id"]].assign(canonical_user_id=users["user_id"])
    assert duplicate_metrics(users, nothing) == (0.0, 1.0)
    everything = users[["user_id"]].assign(canonical_user_id="a")
    assert duplicate_metrics(users, everything) == (1.0, pytest.approx(1 / 3))


def test_generated_users_meet_recall_and_precision() -> None:
    users = make_users(n_people=5000, n_duplicates=200, seed=7, n_placeholder=30)
    result = resolve_duplicates(users.drop(columns="person_id"))
    recall, precision = duplicate_metrics(users, result)
    assert recall >= 0.95, f"recall {recall:.4f}"
    assert precision >= 0.99, f"precision {precision:.4f}"
    assert result.attrs["skipped_phone_blocks"] == 1


def test_name_threshold_is_inclusive() -> None:
    users = users_frame(
        [
            {"email": "a@example.com", "phone": "0151 2345678", "full_name": "Anna Müller"},
            {"email": "b@example.com", "phone": "0151 2345678", "full_name": "Anna Muller"},
        ]
    )
    exact = fuzz.token_sort_ratio("anna müller", "anna muller")
    merged = resolve_duplicates(users, name_threshold=exact)
    assert merged["rule"].tolist() == ["self", "phone+name"]
    assert merged["score"][1] == pytest.approx(exact)
    apart = resolve_duplicates(users, name_threshold=exact + 0.01)
    assert (apart["rule"] == "self").all()
