"""Real data: what the models are evaluated, calibrated and trained on, and the metric a
Python caller hands over (``spec.data``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from quantbench.settings.base import Cli, Settings
from quantbench.settings.values import DataSource, PosInt


class Data(Settings):
    """Evaluation, calibration and training data."""

    title = "accuracy on real data"

    dataset: DataSource = Field(
        None,
        description="evaluation data for every model (a model's own wins): an ImageFolder "
        "directory, a .csv/.jsonl of labelled text, a .txt of sentences, or a mapping "
        "{path, kind, ...} (on the command line: a path or an inline mapping)",
    )
    limit: PosInt | None = Field(
        None, description="evaluate on a seeded subset of this many examples"
    )
    calibration: DataSource = Field(
        None,
        description="calibration data for static recipes (same forms as dataset; the same "
        "file is split, disjoint from evaluation)",
    )
    calibration_samples: PosInt = Field(
        128, description="calibration examples taken from `calibration`"
    )
    eval_batch_size: PosInt = Field(32, description="batch size when scoring the evaluation data")
    train_dataset: DataSource = Field(None, description="labelled data for qat-int8")
    eval_fn: Annotated[str | None, Cli(flag=False)] = Field(
        None,
        description="Python API only: the metric function handed to quantbench.run "
        "(eval_fn(model) -> float), held in that process as mem:eval_fn:<name>",
    )
