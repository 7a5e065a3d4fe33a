"""The command line's console: where commands print, their exit codes, and how an
expected failure becomes one line instead of a traceback.

Every command module (tailwise.cli, tailwise.features.commands and the stages' commands)
prints through `console` (stderr; results a script reads go to stdout), shows long work
with `progress()` and wraps its work in `errors(...)`, passing its own exception types
that mean "a person must fix the input".

Exit codes: 0 success; 2 wrong usage (typer's own); 3 bad input (a file, mapping, model
version or parameter a person must fix; the message names it); 4 privacy key missing or
invalid; 5 a service (Redis) is unavailable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

EXIT_USAGE, EXIT_BAD_INPUT, EXIT_PRIVACY, EXIT_SERVICE = 2, 3, 4, 5

console = Console(stderr=True)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print `message` as one error line and exit with `code`."""
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


@contextmanager
def errors(*bad_input: type[Exception]) -> Iterator[None]:
    """Turn the project's expected failures, and a command's own `bad_input` types, into one
    clear line and a meaningful exit code."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from tailwise.errors import DataError
    from tailwise.features.store import FeatureStoreError
    from tailwise.ingest.errors import IngestError
    from tailwise.params import ParamsError
    from tailwise.privacy import PrivacyError
    from tailwise.redis_server import ServiceError
    from tailwise.versions import ModelNotFoundError

    shared: tuple[type[Exception], ...] = (
        DataError,
        IngestError,
        ParamsError,
        FeatureStoreError,
        ModelNotFoundError,
    )
    try:
        yield
    except shared + bad_input as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except PrivacyError as exc:
        fail(str(exc), EXIT_PRIVACY)
    except ServiceError as exc:
        fail(str(exc), EXIT_SERVICE)
    except RedisConnectionError as exc:
        fail(
            f"Redis does not answer ({exc}); check REDIS_URL or run `tailwise redis`", EXIT_SERVICE
        )


def progress(counts: bool = True) -> Progress:
    """A progress bar; `counts` shows done/total, else a percentage (fractional work)."""
    amount = TextColumn("{task.completed:,}/{task.total:,}") if counts else TaskProgressColumn()
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        amount,
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
