"""Report: figures and report.md from result records (never re-measures).

Importing this package is cheap: matplotlib is imported only when figures are drawn.
Each page has its sections (``report.render``) and figures (``report.figures``) in
registries: report.md of a run, the report across machines, compare.md (of runs, or of
machines) and sensitivity.md.

Example::

    from quantbench.report import render_report
    from quantbench.results import read_json

    run, results = read_json(Path("runs/r1/results.json"))
    render_report(Path("runs/r1"), run, results)  # -> runs/r1/report.md
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quantbench.compare import Comparison
    from quantbench.machines import MachineComparison
    from quantbench.results import CellResult
    from quantbench.sensitivity import Sensitivity

__all__ = [
    "render_compare",
    "render_machines",
    "render_report",
    "render_sensitivity",
    "render_sweep_report",
]


def render_report(out_dir: Path, run: dict[str, Any], results: list[CellResult]) -> Path:
    """Write ``out_dir/plots/*.png``, ``report.md`` and the self-contained ``report.html``;
    return the path of report.md.

    Figures without data are skipped; a figure that fails to draw is warned about on
    stderr and said in the report, the rest is still written. Only cells with status
    "ok" contribute numbers, the others are listed with their reason.
    """
    from quantbench.report.figures import draw_figures
    from quantbench.report.html import render_html
    from quantbench.report.render import render_markdown
    from quantbench.results import atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = list(results)
    drawn = draw_figures(out_dir / "plots", results, run)
    path = out_dir / "report.md"
    text = render_markdown(run, results, drawn.written, plots_rel="plots", failed=drawn.failed)
    atomic_write_text(path, text)
    title = f"quantbench report: {run.get('id', '')}"
    atomic_write_text(out_dir / "report.html", render_html(text, out_dir, title))
    return path


def render_sweep_report(out_dir: Path, cmp: MachineComparison) -> Path:
    """The report across machines (``quantbench report --sweep``): ``out_dir/plots/`` (one
    figure per model), ``report.md`` and the self-contained ``report.html``; return the
    path of report.md. A figure that fails to draw is warned about and said in the report.
    """
    from quantbench.report.figures import draw_sweep_figures
    from quantbench.report.html import render_html
    from quantbench.report.render import render_sweep_markdown
    from quantbench.results import atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn = draw_sweep_figures(out_dir / "plots", cmp)
    path = out_dir / "report.md"
    text = render_sweep_markdown(cmp, drawn.written, "plots", drawn.failed)
    atomic_write_text(path, text)
    title = f"quantbench report: {cmp.title}"
    atomic_write_text(out_dir / "report.html", render_html(text, out_dir, title))
    return path


def render_compare(out_dir: Path, cmp: Comparison) -> str:
    """Write compare.md and its figures (``COMPARE_FIGURES``) into ``out_dir``; return
    the text (as the command prints it)."""
    from quantbench.files import atomic_write_text
    from quantbench.report.context import PageFigures
    from quantbench.report.figures import COMPARE_FIGURES, draw_page_figures
    from quantbench.report.render import render_compare_markdown

    drawn = draw_page_figures(out_dir, COMPARE_FIGURES, cmp)
    figures = PageFigures(COMPARE_FIGURES, drawn.written, drawn.failed)
    text = render_compare_markdown(cmp, figures)
    atomic_write_text(Path(out_dir) / "compare.md", text + "\n")
    return text


def render_machines(out_dir: Path, cmp: MachineComparison, heading: str) -> tuple[str, dict]:
    """Write compare.md across machines (the sections of ``report --sweep``, titled
    ``heading``) and one figure per model into ``out_dir``; return the text and the
    figures written (``report.figures.sweep_figure_key`` -> file)."""
    from quantbench.files import atomic_write_text
    from quantbench.report.figures import draw_sweep_figures
    from quantbench.report.render import render_sweep_markdown

    drawn = draw_sweep_figures(out_dir, cmp)
    text = render_sweep_markdown(cmp, drawn.written, ".", drawn.failed, heading)
    atomic_write_text(Path(out_dir) / "compare.md", text)
    return text, drawn.written


def render_sensitivity(out_dir: Path, result: Sensitivity, calib_source: str, weights: str) -> Path:
    """Write sensitivity.md and its figure (``SENSITIVITY_FIGURES``) into ``out_dir``;
    return the path of sensitivity.md."""
    from quantbench.files import atomic_write_text
    from quantbench.report.context import PageFigures
    from quantbench.report.figures import SENSITIVITY_FIGURES, draw_page_figures
    from quantbench.report.render import render_sensitivity_markdown

    drawn = draw_page_figures(out_dir, SENSITIVITY_FIGURES, result)
    figures = PageFigures(SENSITIVITY_FIGURES, drawn.written, drawn.failed)
    path = Path(out_dir) / "sensitivity.md"
    atomic_write_text(
        path, render_sensitivity_markdown(result, calib_source, weights, figures) + "\n"
    )
    return path
