"""Third-party warnings a Tailwise user cannot act on, silenced once at the entry point.

`quiet_third_party()` runs first in `tailwise.cli.main` (every command, so every DVC stage
and the demo) and in each serving replica. Each silenced warning is listed in QUIETED
with the reason it says nothing the user can act on; anything else still shows.

Feast calls `warnings.simplefilter("once", ...)` when it is imported, which puts its own
filters in front of any set earlier; so besides the filters, the warning display itself
(`warnings.showwarning`) skips what QUIETED names, whoever reset the filters since.
TensorFlow's C++ logs are cut by TF_CPP_MIN_LOG_LEVEL=2 (errors only), read when
TensorFlow loads; its Python and absl loggers are set to errors.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Quieted:
    category: type[Warning]
    package: str  # the third-party package whose code the warning points at
    message: str  # regular expression, matched at the start of the message
    reason: str


QUIETED = (
    Quieted(
        RuntimeWarning,
        "feast",
        r"On demand feature view is an experimental feature",
        "Feast repeats it on every apply, materialise and lookup; Tailwise pins Feast and"
        " its tests cover the two on-demand views feature_repo/ defines",
    ),
    Quieted(
        DeprecationWarning,
        "ibis",
        r"fetch_(arrow_table|record_batch|arrow_reader)\(\) is deprecated",
        "ibis 12 calls DuckDB 2.0's old method names inside Feast's offline store; no"
        " Tailwise code calls them, and a newer ibis drops it",
    ),
    Quieted(
        DeprecationWarning,
        "evidently",
        r"",
        "Evidently's own modules use its deprecated APIs internally (its legacy renderers,"
        " text descriptors); monitoring/ calls only the current API and its pinned version",
    ),
    Quieted(
        DeprecationWarning,
        "litestar",
        r"",
        "litestar is imported by Evidently's UI modules, which Tailwise does not serve",
    ),
    Quieted(
        DeprecationWarning,
        "",
        r"numpy\.core is deprecated",
        "raised when pickled numpy objects from older libraries are loaded inside"
        " dependencies; Tailwise itself imports numpy's public API only",
    ),
    Quieted(
        UserWarning,
        "keras",
        r"",
        "Keras 2 (tf_keras, TF_USE_LEGACY_KERAS=1) warns about its own saving formats and"
        " layer options the two-tower export relies on; the exported model is tested",
    ),
    Quieted(
        DeprecationWarning,
        "tensorflow",
        r"",
        "TensorFlow's deprecations of its own internals; the training code is tested on"
        " the pinned version",
    ),
)
NOISY_LOGGERS = ("absl", "tensorflow", "h5py")


def _silenced(category: type[Warning], filename: str, message: str) -> bool:
    path = filename.replace("\\", "/")
    return any(
        issubclass(category, q.category)
        and (not q.package or f"/{q.package}/" in path or f"/tf_{q.package}/" in path)
        and re.match(q.message, message)
        for q in QUIETED
    )


def quiet_third_party() -> None:
    """Silence QUIETED and the TensorFlow/absl logs (call once, before the heavy imports)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for q in QUIETED:
        module = rf"({q.package}|tf_{q.package})(\.|$)" if q.package else ""
        warnings.filterwarnings("ignore", message=q.message, category=q.category, module=module)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    show = warnings.showwarning
    if getattr(show, "_tailwise", False):
        return

    def showwarning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        if not _silenced(category, filename, str(message)):
            show(message, category, filename, lineno, file, line)

    showwarning._tailwise = True  # type: ignore[attr-defined]
    warnings.showwarning = showwarning
