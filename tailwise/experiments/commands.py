"""`tailwise experiments ...`: the command group of experimentation.

The group lives here so every stage can add its commands to it (serving adds `validate`,
which checks rules and model versions the way a replica does at start).
"""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Experiments as code: check definitions, read results.", no_args_is_help=True
)
