"""What every section of report.md reads: the run, its cells, its figures, its reference sizes.

Example::

    >>> ctx = ReportContext.build({"id": "r1"}, [])
    >>> ctx.sizes
    {'vision': 224, 'text': 128}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantbench.report.figures import figures_at, sweep_figure_key
from quantbench.report.fmt import md_escape
from quantbench.results import CellResult
from quantbench.shapes import ref_sizes

if TYPE_CHECKING:
    from quantbench.compare import Comparison
    from quantbench.machines import MachineComparison
    from quantbench.sensitivity import Sensitivity


@dataclass
class ReportContext:
    """The inputs of one report. ``figures``: key -> written file; ``failed``: key -> why
    it could not be drawn; ``sizes``: reference input size per family (the run's spec,
    else the lab's), the one shape every single-number claim uses."""

    run: dict[str, Any]
    results: list[CellResult]
    figures: dict[str, Path] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    plots_rel: str = "plots"
    sizes: dict[str, int] = field(default_factory=dict)
    reported: set[str] = field(default_factory=set)  # failed figures already mentioned

    @classmethod
    def build(
        cls,
        run: dict[str, Any],
        results: list[CellResult],
        figures: dict[str, Path] | None = None,
        failed: dict[str, str] | None = None,
        plots_rel: str = "plots",
    ) -> ReportContext:
        """The context of ``run``; the reference sizes come from ``run["spec"]``."""
        spec = run.get("spec")
        return cls(
            run, list(results), dict(figures or {}), dict(failed or {}), plots_rel,
            ref_sizes(spec if isinstance(spec, dict) else None),
        )  # fmt: skip

    @property
    def spec(self) -> dict[str, Any]:
        """The run's spec as a dict (empty when absent)."""
        spec = self.run.get("spec")
        return spec if isinstance(spec, dict) else {}

    def image(self, key: str, caption: str) -> list[str]:
        """The markdown image of a written figure (nothing when it was not written)."""
        if key not in self.figures:
            return []
        return [f"![{caption}]({self.plots_rel}/{Path(self.figures[key]).name})", ""]

    def failure(self, key: str, caption: str, filename: str) -> list[str]:
        """The line saying a figure could not be drawn (nothing when it did not fail)."""
        if key not in self.failed or key in self.reported:
            return []
        self.reported.add(key)
        return [
            f"⚠️ Figure *{caption}* (`{filename}`) could not be drawn: "
            f"{md_escape(self.failed[key])}",
            "",
        ]

    def figure_lines(self, slot: str) -> list[str]:
        """The figures of section ``slot``: each image with its note, or why it is missing."""
        lines: list[str] = []
        for fig in figures_at(slot):
            image = self.image(fig.key, fig.caption)
            lines += image or self.failure(fig.key, fig.caption, fig.filename)
            if image and fig.note is not None:
                lines += [fig.note(self.run), ""]
        return lines

    def failure_lines(self, slot: str | None = None) -> list[str]:
        """Only the failures (of ``slot``, or of every figure not yet mentioned)."""
        from quantbench.report.figures import FIGURES

        lines: list[str] = []
        for fig in FIGURES:
            if slot is None or fig.slot == slot:
                lines += self.failure(fig.key, fig.caption, fig.filename)
        return lines

    def has_figures(self, slot: str) -> bool:
        """Whether section ``slot`` has a figure to show, or a failed one to mention."""
        return any(f.key in self.figures or f.key in self.failed for f in figures_at(slot))


@dataclass
class SweepContext:
    """The inputs of a report across machines (``report --sweep``; ``compare --sweep``
    writes the same sections): the comparison, its figures (``report.figures``'
    :func:`~quantbench.report.figures.sweep_figure_key` -> file) and the ones that failed,
    and the page's first heading."""

    cmp: MachineComparison
    heading: str
    figures: dict[str, Path] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    plots_rel: str = "plots"

    def model_figure_lines(self, model: str, slot: str) -> list[str]:
        """The figures of ``model`` that section ``slot`` shows, or why each is missing."""
        from quantbench.report.figures import SWEEP_FIGURES

        lines: list[str] = []
        for fig in SWEEP_FIGURES:
            if fig.slot != slot:
                continue
            key = sweep_figure_key(fig, model)
            if key in self.figures:
                rel = f"{self.plots_rel}/" if self.plots_rel not in ("", ".") else ""
                name = Path(self.figures[key]).name
                alt = md_escape(model).replace("[", "(").replace("]", ")")
                lines += [f"![{alt}: {fig.caption}]({rel}{name})", ""]
            elif key in self.failed:
                lines += [f"⚠️ Figure *{fig.caption}* of {md_escape(model)} could not be "
                          f"drawn: {md_escape(self.failed[key])}", ""]  # fmt: skip
        return lines


# ------------------------------------------------------- pages about one record


@dataclass
class PageFigures:
    """The figures of a page about one record: its registry (``report.figures``'
    :class:`~quantbench.report.figures.PageFigure` tuple), key -> written file, key -> why
    it could not be drawn; ``rel`` is where the page finds them ("." : beside it)."""

    registry: tuple[Any, ...]
    written: dict[str, Path] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    rel: str = "."

    def lines(self, slot: str) -> list[str]:
        """The figures of section ``slot``: each image, or why it is missing."""
        lines: list[str] = []
        for fig in self.registry:
            if fig.slot != slot:
                continue
            if fig.key in self.written:
                rel = f"{self.rel}/" if self.rel not in ("", ".") else ""
                lines += [f"![{fig.caption}]({rel}{Path(self.written[fig.key]).name})", ""]
            elif fig.key in self.failed:
                lines += [f"⚠️ Figure *{fig.caption}* (`{fig.filename}`) could not be drawn: "
                          f"{md_escape(self.failed[fig.key])}", ""]  # fmt: skip
        return lines


@dataclass
class CompareContext:
    """The inputs of compare.md: the comparison (runs, shared points, gates), its figures."""

    cmp: Comparison
    figures: PageFigures


@dataclass
class SensitivityContext:
    """The inputs of sensitivity.md: the ranking, the weights and calibration it was
    measured with, its figure."""

    result: Sensitivity
    calib_source: str
    weights: str
    figures: PageFigures
