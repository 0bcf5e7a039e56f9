"""Latency figures: median latency vs input size or batch size (the lab's four sweeps),
and the raw timed samples at each model's reference point."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantbench.report.data import (
    batch_sweep_points,
    find_cell,
    input_sweep_points,
    model_order,
    ok_cells,
    sort_cells,
    to_ms,
)
from quantbench.report.plots.style import LOG_RANGE, PlotContext, _pyplot, _save, plot_context
from quantbench.results import CellResult, LatencyPoint
from quantbench.shapes import reference_point

_COMBINED_LEGEND_MAX = 6  # above this many lines, split the legend into models + recipes


_SWEEP_LABELS = {
    ("vision", "input_size"): ("Vision models: latency vs image size", "image size (px, square)"),
    ("vision", "batch_size"): ("Vision models: latency vs batch size", "batch size"),
    ("text", "input_size"): ("Text models: latency vs sequence length", "sequence length (tokens)"),
    ("text", "batch_size"): ("Text models: latency vs batch size", "batch size"),
}


def plot_latency_sweep(
    path: Path,
    results: list[CellResult],
    family: str,
    sweep: str,
    ctx: PlotContext | None = None,
) -> bool:
    """Median latency (ms, CI error bars) vs input size or batch size, one line per cell.

    Returns False, writing nothing, when no "ok" cell of ``family`` has points for it.
    """
    style = ctx or plot_context(results)
    select = input_sweep_points if sweep == "input_size" else batch_sweep_points
    lines: list[tuple[CellResult, list[LatencyPoint]]] = []
    for cell in sort_cells(ok_cells(results)):
        if cell.family != family:
            continue
        pts = select(cell)
        if pts:
            lines.append((cell, pts))
    if not lines:
        return False

    plt = _pyplot()
    title, xlabel = _SWEEP_LABELS.get(
        (family, sweep), (f"{family}: latency vs {sweep}", sweep.replace("_", " "))
    )
    if sweep == "input_size":
        batches = sorted({pts[0].batch_size for _, pts in lines})
        title += f" (batch {', '.join(map(str, batches))})"
    else:
        refs = sorted({pts[0].input_size for _, pts in lines})
        unit = "px" if family == "vision" else "tokens" if family == "text" else ""
        title += f" (input size {', '.join(map(str, refs))} {unit})".replace(" )", ")")

    n = len(lines)
    combined = n <= _COMBINED_LEGEND_MAX
    fig, ax = plt.subplots(figsize=(8.0 if combined else 9.5, 5.0))
    xs_all: set[int] = set()
    medians: list[float] = []
    for cell, pts in lines:
        xs = [p.input_size if sweep == "input_size" else p.batch_size for p in pts]
        ys = [to_ms(p.median, p.unit) for p in pts]
        lo = [max(0.0, y - to_ms(p.ci_low, p.unit)) for y, p in zip(ys, pts, strict=True)]
        hi = [max(0.0, to_ms(p.ci_high, p.unit) - y) for y, p in zip(ys, pts, strict=True)]
        rs = style.recipes[cell.recipe]
        ax.errorbar(
            xs,
            ys,
            yerr=[lo, hi],
            color=style.colors[cell.model],
            linestyle=rs.linestyle,
            marker=rs.marker,
            markersize=6,
            linewidth=1.6,
            capsize=3,
            label=f"{cell.model} · {cell.recipe}",
        )
        xs_all.update(xs)
        medians.extend(y for y in ys if y > 0)

    _set_x_axis(ax, sorted(xs_all), base2=sweep == "batch_size")
    if medians and max(medians) / min(medians) > LOG_RANGE:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("median latency (ms), error bars: CI")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", alpha=0.12)

    if combined:
        ax.legend(fontsize=8, loc="best", framealpha=0.9)
    else:
        _split_legend(ax, [c for c, _ in lines], style)
    _save(fig, path)
    return True


def _set_x_axis(ax: Any, xs: list[int], base2: bool) -> None:
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    if len(xs) >= 2 and xs[0] > 0 and xs[-1] / xs[0] >= (4 if base2 else 8):
        ax.set_xscale("log", base=2)
    ax.set_xticks(xs)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    if len(xs) > 10:
        ax.tick_params(axis="x", labelrotation=45)


def _split_legend(ax: Any, cells: list[CellResult], style: PlotContext) -> None:
    """Two legends outside the axes: colour = model, line style/marker = recipe."""
    from matplotlib.lines import Line2D

    models = list(dict.fromkeys(c.model for c in cells))
    recipes = [r for r in style.recipe_list if any(c.recipe == r for c in cells)]
    model_handles = [Line2D([], [], color=style.colors[m], linewidth=3, label=m) for m in models]
    recipe_handles = [
        Line2D(
            [],
            [],
            color="0.25",
            linestyle=style.recipes[r].linestyle,
            marker=style.recipes[r].marker,
            label=r,
        )
        for r in recipes
    ]
    first = ax.legend(
        handles=model_handles,
        title="model (colour)",
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        fontsize=8,
        title_fontsize=8,
    )
    ax.add_artist(first)
    ax.legend(
        handles=recipe_handles,
        title="recipe (line / marker)",
        loc="lower left",
        bbox_to_anchor=(1.02, 0.0),
        fontsize=8,
        title_fontsize=8,
    )


def plot_samples(path: Path, results: list[CellResult], ctx: PlotContext | None = None) -> bool:
    """The raw timed samples at each model's reference point: one box per variant."""
    style = ctx or plot_context(results)
    panels = []
    for model in model_order(results):
        boxes = []
        for recipe in style.recipe_list:
            c = find_cell(results, model, recipe)
            ref = reference_point(c, style.sizes) if c is not None and c.status == "ok" else None
            if ref is not None and ref.samples:
                boxes.append((recipe, [to_ms(v, ref.unit) for v in ref.samples], ref))
        if boxes:
            panels.append((model, boxes))
    if not panels:
        return False
    plt = _pyplot()
    n = len(panels)
    fig, axes = plt.subplots(n, 1, figsize=(8.5, 1.0 + 0.32 * sum(len(b) for _, b in panels)
                                            + 0.6 * n), squeeze=False)  # fmt: skip
    for ax, (model, boxes) in zip(axes[:, 0], panels, strict=True):
        ax.boxplot([v for _, v, _ in boxes], vert=False, widths=0.6, showfliers=True,
                   flierprops={"markersize": 2})  # fmt: skip
        ax.set_yticks(range(1, len(boxes) + 1),
                      [f"{r} (n={len(v)})" for r, v, _ in boxes], fontsize=7)  # fmt: skip
        ref = boxes[0][2]
        ax.set_title(f"{model}: raw samples at batch {ref.batch_size} × {ref.input_size}",
                     fontsize=9)  # fmt: skip
        ax.set_xscale("log")
        ax.grid(True, axis="x", alpha=0.35)
    axes[-1, 0].set_xlabel("latency per forward pass (ms, log scale)")
    _save(fig, path)
    return True
