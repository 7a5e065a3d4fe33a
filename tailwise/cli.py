"""The `tailwise` command line: one entry point for every stage.

Exit codes: 0 success; 2 wrong usage; 3 bad input (a file, mapping or parameter a
person must fix; the message names it); 4 privacy key missing or invalid; 5 a service
(Redis) is unavailable (tailwise.console defines them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tailwise.console import EXIT_BAD_INPUT, EXIT_SERVICE, console, errors, fail, progress
from tailwise.experiments.commands import app as experiments_app
from tailwise.experiments.commands import simulate
from tailwise.features.commands import app as features_app

if TYPE_CHECKING:
    from tailwise.synthetic.config import GenerateConfig

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
app.add_typer(features_app, name="features")
app.add_typer(experiments_app, name="experiments")
app.command()(simulate)


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Directory to write the raw tables into.")],
    users: Annotated[int | None, typer.Option(help="Number of real people.")] = None,
    items: Annotated[int | None, typer.Option(help="Number of catalogue items.")] = None,
    days: Annotated[int | None, typer.Option(help="Days of activity, ending at end_date.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed; same seed, same tables.")] = None,
    shift: Annotated[
        Path | None,
        typer.Option(
            help="YAML/JSON file with a distribution shift (keys at, top_taste, device_mix, "
            "new_items, as generate.shift in params.yaml); replaces params' shift."
        ),
    ] = None,
    no_defects: Annotated[
        bool, typer.Option("--no-defects", help="Clean data: every defect rate 0.")
    ] = False,
    profile: Annotated[
        str | None,
        typer.Option(
            help="Reshape the output into a dataset shape (listed above; sizes from the "
            "profile unless --users/--items/--days are given; seeded; what was done goes to "
            "profile.json)."
        ),
    ] = None,
    params: Annotated[Path, typer.Option(help="params.yaml with a generate: section.")] = Path(
        "params.yaml"
    ),
) -> None:
    """Write a synthetic e-commerce data set (users, items, events, ground truth, defects),
    or with --profile one reshaped into a shape real sources have:

    \b
    ratings-1990s: explicit 1-5 ratings only (one per user and item), dated 1995-1999, no context
    grocery-rebuy: purchases only, most of them re-buys of a few staples, ending yesterday
    no-attributes: items with only item_id, users with only user_id (no consent columns)
    sparse-tail: few sessions per user (Zipf), eight burst days over a year ending yesterday, most items rarely or never seen
    big-catalogue: 20,000+ items, at least 10x the users
    minimal: only the required columns, tiny (200 users, 100 items, 30 days)

    Profiles without consent columns need ingest.consent_default: true in params.yaml.
    """
    from tailwise.params import load_params
    from tailwise.synthetic import generate as run_generate
    from tailwise.synthetic.profiles import apply_profile, profile_sizes

    with errors():
        base = load_params(params).generate
        overrides: dict[str, Any] = {
            k: v
            for k, v in dict(users=users, items=items, days=days, seed=seed).items()
            if v is not None
        }
        if profile is not None:
            overrides.update(profile_sizes(profile, overrides))
        if shift is not None:
            overrides["shift"] = _read_shift(shift)
        if no_defects:
            overrides["defects"] = dict.fromkeys(type(base.defects).model_fields, 0.0)
        cfg = _generate_config(base, overrides)
        with progress() as bar:
            task = bar.add_task("generating users", total=cfg.users)
            summary = run_generate(cfg, out, progress=lambda done: bar.update(task, completed=done))
        rows = summary.rows
        if profile is not None:
            rows = apply_profile(profile, cfg, out)
    console.print(
        f"[green]wrote[/green] {out}"
        + (f" (profile {profile})" if profile else "")
        + ": "
        + ", ".join(f"{name} {n:,}" for name, n in rows.items())
        + f" in {summary.seconds:.1f}s"
    )


def _read_shift(path: Path) -> Any:
    """The shift mapping of a YAML (or JSON) file; bad files are ParamsError."""
    import yaml

    from tailwise.params import ParamsError

    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ParamsError(f"--shift {path}: cannot read a YAML mapping: {exc}") from exc


def _generate_config(base: GenerateConfig, overrides: dict[str, Any]) -> GenerateConfig:
    """params' generate section with the flags applied; errors name flag and field."""
    from pydantic import ValidationError

    from tailwise.params import ParamsError

    try:
        return base.model_validate({**base.model_dump(), **overrides})
    except ValidationError as exc:
        messages = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e["loc"])
            msg = e["msg"].removeprefix("Value error, ")
            # Whole-config checks have no location; the shift's window check names shift.at.
            key = str(e["loc"][0]) if e["loc"] else ("shift" if "shift." in msg else "")
            where = f"--{key.replace('_', '-')}" if key in overrides else "params generate"
            field = f" {loc}" if loc and loc != key else ""
            messages.append(f"{where}{field}: {msg}")
        raise ParamsError("; ".join(messages)) from exc


@app.command()
def ingest(
    out: Annotated[Path, typer.Option(help="Directory for the clean tables and reports.")],
    source: Annotated[
        Path | None,
        typer.Option(help="Directory holding users/items/events as CSV, Parquet or JSONL."),
    ] = None,
    mapping: Annotated[
        Path | None, typer.Option(help="YAML mapping of any files and columns onto the contract.")
    ] = None,
    served: Annotated[
        Path | None,
        typer.Option(
            help="Events the API accepted (data/served/events, written by `tailwise events "
            "consume`): they join the clean events, so retraining sees served traffic."
        ),
    ] = None,
    params: Annotated[Path, typer.Option(help="params.yaml with an ingest: section.")] = Path(
        "params.yaml"
    ),
    show: Annotated[bool, typer.Option(help="Print the quality report table.")] = True,
) -> None:
    """Validate, clean, deduplicate and pseudonymise raw data into clean Parquet tables."""
    from tailwise.ingest.pipeline import STEPS, run_ingest
    from tailwise.params import load_params
    from tailwise.privacy import load_key
    from tailwise.settings import Settings

    with errors():
        p = load_params(params).ingest
        key = load_key(Settings())
        with progress() as bar:
            task = bar.add_task("ingest", total=len(STEPS))

            def step(name: str) -> None:
                bar.update(task, description=f"ingest: {name}", completed=STEPS.index(name))

            report = run_ingest(
                out, p, key, source=source, mapping=mapping, served=served, step=step
            )
            bar.update(task, description="ingest: done", completed=len(STEPS))
    if show:
        print_report(report)
    console.print(
        f"[green]wrote[/green] {out} (quality_report.json, data_inventory.md) "
        f"in {report['seconds']:.1f}s"
    )


def print_report(report: dict[str, Any]) -> None:
    out = Console()
    table = Table(
        title="Ingestion quality report (input = kept + merged + quarantined + no consent)"
    )
    labels = {
        "input": "input",
        "kept": "kept",
        "duplicates_merged": "merged",
        "quarantined": "quarantined",
        "excluded_no_consent": "no consent",
    }
    table.add_column("table")
    for label in [*labels.values(), "values fixed"]:
        table.add_column(label, justify="right")
    for name, t in report["tables"].items():
        cells = [f"{t[c]:,}" for c in labels]
        table.add_row(name, *cells, f"{sum(t['values_corrected'].values()):,}")
    out.print(table)
    reasons = Table(title="Reasons")
    for col in ("table", "outcome", "reason", "rows"):
        reasons.add_column(col, justify="right" if col == "rows" else "left")
    for name, t in report["tables"].items():
        for bucket, counts in [*t["reasons"].items(), ("value fixed", t["values_corrected"])]:
            for reason, n in counts.items():
                reasons.add_row(name, bucket, reason, f"{n:,}")
    out.print(reasons)
    inventory = Table(title="Data inventory")
    for col in ("data type", "rows", "duplicates", "nulls", "freshest (UTC)"):
        inventory.add_column(col)
    for d in report.get("inventory", []):
        nulls = ", ".join(f"{k} {v:.0%}" for k, v in d["null_rates"].items())
        inventory.add_row(
            d["data_type"],
            f"{d['rows']:,}",
            f"{d['duplicate_rate']:.1%}",
            nulls,
            str(d["freshness"])[:19],
        )
    out.print(inventory)
    for name, t in report["tables"].items():
        if t.get("columns_without_values"):
            out.print(f"{name}: no values for {', '.join(t['columns_without_values'])}")


@app.command()
def forget(
    user: Annotated[str, typer.Option(help="The user id to erase (canonical or merged).")],
    data: Annotated[Path, typer.Option(help="Ingest output directory.")] = Path("data/clean"),
    served: Annotated[
        Path, typer.Option(help="Served traffic logged by the API (tailwise events consume).")
    ] = Path("data/served"),
    online: Annotated[
        bool, typer.Option(help="Also erase the person from Redis (features, history, streams).")
    ] = True,
    store: Annotated[
        list[Path] | None,
        typer.Option(
            help="Folders to rewrite (default: data/raw, features, training, "
            "evaluation, models, monitoring/reports); repeatable."
        ),
    ] = None,
    dvc_cache: Annotated[Path, typer.Option(help="DVC cache to purge.")] = Path(".dvc/cache"),
    spill: Annotated[Path, typer.Option(help="The API's spill logs.")] = Path(".tailwise/spill"),
) -> None:
    """Erase a user everywhere: clean data, served logs, feature tables, training sets,
    model folders, reports, spill logs, the DVC cache and the online store; record the
    erasure so later ingests and replays cannot bring them back."""
    from tailwise.erasure import DEFAULT_STORES, forget_offline
    from tailwise.privacy import load_key
    from tailwise.settings import Settings

    settings = Settings()
    with errors():
        key = load_key(settings)
        if online:
            ids = _forget_online(user, data, key, settings)
        done = forget_offline(user, key, data, served, store or DEFAULT_STORES, dvc_cache, spill)
    console.print(
        f"erased {', '.join(done.ids)}: {done.clean_rows} clean rows, {done.served_rows} "
        f"served rows, {done.files.rows_removed} rows in {len(done.files.rewritten)} other "
        f"files, {done.spill_removed} spilled events, {len(done.cache_removed)} DVC cache "
        "objects"
    )
    if online:
        console.print(f"online store: {ids} keys and stream entries removed")
    if done.files.to_rebuild:
        shown = ", ".join(str(p) for p in done.files.to_rebuild[:5])
        console.print(
            f"[yellow]{len(done.files.to_rebuild)} files hold the person and cannot be "
            f"rewritten row by row ({shown}): rebuild them (`dvc repro`), then run this "
            "command again[/yellow]"
        )


def _forget_online(user: str, data: Path, key: bytes, settings: Any) -> int:
    """Record the erasure in the Redis ledger, then erase the person online."""
    import redis as redis_lib

    from tailwise.erasure import person_ids, record_online
    from tailwise.features.online import erase_online
    from tailwise.features.store import repo_config
    from tailwise.redis_clients import open_redis
    from tailwise.redis_server import rewrite_persistence

    ids = person_ids(user, data, key)
    try:
        client = open_redis(settings)
        project = settings.feast_project or repo_config(settings).project
        record_online(client, project, ids, key)
        removed = erase_online(client, project, ids, settings.event_partitions)
        rewrite_persistence(client)
    except redis_lib.ConnectionError as exc:
        fail(
            f"Redis at {settings.redis_url} did not answer ({exc}); nothing was erased; "
            f"run `tailwise forget --user {user}` when it is up (or with --no-online)",
            EXIT_SERVICE,
        )
    return removed


@app.command()
def contract() -> None:
    """Print the canonical data contract as Markdown."""
    from tailwise.schema import TIMESTAMP_RULE, contract_markdown

    sys.stdout.write(contract_markdown() + "\n" + TIMESTAMP_RULE + "\n")


@app.command()
def report(
    data: Annotated[Path, typer.Option(help="Ingest output directory.")] = Path("data/clean"),
) -> None:
    """Print the quality report of an ingest output."""
    path = data / "quality_report.json"
    if not path.exists():
        fail(f"{path} does not exist; run `tailwise ingest` first", EXIT_BAD_INPUT)
    print_report(json.loads(path.read_text()))


@app.command()
def redis(
    start: Annotated[
        bool, typer.Option(help="Start a local redis-server when none answers.")
    ] = True,
) -> None:
    """Check that Redis answers at REDIS_URL (and start a local one if needed)."""
    from tailwise.redis_server import ensure_redis
    from tailwise.settings import Settings

    settings = Settings()
    with errors():
        console.print(ensure_redis(settings.redis_url, settings.home / "redis", start=start))


def load_plugins() -> None:
    """Add the stages' commands (training, serving, monitoring) without importing them here."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="tailwise.commands"):
        entry.load()(app)


def main() -> None:
    from tailwise.quiet import quiet_third_party

    quiet_third_party()
    load_plugins()
    app()


if __name__ == "__main__":
    main()
