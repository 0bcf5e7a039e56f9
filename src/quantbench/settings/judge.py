"""What is measured and the bars a variant is judged by: the measures, fidelity to fp32,
the accuracy bar (``spec.judge``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from quantbench.errors import unknown_name
from quantbench.settings.base import Cli, Settings
from quantbench.settings.values import Fraction, NameList, PosInt, UnitFloat

MEASURES = ("size", "latency", "fidelity")


class Judge(Settings):
    """What is measured, and the bars."""

    title = "what is measured and the bars"

    measure: NameList = Field(
        default_factory=lambda: list(MEASURES), description="any of size, latency, fidelity"
    )
    fidelity_batch_size: PosInt = Field(
        4, description="inputs the outputs are compared with fp32 on"
    )
    min_cosine: UnitFloat = Field(
        0.99, description='"keeps fidelity": cosine to fp32 at least this ...'
    )
    min_top1: UnitFloat = Field(
        0.99, description="... and top-1 agreement (classifiers) at least this"
    )
    max_accuracy_drop: Annotated[Fraction, Cli(implies=(("fallback", True),))] = Field(
        0.01, description="the accuracy bar: keep >= (1 - this) x fp32's metric (MLPerf: 99%)"
    )

    @field_validator("measure")
    @classmethod
    def _known_measures(cls, value: list[str]) -> list[str]:
        for m in value:
            if m not in MEASURES:
                raise ValueError(str(unknown_name("measure", m, MEASURES)))
        return value
