"""`tailwise serve`, `tailwise recommend` and `tailwise events ...`: the serving stage's commands.

Registered into the `tailwise` CLI through the `tailwise.commands` entry point, so the
shared package never imports serving code. One module per command family:

    serve.py       `tailwise serve` (foreground, or --background / --stop via background.py)
    background.py  a detached server: start it and wait until ready, stop it by its pid file
    recommend.py   `tailwise recommend`: batch recommendations through the serving graph
    events.py      `tailwise events consume`: served events and requests into Parquet
    experiments.py `tailwise experiments validate`; the bandits' refresh after a consume

The CLI imports these for every command: they import nothing heavy at module level.
"""

from __future__ import annotations

import typer

from serving.commands.events import app
from serving.commands.experiments import validate_experiments
from serving.commands.recommend import recommend
from serving.commands.serve import serve


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="events")
    root.command(name="serve")(serve)
    root.command(name="recommend")(recommend)
    from serving.content_commands import register as register_content
    from tailwise.experiments.commands import app as experiments

    experiments.command(name="validate")(validate_experiments)
    register_content(root)


__all__ = ["register"]
