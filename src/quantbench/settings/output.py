"""Where results go: the output directory, the results database, the deployable files
(``spec.output``)."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

from pydantic import Field

from quantbench.settings.base import Settings
from quantbench.settings.values import Flag, Text

DEFAULT_STORE = "quantbench.db"


class Output(Settings):
    """Where results go."""

    title = "output"

    out: Text | None = Field(
        None, description="output directory (default: quantbench-runs/<timestamp>)"
    )
    store: Text | None = Field(
        None,
        description="results database: a path or SQLAlchemy URL (default ./quantbench.db, "
        "or $QUANTBENCH_STORE)",
    )
    save_artifacts: Flag = Field(
        False,
        description="write each measured variant's deployable file under <out>/artifacts/ "
        "(the bytes that were timed and sized)",
    )


def default_out_dir() -> Path:
    """quantbench-runs/<timestamp>: where a run without ``out`` writes."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("quantbench-runs") / stamp


def default_store() -> str:
    """Where a run without ``store`` keeps its results: ``$QUANTBENCH_STORE`` or
    ``./quantbench.db``."""
    return os.environ.get("QUANTBENCH_STORE") or DEFAULT_STORE
