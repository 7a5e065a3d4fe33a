"""Users: validate, merge duplicates, honour consent, impute, pseudonymise.

raw_users (DuckDB view) -> typed rows -> quarantine (no user_id) -> corrections (bad
optional values nulled and recorded) -> repeated ids and near-duplicate people merged
onto one canonical id -> consent and erasure exclusions -> imputation -> keyed hashes
replace personal data. The result also carries `user_map`, which events use to move
every source id onto its canonical id and to apply consent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pandas as pd

from tailwise.ingest import parse
from tailwise.ingest.identity import resolve_duplicates
from tailwise.ingest.impute import impute_demographics
from tailwise.ingest.outcome import TableOutcome
from tailwise.params import IngestParams
from tailwise.privacy import pseudonymise
from tailwise.schema import CLEAN_USERS, PII_COLUMNS, USERS

INCOME_BANDS = ("low", "lower_mid", "upper_mid", "high")


@dataclass
class UsersResult:
    clean: pd.DataFrame
    user_map: pd.DataFrame  # source_user_id, user_id, status, consent_tracking
    merges: pd.DataFrame
    outcome: TableOutcome
    quarantine_sql: str
    corrections_sql: str
    extras: list[str] = field(default_factory=list)


def corrections(p: IngestParams) -> list[parse.Check]:
    c = parse.Check
    return [
        c("age", "raw_age IS NOT NULL AND parsed_age IS NULL", "not a number"),
        c(
            "age",
            f"parsed_age NOT BETWEEN {p.age_min} AND {p.age_max}",
            f"outside the possible range {p.age_min}..{p.age_max}",
        ),
        c(
            "country",
            "raw_country IS NOT NULL AND NOT regexp_full_match(upper(raw_country), '[A-Z]{2}')",
            "not an ISO-3166 alpha-2 code",
        ),
        c(
            "income_band",
            f"raw_income_band IS NOT NULL AND lower(replace(raw_income_band, ' ', '_')) "
            f"NOT IN {INCOME_BANDS}",
            f"not one of {', '.join(INCOME_BANDS)}",
        ),
        c(
            "signup_at",
            "raw_signup_at IS NOT NULL AND parsed_signup_at IS NULL",
            "not ISO-8601 or epoch seconds",
        ),
        c(
            "signup_at",
            f"NOT ({parse.in_time_window('parsed_signup_at', p)})",
            parse.time_window_reason(p),
        ),
        c(
            "consent_personalization",
            "raw_consent_personalization IS NOT NULL AND consent_personalization IS NULL",
            "not a yes/no value; treated as no consent",
        ),
        c(
            "consent_tracking",
            "raw_consent_tracking IS NOT NULL AND consent_tracking IS NULL",
            "not a yes/no value; treated as no consent",
        ),
    ]


def typed_sql(
    types: dict[str, str], p: IngestParams, extras_cat: list[str], extras_num: list[str]
) -> str:
    t = types
    inner = [
        f"{parse.key('user_id', t['user_id'])} AS user_id",
        f"{parse.raw_text('age', t['age'])} AS raw_age",
        f"{parse.number('age', t['age'])} AS parsed_age",
        f"lower({parse.text('gender', t['gender'])}) AS gender",
        f"{parse.raw_text('country', t['country'])} AS raw_country",
        f"{parse.text('region', t['region'])} AS region",
        f"{parse.raw_text('income_band', t['income_band'])} AS raw_income_band",
        f"{parse.raw_text('signup_at', t['signup_at'])} AS raw_signup_at",
        f"{parse.timestamp('signup_at', t['signup_at'])} AS parsed_signup_at",
        *(
            f"{parse.raw_text(c, t[c])} AS raw_{c}"
            for c in ("consent_personalization", "consent_tracking")
        ),
        *(
            f"{_consent(c, t[c], p)} AS {c}"
            for c in ("consent_personalization", "consent_tracking")
        ),
        *(f"{parse.raw_text(c, t[c])} AS {c}" for c in PII_COLUMNS),
        *(f"{parse.text(parse.sql_ident(c), t[c])} AS {parse.sql_ident(c)}" for c in extras_cat),
        *(f"{parse.number(parse.sql_ident(c), t[c])} AS {parse.sql_ident(c)}" for c in extras_num),
    ]
    lo, hi = p.age_min, p.age_max
    return f"""
        SELECT *,
          CASE WHEN parsed_age BETWEEN {lo} AND {hi} THEN CAST(round(parsed_age) AS INTEGER) END AS age,
          CASE WHEN regexp_full_match(upper(raw_country), '[A-Z]{{2}}') THEN upper(raw_country) END AS country,
          CASE WHEN lower(replace(raw_income_band, ' ', '_')) IN {INCOME_BANDS}
               THEN lower(replace(raw_income_band, ' ', '_')) END AS income_band,
          CASE WHEN {parse.in_time_window("parsed_signup_at", p)}
               THEN parsed_signup_at END AS signup_at
        FROM (SELECT {", ".join(inner)} FROM raw_users)
    """


def _consent(col: str, source_type: str, p: IngestParams) -> str:
    """A source with no consent column at all gets params ingest.consent_default."""
    if source_type == "NULL":
        return "TRUE" if p.consent_default else "FALSE"
    return parse.boolean(col, source_type)


def ingest_users(
    con: duckdb.DuckDBPyConnection,
    types: dict[str, str],
    p: IngestParams,
    key: bytes,
    erased: set[str],
    extras_cat: list[str],
    extras_num: list[str],
) -> UsersResult:
    con.execute(
        f"CREATE OR REPLACE TABLE typed_users AS {typed_sql(types, p, extras_cat, extras_num)}"
    )
    df = con.execute("SELECT * FROM typed_users WHERE user_id IS NOT NULL").df()
    outcome = TableOutcome("users", input=_count(con, "SELECT count(*) FROM typed_users"))
    outcome.quarantined = outcome.input - len(df)
    if outcome.quarantined:
        outcome.reasons["quarantined"]["user_id: required value is missing"] = outcome.quarantined

    df = _merge_repeated_ids(df, outcome)
    ident = resolve_duplicates(
        df[["user_id", "email", "phone", "full_name", "signup_at"]],
        name_threshold=p.name_similarity,
    )
    merges = ident.loc[ident["rule"] != "self"].reset_index(drop=True)
    for rule, n in merges["rule"].value_counts().items():
        outcome.reasons["duplicates_merged"][f"near-duplicate person ({rule})"] = int(n)
    outcome.duplicates_merged += len(merges)
    df = _merge_clusters(df, ident)

    excluded = _exclusions(df, ident, key, erased, outcome)
    status = pd.Series("kept", index=df.index).where(~excluded, "excluded_no_consent")
    canon = dict(zip(df["user_id"], status, strict=True))
    tracking = dict(zip(df["user_id"], df["consent_tracking"], strict=True))
    user_map = ident.rename(columns={"user_id": "source_user_id", "canonical_user_id": "user_id"})
    user_map["status"] = user_map["user_id"].map(canon)
    user_map["consent_tracking"] = user_map["user_id"].map(tracking).astype(bool)

    clean = df.loc[~excluded].reset_index(drop=True)
    outcome.kept = len(clean)
    outcome.columns_without_values = _without_values(clean, types)
    kept_ids = set(clean["user_id"])
    return UsersResult(
        clean=clean,
        user_map=user_map[["source_user_id", "user_id", "status", "consent_tracking"]],
        merges=merges.loc[merges["canonical_user_id"].isin(kept_ids)].reset_index(drop=True),
        outcome=outcome,
        quarantine_sql=_quarantine_sql(types["user_id"]),
        corrections_sql=parse.corrections_sql(
            "users", "user_id", corrections(p), KEPT_USERS, user_col="canonical_user_id"
        ),
        extras=[*extras_cat, *extras_num],
    )


# Side files (corrections) only keep rows of people whose data the clean tables keep.
KEPT_USERS = (
    "(SELECT t.*, m.user_id AS canonical_user_id FROM typed_users t "
    "JOIN user_map m ON m.source_user_id = t.user_id AND m.status = 'kept')"
)


CONSENT_COLUMNS = ("consent_personalization", "consent_tracking")


def _without_values(clean: pd.DataFrame, types: dict[str, str]) -> list[str]:
    """Optional contract columns no kept user has a value for (before imputation); a
    consent column counts when the source had none, since the default then stands in."""
    return [
        c.name
        for c in USERS.columns
        if not c.required
        and (types[c.name] == "NULL" if c.name in CONSENT_COLUMNS else clean[c.name].isna().all())
    ]


def _exclusions(
    df: pd.DataFrame, ident: pd.DataFrame, key: bytes, erased: set[str], outcome: TableOutcome
) -> pd.Series:
    """People without consent, or any of whose ids was erased, are excluded."""
    consent = df["consent_personalization"].astype(bool)
    erased_ids = ident.loc[pseudonymise(ident["user_id"], key).isin(erased), "canonical_user_id"]
    is_erased = df["user_id"].isin(set(erased_ids))
    outcome.reasons["excluded_no_consent"]["no personalization consent"] = int((~consent).sum())
    if is_erased.any():
        n = int((is_erased & consent).sum())
        outcome.reasons["excluded_no_consent"]["erased on request"] = n
    excluded = ~consent | is_erased
    outcome.excluded_no_consent = int(excluded.sum())
    return excluded


def finish_users(
    clean: pd.DataFrame, key: bytes, event_country: pd.DataFrame, extras: list[str]
) -> pd.DataFrame:
    """Impute demographics and replace personal data by keyed hashes."""
    users = impute_demographics(clean, event_country)
    for col in PII_COLUMNS:
        users[f"{col}_hmac"] = pseudonymise(_normalised_pii(users, col), key)
    cols = [*CLEAN_USERS, *extras]
    return users[cols]


def _normalised_pii(users: pd.DataFrame, col: str) -> pd.Series:
    from tailwise.ingest import identity

    fn = {
        "email": identity.normalise_email,
        "phone": identity.normalise_phone,
        "full_name": identity.normalise_name,
    }[col]
    return fn(users[col])


def _merge_repeated_ids(df: pd.DataFrame, outcome: TableOutcome) -> pd.DataFrame:
    """Rows sharing a user_id are one account: first non-null value wins, consent is AND."""
    for col in ("consent_personalization", "consent_tracking"):
        # Missing or unreadable consent is no consent.
        df[col] = df[col].astype("boolean").fillna(False).astype(bool)
    df["source_records"] = 1
    repeated = len(df) - df["user_id"].nunique()
    if repeated:
        outcome.duplicates_merged += repeated
        outcome.reasons["duplicates_merged"]["same user_id delivered again"] = repeated
        df = _combine(df, "user_id")
    return df


def _merge_clusters(df: pd.DataFrame, ident: pd.DataFrame) -> pd.DataFrame:
    canon = dict(zip(ident["user_id"], ident["canonical_user_id"], strict=True))
    df = df.assign(_canonical=df["user_id"].map(canon))
    df["_first"] = df["user_id"] != df["_canonical"]  # the canonical row sorts first
    df = df.sort_values(["_canonical", "_first", "signup_at"], kind="stable")
    merged = _combine(df.drop(columns=["user_id", "_first"]), "_canonical")
    return merged.rename(columns={"_canonical": "user_id"})


def _combine(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """Collapse rows sharing `by`; only groups of two or more pay for the groupby."""
    multi = df[by].duplicated(keep=False)
    if not multi.any():
        return df.reset_index(drop=True)
    grouped = df.loc[multi].groupby(by, sort=False)
    out = grouped.first()
    out["source_records"] = grouped["source_records"].sum()
    for col in ("consent_personalization", "consent_tracking"):
        # Any record that withholds consent withholds it for the person.
        out[col] = grouped[col].min().astype(bool)
    return pd.concat([df.loc[~multi], out.reset_index()], ignore_index=True)


def _quarantine_sql(id_type: str) -> str:
    pii = ", ".join(PII_COLUMNS)
    return f"""
        SELECT 'users' AS table_name, 'user_id' AS column_name, NULL AS value,
               'required value is missing' AS reason,
               to_json(t) AS row_json FROM (SELECT * EXCLUDE ({pii}) FROM raw_users
               WHERE {parse.key("user_id", id_type)} IS NULL) t
    """


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0
