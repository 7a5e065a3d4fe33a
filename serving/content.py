"""POST /content: a slot's template filled for one user, on the recommendation graph.

    ContentRequest --graph.recommend (the /recommend pipeline, k = the slot's items)
                   --graph.profile (the user's online features, at the same time)
                   --catalogue fields of the items and of the user's recent items
                     (the in-memory item table)
                   --tailwise.content: variables, slot choice, rendering, fallback
                   --> ContentResponse (HTML and JSON, request id, experiment, variant)

Same key rule, validation, error shape and degraded mode as /recommend: with Redis down
the items are the graph's in-memory fallback, the profile is empty and the slot's rules
pick from what is left (often the fallback). A template error or missing variable never
answers 500: the fallback renders and `tailwise_content_errors` counts it. The experiment
hook: an `Assigner` given to `ContentRoute`, else the experiment fields of the
recommendation answer (tailwise.content.slots).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException

from serving import api
from serving.auth import ApiKeys
from serving.errors import AUTH_RESPONSES, ERROR, ERROR_RESPONSES
from serving.graph import Answer, RecommendGraph, Request
from serving.metrics import ServingMetrics
from serving.replica import Replica
from tailwise.content.manifest import ManifestError
from tailwise.content.render import Library, Rendered
from tailwise.content.slots import Assigner, Assignment, assignment_from_answer
from tailwise.content.variables import ITEM_FIELDS, Inputs, build_variables, recent_item_ids

logger = logging.getLogger("tailwise.serving")


class ExperimentRouter(Protocol):
    """The replica's experiments, when it runs any (`replica.experiments`): the answer of
    the user's variant, who records it (None: nobody), and the routing (None: no
    experiment) whose exposure the caller logs after the response."""

    async def recommend(
        self, graph: RecommendGraph, req: Request, log: bool
    ) -> tuple[Answer, Any, Any]: ...


@dataclass
class ContentAnswer:
    rendered: Rendered
    answer: Answer
    request: Request
    variables: dict[str, Any]
    recorder: Any = None  # records the answer (cache, served log) after the response
    routed: Any = None  # the experiment routing, logged as an exposure after the response


class ContentService:
    """Variables for a user and a slot from the graph, and the slot rendered with them."""

    def __init__(
        self,
        library: Library,
        assigner: Assigner | None = None,
        router: ExperimentRouter | None = None,
    ) -> None:
        self.library, self.assigner, self.router = library, assigner, router

    async def variables(
        self,
        graph: RecommendGraph,
        user_id: str,
        slot: str,
        context: api.ContentContext,
        request_id: str,
    ) -> ContentAnswer:
        """The variables (rendered is left empty) with the answer and who records it."""
        k = max(self.library.slot(slot).items, 1)
        req = Request(
            user_id=user_id,
            k=k,
            device=context.device,
            country=context.country,
            timestamp=context.timestamp,
            request_id=request_id,
        )
        recorder: Any = graph
        routed: Any = None
        if self.router is not None:  # the user's variant answers, as /recommend would
            answer, recorder, routed = await self.router.recommend(graph, req, False)
        else:
            answer = await graph.recommend(req)
        # The features the recommendation read; a read of its own where it read none
        # (a holdout's popular list, Redis down).
        profile = answer.profile if answer.profile is not None else await graph.profile(user_id)
        items = answer.body.get("items", [])[: self.library.slot(slot).items]
        catalogue = _catalogue(graph, [str(it["item_id"]) for it in items])
        recent = _catalogue(graph, recent_item_ids(profile))
        inputs = Inputs(
            user_id=user_id,
            profile=profile,
            device=context.device,
            country=context.country,
            timestamp=context.timestamp,
            daypart=context.daypart,
            items=[
                {**row, "reason": it.get("reason")}
                for it, row in zip(items, catalogue, strict=True)
            ],
            recent=catalogue_rows_known(recent),
        )
        empty = Rendered(slot, "", "", "", {"text": "", "url": ""}, [])
        return ContentAnswer(empty, answer, req, build_variables(inputs), recorder, routed)

    def assignment(
        self, user_id: str, slot: str, answer: Answer, routed: Any = None
    ) -> Assignment | None:
        """From the assigner when given, else the experiment routing (its variant's
        `template`), else the experiment fields of the answer."""
        definition = self.library.slot(slot)
        if self.assigner is not None:
            return self.assigner.assign(user_id, slot, definition.experiment)
        if routed is not None:
            fields = routed.fields
            return Assignment(
                str(fields["experiment"]),
                str(fields["variant"]),
                fields.get("propensity"),
                getattr(routed.variant, "template", None),
            )
        return assignment_from_answer(answer.body, definition)

    async def render(
        self,
        graph: RecommendGraph,
        user_id: str,
        slot: str,
        context: api.ContentContext,
        request_id: str = "",
    ) -> ContentAnswer:
        out = await self.variables(graph, user_id, slot, context, request_id)
        assignment = self.assignment(user_id, slot, out.answer, out.routed)
        out.rendered = self.library.render(slot, out.variables, assignment)
        return out


async def segment_variables(
    graph: RecommendGraph, library: Library, slot: str, segment: str
) -> dict[str, Any]:
    """Variables of a block for a whole segment (`tailwise content push`): the segment's
    name and the popular (cold-start) items, with no user and no context."""
    k = max(library.slot(slot).items, 1)
    answer = graph.pipeline.cold_start(Request(user_id="", k=k), set())
    items = answer.body.get("items", [])[: library.slot(slot).items]
    catalogue = _catalogue(graph, [str(it["item_id"]) for it in items])
    rows = [{**row, "reason": it.get("reason")} for it, row in zip(items, catalogue, strict=True)]
    return build_variables(Inputs(user_id="", profile={"segment_name": segment}, items=rows))


def catalogue_rows_known(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Recent items the catalogue knows (an unknown id has no title to show)."""
    return [r for r in rows if r.get("title")]


def _catalogue(graph: RecommendGraph, item_ids: list[str]) -> list[dict[str, Any]]:
    if not item_ids:
        return []
    columns = graph.reader.items.lookup(item_ids, ITEM_FIELDS)
    rows = []
    for n, item_id in enumerate(item_ids):
        row = {name: values[n] for name, values in columns.items()}
        row["item_id"] = item_id
        rows.append(row)
    return rows


class ContentRoute:
    def __init__(self, replica: Replica, assigner: Assigner | None = None) -> None:
        self.replica, self.assigner = replica, assigner
        self.problem: str | None = None
        self.service: ContentService | None = None
        folder = replica.config.content_dir
        try:
            router = getattr(replica, "experiments", None)  # when the replica runs any
            self.service = ContentService(Library.load(folder), assigner, router)
        except (ManifestError, OSError, UnicodeDecodeError) as exc:
            self.problem = f"content is not configured ({folder}): {exc}"
            logger.warning("/content is off: %s", self.problem)

    async def content(
        self, body: api.ContentRequest, background: BackgroundTasks
    ) -> dict[str, Any]:
        """A slot's content for a user: rendered HTML and its JSON (headline, call to
        action, items), with the request id and the experiment that chose the template."""
        started = time.perf_counter()
        metrics: ServingMetrics = self.replica.metrics
        if self.service is None:
            metrics.count("/content", 503, time.perf_counter() - started)
            raise HTTPException(503, {"error": self.problem})
        if body.slot not in self.service.library.slots:
            known = ", ".join(sorted(self.service.library.slots))
            problem = f"unknown slot {body.slot!r}; known slots: {known}"
            metrics.count("/content", 404, time.perf_counter() - started)
            raise HTTPException(  # a well-formed name the manifest lacks: no such resource
                404,
                {
                    "error": f"invalid request: slot: {problem}",
                    "detail": [{"field": "slot", "problem": problem}],
                },
            )
        graph = self.replica.graph
        out = await self.service.render(
            graph, body.user_id, body.slot, body.context, uuid.uuid4().hex
        )
        if out.recorder is not None:
            background.add_task(out.recorder.record, out.request, out.answer)
        experiments = self.service.router
        if out.routed is not None and experiments is not None:
            log = getattr(experiments, "log", None)
            if log is not None:  # the exposure, as /recommend logs it
                background.add_task(log, self.replica.aclient, out.request, out.routed)
        _count(metrics, out.rendered)
        metrics.count("/content", 200, time.perf_counter() - started)
        return response_body(out)


def response_body(out: ContentAnswer) -> dict[str, Any]:
    r, a = out.rendered, out.rendered.assignment
    return {
        "request_id": out.answer.body.get("request_id") or out.request.request_id,
        "model_version": out.answer.body.get("model_version", ""),
        "slot": r.slot,
        "template": r.template,
        "html": r.html,
        "content": r.payload(),
        "fallback": r.fallback,
        "experiment": a.experiment if a else None,
        "variant": a.variant if a else None,
        "propensity": a.propensity if a else None,
        "degraded": bool(out.answer.body.get("degraded")),
    }


def _count(metrics: ServingMetrics, rendered: Rendered) -> None:
    metrics.content.labels(
        slot=rendered.slot, outcome="fallback" if rendered.fallback else "template"
    ).inc()
    for error in rendered.errors:
        metrics.content_errors.labels(
            slot=rendered.slot, template=error.template, kind=error.kind
        ).inc()
        logger.warning(
            "content %s/%s: %s (%s)", rendered.slot, error.template, error.kind, error.message
        )


def register_content(
    app: FastAPI, replica: Replica, keys: ApiKeys, assigner: Assigner | None = None
) -> ContentRoute:
    """POST /content on `app`, with /recommend's key rule and error bodies."""
    route = ContentRoute(replica, assigner)
    app.post(
        "/content",
        response_model=api.ContentResponse,
        dependencies=[Depends(keys.for_recommend)],
        responses={
            **ERROR_RESPONSES,
            **AUTH_RESPONSES,
            404: {**ERROR, "description": "No such slot in the content manifest"},
            503: {**ERROR, "description": "No valid content manifest (content/slots.yaml)"},
        },
    )(route.content)
    return route


__all__ = ["ContentRoute", "ContentService", "register_content"]
