"""The figures of a report, in one registry: file, caption, where it shows, how it is drawn.

Adding a figure is one :class:`Figure` record in :data:`FIGURES` (its drawing function
in a module of the ``report.plots`` package): the record's ``slot`` names the report section
that shows it, so neither the sections nor the page need to change. The order of
:data:`FIGURES` is the order of the figures in the report (and the order they are drawn).

A comparison across machines (``report --sweep``) has its own registry,
:data:`SWEEP_FIGURES`: figures drawn once per model, from ``report.plots_sweep``. The
pages about one record have theirs: compare.md (:data:`COMPARE_FIGURES`) and
sensitivity.md (:data:`SENSITIVITY_FIGURES`).

A figure that fails to draw does not cost the report: it is reported on stderr in one
line, and the report says where it would have been that it could not be drawn, and why.

Example::

    from quantbench.report.figures import draw_figures
    drawn = draw_figures(Path("out/plots"), results, run)
    drawn.written  # {"size": Path("out/plots/size.png"), ...}
    drawn.failed   # {"speedup": "ValueError: ..."} for figures that raised
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantbench.errors import first_line
from quantbench.files import DiskFault
from quantbench.report import plots, plots_sweep
from quantbench.report.data import host_microbench
from quantbench.report.fmt import finite, fmt_sig
from quantbench.report.plots import roofline
from quantbench.report.plots.compare import plot_latency_change, plot_speedups
from quantbench.report.plots.sensitivity import plot_layer_effects
from quantbench.report.plots.style import PlotContext
from quantbench.results import CellResult

if TYPE_CHECKING:
    from quantbench.machines import MachineComparison, ModelTable

Draw = Callable[[Path, list[CellResult], PlotContext], bool]


@dataclass(frozen=True)
class Figure:
    """One figure: ``draw(path, results, ctx)`` writes it and returns False when the run
    has no data for it. ``slot`` is the key of the report section that shows it
    (``report.render.SECTIONS``); ``note(run)``, when set, is a line under the image."""

    key: str
    filename: str
    caption: str
    slot: str
    draw: Draw
    note: Callable[[dict[str, Any]], str] | None = None


def _sweep(family: str, sweep: str) -> Draw:
    return lambda path, results, ctx: plots.plot_latency_sweep(path, results, family, sweep, ctx)


def _gflops_note(run: dict[str, Any]) -> str:
    bench = host_microbench(run)
    text = "Achieved GFLOP/s at each model's reference shape (fp32-equivalent for int8 variants)"
    if bench:
        refs = []
        if finite(bench.get("fp32_gflops")):
            refs.append(f"fp32 Linear {fmt_sig(bench['fp32_gflops'])} GFLOP/s")
        if finite(bench.get("int8_gops")):
            refs.append(f"dynamic int8 Linear {fmt_sig(bench['int8_gops'])} GOP/s")
        text += "; dashed lines: the machine's measured matmul rates (" + ", ".join(refs) + ")"
    return text + "."


def _gflops(path: Path, results: list[CellResult], ctx: PlotContext) -> bool:
    """Achieved GFLOP/s against the one-Linear micro-benchmark: runs from before the
    ceilings only (the roofline shows a run that has them)."""
    if ctx.limits is not None and ctx.limits.ceilings is not None:
        return False
    return plots.plot_gflops(path, results, ctx)


FIGURES: tuple[Figure, ...] = (
    Figure("tradeoff", "size_latency_accuracy.png", "Size vs latency vs accuracy per model",
           "recommendation", plots.plot_tradeoff),
    Figure("size", "size.png", "Model size per recipe (MiB)", "size", plots.plot_size),
    Figure("vision_input_size", "vision_latency_vs_image_size.png",
           "Vision models: latency vs image size", "latency", _sweep("vision", "input_size")),
    Figure("vision_batch_size", "vision_latency_vs_batch_size.png",
           "Vision models: latency vs batch size", "latency", _sweep("vision", "batch_size")),
    Figure("text_input_size", "text_latency_vs_seq_len.png",
           "Text models: latency vs sequence length", "latency", _sweep("text", "input_size")),
    Figure("text_batch_size", "text_latency_vs_batch_size.png",
           "Text models: latency vs batch size", "latency", _sweep("text", "batch_size")),
    Figure("speedup", "speedup.png", "Paired speedup vs fp32 at the reference shape",
           "latency", plots.plot_speedup),
    Figure("heatmap", "speedup_heatmap.png", "Speedup vs fp32 over batch size × input size",
           "latency", plots.plot_speedup_heatmap),
    Figure("samples", "latency_samples.png", "Raw latency samples at the reference shape",
           "latency", plots.plot_samples),
    Figure("gflops", "gflops.png",
           "Achieved GFLOP/s at the reference shape vs the machine's matmul rates", "memory",
           _gflops, note=_gflops_note),
    Figure("roofline", "roofline.png", "Roofline at the reference shape: each variant "
           "against the machine's ceilings", "limits", roofline.draw_roofline),
    Figure("time_breakdown", "time_breakdown.png", "Where the time goes: one forward pass "
           "by operator kind", "limits", roofline.draw_time_breakdown),
    Figure("accuracy", "accuracy_vs_latency.png", "Accuracy vs latency, with the Pareto front",
           "accuracy", plots.plot_accuracy_pareto),
)  # fmt: skip


def figures_at(slot: str) -> list[Figure]:
    """The figures a section shows, in report order."""
    return [f for f in FIGURES if f.slot == slot]


@dataclass
class DrawnFigures:
    """What :func:`draw_figures` did: key -> written file, and key -> why it failed."""

    written: dict[str, Path] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def draw(self, key: str, path: Path, draw: Callable[[Path], bool]) -> None:
        """``draw(path)``: written, or (it raised) warned about on stderr and recorded as
        failed; a figure without data or failed leaves no file behind."""
        try:
            ok = draw(path)
        except DiskFault:  # the disk, not the figure: the page cannot be written
            raise
        except Exception as exc:  # one bad figure must not cost the others
            reason = first_line(exc)
            print(f"quantbench: warning: figure {path.name} could not be drawn: {reason}",
                  file=sys.stderr)  # fmt: skip
            self.failed[key] = reason
            ok = False
        if ok:
            self.written[key] = path
        else:
            path.unlink(missing_ok=True)


def draw_figures(
    plots_dir: Path, results: list[CellResult], run: dict[str, Any] | None = None
) -> DrawnFigures:
    """Draw every figure that has data into ``plots_dir``.

    ``run`` (the run metadata) gives the reference sizes and adds the machine's
    micro-benchmark rates to the GFLOP/s figure. Figure files that get no data this time
    (or fail) are removed, so a re-render never leaves a stale figure behind. A figure
    that raises is warned about on stderr and recorded in ``failed``; the others are
    still drawn.
    """
    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    ctx = plots.plot_context(results, run)
    drawn = DrawnFigures()
    for fig in FIGURES:
        drawn.draw(fig.key, plots_dir / fig.filename,
                   lambda path, fig=fig: fig.draw(path, results, ctx))  # fmt: skip
    return drawn


def make_plots(
    plots_dir: Path, results: list[CellResult], run: dict[str, Any] | None = None
) -> dict[str, Path]:
    """Write every figure that has data into ``plots_dir``; return key -> path."""
    return draw_figures(plots_dir, results, run).written


# ----------------------------------------------------------- a sweep across machines


@dataclass(frozen=True)
class ModelFigure:
    """A figure of a comparison across machines (``report --sweep``, ``compare --sweep``),
    drawn once per model: ``draw(path, comparison, table)`` writes it and returns False
    when the model has no data for it; ``filename`` holds ``{model}``; ``slot`` is the key
    of the section that shows it (``report.render.SWEEP_SECTIONS``)."""

    key: str
    filename: str
    caption: str
    slot: str
    draw: Callable[[Path, MachineComparison, ModelTable], bool]


SWEEP_FIGURES: tuple[ModelFigure, ...] = (
    ModelFigure("machines", "machines_{model}.png",
                "Speedup vs fp32 and latency per recipe, one bar per machine", "sweep_models",
                plots_sweep.plot_machines),
)  # fmt: skip


def model_slugs(models: list[str]) -> dict[str, str]:
    """A file-name-safe, distinct name per model (``hf:./my dir`` -> ``hf_my_dir``)."""
    out: dict[str, str] = {}
    for m in models:
        slug = re.sub(r"[^A-Za-z0-9]+", "_", m).strip("_") or "model"
        base, i = slug, 2
        while slug in out.values():
            slug, i = f"{base}-{i}", i + 1
        out[m] = slug
    return out


def sweep_figure_key(fig: ModelFigure, model: str) -> str:
    """The key a model's figure is written under in :class:`DrawnFigures`."""
    return f"{fig.key}:{model}"


def draw_sweep_figures(plots_dir: Path, cmp: MachineComparison) -> DrawnFigures:
    """Draw every :data:`SWEEP_FIGURES` figure of every model into ``plots_dir``; keys are
    :func:`sweep_figure_key`. As :func:`draw_figures`: a figure that raises is warned
    about and recorded in ``failed``, one without data (or failed) leaves no file."""
    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    slugs = model_slugs([t.model for t in cmp.tables])
    drawn = DrawnFigures()
    for table in cmp.tables:
        for fig in SWEEP_FIGURES:
            path = plots_dir / fig.filename.format(model=slugs[table.model])
            drawn.draw(sweep_figure_key(fig, table.model), path,
                       lambda path, fig=fig, table=table: fig.draw(path, cmp, table))  # fmt: skip
    for fig in SWEEP_FIGURES:  # a model no longer compared leaves no stale figure behind
        for old in plots_dir.glob(fig.filename.format(model="*")):
            if old not in drawn.written.values():
                old.unlink(missing_ok=True)
    return drawn


# ------------------------------------------------------- pages about one record


@dataclass(frozen=True)
class PageFigure:
    """A figure of a page about one record (compare.md: the compared points;
    sensitivity.md: the layer ranking): ``draw(path, record)`` writes it and returns
    False when there is nothing to draw; ``slot`` is the key of the page's section that
    shows it (``report.render.COMPARE_SECTIONS``, ``SENSITIVITY_SECTIONS``)."""

    key: str
    filename: str
    caption: str
    slot: str
    draw: Callable[[Path, Any], bool]


COMPARE_FIGURES: tuple[PageFigure, ...] = (
    PageFigure("compare_latency", "compare_latency.png", "latency change", "compare_figures",
               plot_latency_change),
    PageFigure("compare_speedup", "compare_speedup.png", "speedups", "compare_figures",
               plot_speedups),
)  # fmt: skip

SENSITIVITY_FIGURES: tuple[PageFigure, ...] = (
    PageFigure("sensitivity", "sensitivity.png", "effect per layer", "sensitivity_header",
               plot_layer_effects),
)  # fmt: skip


def draw_page_figures(out_dir: Path, figures: tuple[PageFigure, ...], record: Any) -> DrawnFigures:
    """Draw each of ``figures`` of ``record`` into ``out_dir``, as :func:`draw_figures`
    does: one that raises is warned about and recorded in ``failed``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn = DrawnFigures()
    for fig in figures:
        drawn.draw(fig.key, out_dir / fig.filename, lambda path, fig=fig: fig.draw(path, record))
    return drawn
