"""report.md: the lab's sections, written from the result records only.

Every claim in the text is derived from the numbers passed in; nothing is re-measured
and nothing is hard-coded about how a model "usually" behaves. The sections, in report
order, are the registry :data:`SECTIONS`; each lives in ``report.sections``, the analysis
behind the discussion in ``report.findings``, the number formats in ``report.fmt``.

Example::

    from quantbench.report.render import render_markdown
    text = render_markdown(run, results, figures={"size": Path("plots/size.png")})
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantbench.inert import md_document
from quantbench.report.context import (
    CompareContext,
    PageFigures,
    ReportContext,
    SensitivityContext,
    SweepContext,
)
from quantbench.report.sections import (
    accuracy,
    compare,
    discussion,
    environment,
    header,
    latency,
    limits,
    machines,
    method,
    recommendation,
    sensitivity,
    size,
)
from quantbench.results import CellResult

if TYPE_CHECKING:
    from quantbench.compare import Comparison
    from quantbench.machines import MachineComparison
    from quantbench.sensitivity import Sensitivity


@dataclass(frozen=True)
class Section:
    """One section of report.md: ``render(ctx)`` gives the lines under ``title`` (None or
    empty: the section is left out). ``title`` None: the section writes its own heading.
    ``key`` is what a figure's ``slot`` names (``report.figures``). ``ctx`` is a
    :class:`ReportContext` in :data:`SECTIONS`, a :class:`SweepContext` in
    :data:`SWEEP_SECTIONS`."""

    key: str
    title: str | None
    render: Callable[[Any], list[str] | None]


# The report, top to bottom. "accuracy" and "fallback" exclude each other: section 6 is
# about real data when some variant was scored on it, else about fallback alone.
SECTIONS: tuple[Section, ...] = (
    Section("header", None, header.header),
    Section("recommendation", "## Recommendation", recommendation.recommendation),
    Section("models", "## 1. Models and model size", size.models),
    Section("method", "## 2. How quantization was done", method.method),
    Section("size", "## 3. Model size", size.size),
    Section("latency", "## 4. Latency", latency.latency),
    Section("memory", "### Memory and time to prepare", latency.memory),
    Section("limits", "### How close to the limit", limits.limits_section),
    Section("discussion", "## 5. Discussion", discussion.discussion),
    Section("accuracy", "## 6. Accuracy on real data", accuracy.accuracy),
    Section("fallback", "## 6. Accuracy-aware fallback", accuracy.fallback_only),
    Section("environment", "## Environment", environment.environment),
)


# A report across machines (``report --sweep``; compare.md of ``compare --sweep``).
SWEEP_SECTIONS: tuple[Section, ...] = (
    Section("sweep_header", None, machines.header),
    Section("sweep_models", "## Models across machines", machines.models),
    Section("sweep_machines", "## Machines", machines.machines),
)

# compare.md (``quantbench compare``): runs against the first, a :class:`CompareContext`.
COMPARE_SECTIONS: tuple[Section, ...] = (
    Section("compare_header", None, compare.header),
    Section("compare_runs", None, compare.runs),
    Section("compare_gates", "## Gates", compare.gates),
    Section("compare_figures", None, compare.figures),
)

# sensitivity.md (``quantbench sensitivity``): a :class:`SensitivityContext`.
SENSITIVITY_SECTIONS: tuple[Section, ...] = (
    Section("sensitivity_header", None, sensitivity.header),
    Section("sensitivity_ranking", None, sensitivity.ranking),
)


def _sections(sections: tuple[Section, ...], ctx: Any) -> list[str]:
    lines: list[str] = []
    for section in sections:
        body = section.render(ctx)
        if not body:
            continue
        lines += ([section.title, ""] if section.title else []) + body
    return lines


def render_markdown(
    run: dict[str, Any],
    results: list[CellResult],
    figures: dict[str, Path] | None = None,
    plots_rel: str = "plots",
    failed: dict[str, str] | None = None,
) -> str:
    """The full report.md text; ``figures`` maps figure keys to written files, ``failed``
    maps figure keys to why they could not be drawn (said where they would have been).

    >>> text = render_markdown({"id": "r1"}, [])
    >>> text.startswith("# quantbench report: r1")
    True
    """
    ctx = ReportContext.build(run, results, figures, failed, plots_rel)
    lines = _sections(SECTIONS, ctx)
    # A failed figure whose section was left out is still said, at the end.
    lines += ctx.failure_lines()
    return md_document("\n".join(lines).rstrip() + "\n")


def render_sweep_markdown(
    cmp: MachineComparison,
    figures: dict[str, Path] | None = None,
    plots_rel: str = "plots",
    failed: dict[str, str] | None = None,
    heading: str | None = None,
) -> str:
    """The report across machines: :data:`SWEEP_SECTIONS` for ``cmp``; ``figures`` and
    ``failed`` are keyed by ``report.figures.sweep_figure_key``; ``heading`` (default
    ``quantbench report: sweep ID``) is the page's title."""
    heading = heading or f"quantbench report: {cmp.title}"  # escaped by the header section
    ctx = SweepContext(cmp, heading, dict(figures or {}), dict(failed or {}), plots_rel)
    return md_document("\n".join(_sections(SWEEP_SECTIONS, ctx)).rstrip() + "\n")


def render_compare_markdown(cmp: Comparison, figures: PageFigures) -> str:
    """compare.md's text: :data:`COMPARE_SECTIONS` for ``cmp``, with its figures."""
    return md_document("\n".join(_sections(COMPARE_SECTIONS, CompareContext(cmp, figures))))


def render_sensitivity_markdown(
    result: Sensitivity, calib_source: str, weights: str, figures: PageFigures
) -> str:
    """sensitivity.md's text: :data:`SENSITIVITY_SECTIONS` for ``result``."""
    ctx = SensitivityContext(result, calib_source, weights, figures)
    return md_document("\n".join(_sections(SENSITIVITY_SECTIONS, ctx)))
