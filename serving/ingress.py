"""The Ray Serve deployment of the HTTP API: one replica = a `Replica`, its `Lifecycle`
and the FastAPI app of serving.routes over them.

The recommendation graph runs inside this deployment: a second deployment would add a
hop per request (bench/results/serve_load.md measures the floor). Ray Serve builds the app
per replica after the constructor (`__serve_build_asgi_app__`), so the routes close over
this replica's objects; the app's lifespan starts and stops the background work.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from ray import serve

from serving.auth import ApiKeys
from serving.config import ServingConfig
from serving.lifecycle import Lifecycle
from serving.replica import Replica
from serving.routes import build_api
from tailwise.quiet import quiet_third_party
from tailwise.settings import Settings

logger = logging.getLogger("tailwise.serving")


@serve.deployment
@serve.ingress()
class Ingress:
    def __init__(self, config: dict[str, Any], settings: dict[str, Any]) -> None:
        quiet_third_party()
        serving = ServingConfig.model_validate(config)
        self.replica = Replica(serving, Settings.model_validate(settings))
        self.keys = ApiKeys.from_config(serving)
        self.lifecycle = Lifecycle(self.replica)
        graph = self.replica.graph
        logger.info("serving model %s (project %s)", graph.bundle.version, graph.keys.project)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_api(self.replica, self.lifecycle, self.keys)
