"""`tailwise content lint | preview | push | deliver`: templates checked, previewed and
pushed to a CMS.

lint needs only the content folder; preview and push read users and items through the
serving graph (`serving.batch.open_graph`: a model version, Feast and Redis, as
`tailwise recommend`), so what they show is what /content serves.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from tailwise.console import EXIT_BAD_INPUT, EXIT_SERVICE, console, errors, fail

if TYPE_CHECKING:  # the CLI loads this module for every command: nothing heavy at import
    from serving.graph import RecommendGraph
    from tailwise.content.push import Block, DeliveryReport
    from tailwise.content.render import Library

app = typer.Typer(
    help="Personalised content: lint the templates, preview a slot, push blocks to a CMS.",
    no_args_is_help=True,
)
T = TypeVar("T")
Content = Annotated[Path, typer.Option(help="Content folder (templates and slots.yaml).")]
Models = Annotated[Path, typer.Option(help="Model versions folder.")]
Model = Annotated[str | None, typer.Option(help="Model version (default: LATEST).")]
Data = Annotated[Path, typer.Option(help="Clean data (the users' history).")]


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="content")


def _library(content: Path) -> Library:
    from tailwise.content.manifest import ManifestError
    from tailwise.content.render import Library

    try:
        return Library.load(content)
    except ManifestError as exc:
        fail(str(exc))


def open_graph(content: Path, models: Path, model: str | None, data: Path) -> RecommendGraph:
    """The serving graph (no cache, nothing recorded) for preview and push."""
    from serving.batch import open_graph as open_batch_graph
    from serving.config import ServingConfig
    from tailwise.settings import Settings

    config = ServingConfig(
        models_dir=models, model_version=model, clean_dir=data, content_dir=content
    )
    return open_batch_graph(config, Settings())


def _run(graph: RecommendGraph, work: Callable[[], Awaitable[T]]) -> T:
    """`work` in one event loop; the graph's connections belong to it and close with it."""

    async def run() -> T:
        try:
            return await work()
        finally:
            pool = getattr(getattr(graph, "client", None), "connection_pool", None)
            if pool is not None:
                await pool.disconnect()

    return asyncio.run(run())


@app.command()
def lint(content: Content = Path("content")) -> None:
    """List variables the templates name that no request has (exit 3 when there are any)."""
    from tailwise.content.lint import lint as lint_library

    library = _library(content)
    findings = lint_library(library)
    for f in findings:
        typer.echo(f"{f.slot}/{f.template} ({f.file}): {{{{{f.name}}}}}: {f.problem}")
    n = sum(len(s.templates) for s in library.slots.values())
    if findings:
        console.print(f"[red]{len(findings)} problem(s)[/red] in {n} templates")
        raise typer.Exit(EXIT_BAD_INPUT)
    console.print(
        f"[green]ok[/green]: {n} templates in {len(library.slots)} slots, no unknown variable"
    )


@app.command()
def preview(
    slot: Annotated[str, typer.Option(help="The slot to preview.")],
    user: Annotated[str, typer.Option(help="The (pseudonymised) user id.")],
    out: Annotated[Path | None, typer.Option(help="HTML file to write.")] = None,
    device: Annotated[str | None, typer.Option(help="Request device.")] = None,
    country: Annotated[str | None, typer.Option(help="Request country (for the daypart).")] = None,
    content: Content = Path("content"),
    models: Models = Path("data/models"),
    model: Model = None,
    data: Data = Path("data/clean"),
) -> None:
    """Write an HTML page showing every template of SLOT for USER, the served one outlined."""
    from serving.api import ContentContext
    from serving.bundle import BundleError
    from serving.content import ContentService
    from tailwise.content.preview import preview_page, render_variants

    library = _library(content)
    _known_slot(library, slot)
    target = out or Path(".tailwise/content") / f"preview-{slot}-{_safe(user)}.html"
    with errors(BundleError):
        graph = open_graph(content, models, model, data)
        service = ContentService(library)
        context = ContentContext(device=device, country=country)
        fetched = _run(graph, lambda: service.variables(graph, user, slot, context, "preview"))
    assignment = service.assignment(user, slot, fetched.answer, fetched.routed)
    served, renders = render_variants(library, slot, fetched.variables, assignment)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(preview_page(user, slot, served, renders), encoding="utf-8")
    console.print(
        f"[green]wrote[/green] {target}: {len(renders)} variants; {user} is served {served!r}"
    )
    typer.echo(str(target))


@app.command()
def push(
    slot: Annotated[str, typer.Option(help="The slot whose blocks are pushed.")],
    url: Annotated[
        str | None, typer.Option(help="Webhook URL (default: slots.yaml push.url).")
    ] = None,
    users: Annotated[
        Path | None, typer.Option(help="User ids, one per line: one block per user (e-mail).")
    ] = None,
    segments: Annotated[
        str | None,
        typer.Option(help="Comma-separated segment names (default: the segment model's)."),
    ] = None,
    segment_changed_since: Annotated[
        datetime | None,
        typer.Option(
            help="One block per user whose segment changed after this time (the user_daily "
            "snapshots of `tailwise features build`); run it after each build to push changes."
        ),
    ] = None,
    report: Annotated[Path, typer.Option(help="Delivery report (JSON) to write.")] = Path(
        ".tailwise/content/push-report.json"
    ),
    content: Content = Path("content"),
    models: Models = Path("data/models"),
    model: Model = None,
    data: Data = Path("data/clean"),
) -> None:
    """Render one block per segment (or per user with --users, as a slot with audience
    `user` needs) and POST each, signed (Standard Webhooks), to the webhook. Blocks go
    through an outbox: what the receiver does not take stays there for `content deliver`."""
    from serving.bundle import BundleError

    library = _library(content)
    definition = _known_slot(library, slot)
    target, outbox, sender = _delivery(library, url)
    changes = _changes(segment_changed_since) if segment_changed_since else None
    if definition.audience == "user" and users is None and changes is None:
        fail(f"slot {slot!r} is rendered per user (audience: user): pass --users FILE")
    if changes is not None and not changes:
        console.print(f"no user changed segment since {segment_changed_since}: nothing to push")
    with errors(BundleError):
        graph = open_graph(content, models, model, data)
        blocks = _run(graph, lambda: _blocks(graph, library, slot, users, segments, changes))
    from tailwise.content.push import push as push_blocks

    manifest = library.manifest.push
    result = push_blocks(
        blocks, target, outbox, sender, manifest.attempts, manifest.backoff_seconds
    )
    _report(result, report, outbox.counts())


@app.command()
def deliver(
    url: Annotated[
        str | None, typer.Option(help="Webhook URL (default: slots.yaml push.url).")
    ] = None,
    report: Annotated[Path, typer.Option(help="Delivery report (JSON) to write.")] = Path(
        ".tailwise/content/push-report.json"
    ),
    content: Content = Path("content"),
) -> None:
    """Send what the outbox still holds (after the receiver was down)."""
    from tailwise.content.push import deliver as deliver_pending

    library = _library(content)
    _, outbox, sender = _delivery(library, url, need_url=False)
    manifest = library.manifest.push
    _report(
        deliver_pending(outbox, sender, manifest.attempts, manifest.backoff_seconds),
        report,
        outbox.counts(),
    )


def _known_slot(library: Library, slot: str) -> Any:
    try:
        return library.slot(slot)
    except KeyError as exc:
        fail(f"--slot: {exc.args[0]}")


def _delivery(library: Library, url: str | None, need_url: bool = True) -> tuple[str, Any, Any]:
    from tailwise.content.push import Outbox, WebhookSender

    settings = library.manifest.push
    target = url or settings.url or ""
    if need_url and not target:
        fail("no webhook URL: pass --url or set push.url in slots.yaml")
    secret = os.environ.get(settings.secret_env, "")
    if not secret:
        fail(f"{settings.secret_env} is not set: the webhook secret (whsec_...) signs every block")
    try:
        sender = WebhookSender(secret, timeout=settings.timeout_seconds)
    except ValueError as exc:
        fail(f"{settings.secret_env}: {exc}")
    return target, Outbox(Path(settings.outbox)), sender


def _changes(since: datetime) -> dict[str, dict[str, str]]:
    """User id -> {"from", "to"} for users whose segment changed after `since`."""
    from tailwise.content.changes import read_segment_changes
    from tailwise.settings import Settings

    try:
        frame = read_segment_changes(Settings().features_dir / "user_daily.parquet", since)
    except (ValueError, OSError) as exc:
        fail(f"--segment-changed-since: {exc}")
    return {r.user_id: {"from": r.previous, "to": r.current} for r in frame.itertuples(index=False)}


async def _blocks(
    graph: RecommendGraph,
    library: Library,
    slot: str,
    users: Path | None,
    segments: str | None,
    changes: dict[str, dict[str, str]] | None = None,
) -> list[Block]:
    from serving.api import ContentContext
    from serving.content import ContentService, segment_variables
    from tailwise.content.push import Block

    blocks = []
    if changes is not None:
        service = ContentService(library)
        for user, change in changes.items():
            out = await service.render(graph, user, slot, ContentContext(), f"push-{user}")
            blocks.append(Block(slot, user, {**_payload(out.rendered), "segment_change": change}))
        return blocks
    if users is not None:
        from tailwise.user_list import read_user_ids

        try:
            ids = read_user_ids(users)
        except (ValueError, OSError) as exc:
            fail(f"--users: {exc}")
        service = ContentService(library)
        for user in ids:
            out = await service.render(graph, user, slot, ContentContext(), f"push-{user}")
            blocks.append(Block(slot, user, _payload(out.rendered)))
        return blocks
    for segment in _segment_names(segments):
        variables = await segment_variables(graph, library, slot, segment)
        blocks.append(Block(slot, segment, _payload(library.render(slot, variables))))
    return blocks


def _payload(rendered: Any) -> dict[str, Any]:
    return {
        "template": rendered.template,
        "fallback": rendered.fallback,
        "html": rendered.html,
        **rendered.payload(),
    }


def _segment_names(segments: str | None) -> list[str]:
    if segments:
        return [s.strip() for s in segments.split(",") if s.strip()]
    from tailwise.settings import Settings

    path = Settings().features_dir / "segments_model.json"
    try:
        names = json.loads(path.read_text())["names"]
    except (OSError, ValueError, KeyError) as exc:
        fail(
            f"no segment names in {path} ({exc}): run `tailwise features build` or pass --segments"
        )
    return [str(n) for n in names]


def _report(result: DeliveryReport, path: Path, counts: dict[str, int]) -> None:
    body = {**result.as_dict(), "outbox": counts, "at": datetime.now(UTC).isoformat()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=2) + "\n")
    console.print(
        f"queued {result.queued}, delivered {len(result.delivered)}, pending {len(result.pending)},"
        f" rejected {len(result.rejected)} in {result.seconds:.1f} s; report: {path}"
    )
    if result.pending:
        console.print(
            "[yellow]the receiver did not take every block:[/yellow] they stay in the outbox; run `tailwise content deliver`"
        )
        raise typer.Exit(EXIT_SERVICE)
    if result.rejected:
        raise typer.Exit(EXIT_BAD_INPUT)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:64]
