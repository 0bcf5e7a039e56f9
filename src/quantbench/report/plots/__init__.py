"""Drawing the figures of a run: latency sweeps (the lab's four figures), size, paired
speedup, achieved GFLOP/s against the machine's measured matmul rates, accuracy and the
trade-off. Which figures exist, their files and captions: ``report.figures``.

One colour per model and one line style / marker / hatch per recipe, the same in every
figure. matplotlib is imported inside the functions (Agg backend) so that importing
this module stays cheap. A figure with no data is not written (its function returns
False).

Example::

    from quantbench.report.plots import plot_context, plot_size
    plot_size(Path("out/plots/size.png"), results, plot_context(results, run))
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantbench.recipes import RecipeStyle
from quantbench.report.data import (
    BASELINE,
    batch_sweep_points,
    find_cell,
    host_microbench,
    input_sweep_points,
    mib,
    model_family,
    model_order,
    ok_cells,
    point_gflops_per_s,
    recipe_order,
    registered_recipe,
    sort_cells,
    stored_variant,
    to_ms,
)
from quantbench.results import CellResult, LatencyPoint
from quantbench.shapes import ref_sizes, reference_point

LOG_RANGE = 20.0  # use a log axis when max/min exceeds this
_COMBINED_LEGEND_MAX = 6  # above this many lines, split the legend into models + recipes
_DPI = 120


_EXTRA_LINESTYLES: list[Any] = ["-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 3))]
_EXTRA_MARKERS = ["D", "v", "P", "X", "*", "h", "<", ">"]
_EXTRA_HATCHES = ["...", "\\\\\\", "+++", "ooo", "---", "|||"]


def _declared_style(name: str) -> RecipeStyle | None:
    """The style a plain recipe declares (a variant such as ``x+fallback`` gets its own)."""
    variant = stored_variant(name)
    if variant.name != name or not variant.is_base:
        return None
    recipe = registered_recipe(name)
    style = recipe.style if recipe is not None else None
    return style


def recipe_styles(recipes: Sequence[str]) -> dict[str, RecipeStyle]:
    """A distinct, stable style per recipe (recipes that declare one always look the same)."""
    out: dict[str, RecipeStyle] = {}
    i = 0
    for r in recipes:
        declared = _declared_style(r)
        if declared is not None:
            out[r] = declared
        else:
            out[r] = RecipeStyle(
                _EXTRA_LINESTYLES[i % len(_EXTRA_LINESTYLES)],
                _EXTRA_MARKERS[i % len(_EXTRA_MARKERS)],
                _EXTRA_HATCHES[i % len(_EXTRA_HATCHES)],
            )
            i += 1
    return out


def model_colors(models: Sequence[str]) -> dict[str, Any]:
    """A distinct colour per model (tab10, then tab20 for many models)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(models) <= 10 else "tab20"]
    return {m: cmap(i % cmap.N) for i, m in enumerate(models)}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@dataclass
class PlotContext:
    """What every figure of a run shares: colours and recipe styles, the reference input
    sizes (the spec's, see ``quantbench.shapes``) and the machine's micro-benchmark."""

    colors: dict[str, Any]
    recipes: dict[str, RecipeStyle]
    recipe_list: list[str]
    sizes: Mapping[str, int]
    bench: dict[str, Any] | None = None


def plot_context(results: list[CellResult], run: dict[str, Any] | None = None) -> PlotContext:
    """The context of ``results``; ``run`` (the run metadata) gives the reference sizes and
    the micro-benchmark (without it: the lab's sizes, no machine rates)."""
    # Styles come from the whole run, so a model keeps its colour across figures.
    recipes = recipe_order(results)
    return PlotContext(
        model_colors(model_order(results)),
        recipe_styles(recipes),
        recipes,
        ref_sizes((run or {}).get("spec")),
        host_microbench(run),
    )


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


def _recipe_patch_legend(
    ax: Any, recipes: list[str], style: PlotContext, extra: Sequence[Any] = ()
) -> None:
    """Recipe legend (hatches) below the axes, where it cannot hide a bar or label.

    ``extra`` handles (e.g. reference lines) are appended to the same legend.
    """
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor="0.85", edgecolor="0.2", hatch=style.recipes[r].hatch, label=r)
        for r in recipes
    ] + list(extra)
    from matplotlib.transforms import offset_copy

    # A fixed gap in points below the axes (under the x label), whatever the figure height.
    below = offset_copy(ax.transAxes, fig=ax.figure, y=-36, units="points")
    ax.legend(
        handles=handles,
        title="recipe (hatch); colour = model" + ("; dashed = machine rate" if extra else ""),
        fontsize=8,
        title_fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        bbox_transform=below,
        ncol=max(1, min(len(handles), 6 if extra else 4)),
        frameon=False,
    )


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    try:
        save_png(fig, path, dpi=_DPI, bbox_inches="tight")
    finally:
        plt.close(fig)


def save_png(fig: Any, path: Path, **savefig: Any) -> None:
    """Write ``fig`` to ``path`` as PNG atomically: a reader never sees half a file, and a
    figure that fails to save leaves the previous one (or none) behind."""
    from quantbench.results import file_mode

    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", **savefig)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# (recipe, value or status text, (ci_low, ci_high) or None)
_Bar = tuple[str, "float | str", "tuple[float, float] | None"]


def _grouped_barh(
    ax: Any,
    groups: list[str],
    bars: dict[str, list[_Bar]],
    style: PlotContext,
    fmt: Callable[[float], str],
    label_offset: float,
) -> list[str]:
    """Horizontal bars, one group per model (top to bottom), one bar per recipe.

    A bar whose value is a string (a cell's status, e.g. "unsupported") is drawn as a
    grey note in its slot, so a missing bar is never mistaken for a zero.
    """
    recipes_used = [
        r for r in style.recipe_list if any(rec == r for g in groups for rec, _, _ in bars[g])
    ]
    k = max(1, len(recipes_used))
    height = 0.8 / k
    for gi, model in enumerate(groups):
        for recipe, value, ci in bars[model]:
            ri = recipes_used.index(recipe)
            y = gi - 0.4 + height * (ri + 0.5)
            if isinstance(value, str):
                ax.text(
                    label_offset,
                    y,
                    f"{recipe}: {value}",
                    va="center",
                    ha="left",
                    fontsize=7.5,
                    style="italic",
                    color="0.35",
                )
                continue
            xerr = None
            if ci is not None:
                xerr = [[max(0.0, value - ci[0])], [max(0.0, ci[1] - value)]]
            ax.barh(
                y,
                value,
                height=height * 0.92,
                color=style.colors[model],
                edgecolor="0.2",
                linewidth=0.6,
                hatch=style.recipes[recipe].hatch,
                xerr=xerr,
                error_kw={"capsize": 3, "elinewidth": 1, "ecolor": "0.1"},
            )
            end = ci[1] if ci is not None else value
            ax.text(
                end + label_offset,
                y,
                f"{fmt(value)}  {recipe}",
                va="center",
                ha="left",
                fontsize=7.5,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.5},
            )
    ax.set_yticks(range(len(groups)))
    ax.set_yticklabels(groups)
    ax.set_ylim(len(groups) - 0.5, -0.5)
    return recipes_used


def plot_size(path: Path, results: list[CellResult], ctx: PlotContext | None = None) -> bool:
    """Grouped horizontal bars of artifact size (MiB) per model, one bar per recipe.

    One panel per family, each with its own scale, so small CNNs stay readable next to
    large transformers.
    """
    style = ctx or plot_context(results)
    cells = [c for c in ok_cells(results) if c.size_bytes is not None]
    if not cells:
        return False
    panels: dict[str, list[str]] = {}
    for m in model_order(results):
        if any(c.model == m for c in cells):
            fam = model_family(results, m) or "other"
            panels.setdefault(fam, []).append(m)
    families = [f for f in ("vision", "text") if f in panels]
    families += [f for f in panels if f not in families]

    bars: dict[str, list[_Bar]] = {}
    for m in (m for f in families for m in panels[f]):
        bars[m] = []
        for r in style.recipe_list:
            if (cell := find_cell(cells, m, r)) is not None:
                bars[m].append((r, mib(cell.size_bytes or 0), None))
            elif (failed := find_cell(results, m, r)) is not None and failed.status != "ok":
                bars[m].append((r, failed.status, None))
    heights = [0.6 + 0.3 * sum(len(bars[m]) for m in panels[f]) for f in families]

    plt = _pyplot()
    fig, axes = plt.subplots(
        len(families),
        1,
        figsize=(8.5, max(2.5, 0.8 + sum(heights))),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    used: list[str] = []
    for ax, fam in zip(axes[:, 0], families, strict=True):
        groups = panels[fam]
        vmax = max((v for g in groups for _, v, _ in bars[g] if not isinstance(v, str)), default=0)
        vmax = vmax or 1.0
        for r in _grouped_barh(ax, groups, bars, style, _fmt_mib, label_offset=vmax * 0.02):
            if r not in used:
                used.append(r)
        ax.set_xlim(0, vmax * 1.35)
        ax.set_title(f"{fam} models" if len(families) > 1 else "Model size by recipe", fontsize=10)
        ax.grid(True, axis="x", alpha=0.35)
    axes[-1, 0].set_xlabel("saved artifact size (MiB)")
    if len(families) > 1:
        fig.suptitle("Model size by recipe (each panel has its own scale)")
    fig.tight_layout()
    _recipe_patch_legend(axes[-1, 0], [r for r in style.recipe_list if r in used], style)
    _save(fig, path)
    return True


def _fmt_mib(v: float) -> str:
    return f"{v:.1f} MiB" if v >= 0.1 else f"{v:.3g} MiB"


def plot_speedup(path: Path, results: list[CellResult], ctx: PlotContext | None = None) -> bool:
    """Paired speedup vs fp32 (median, CI) at each model's reference point."""
    style = ctx or plot_context(results)
    groups: list[str] = []
    labels: list[str] = []
    bars: dict[str, list[_Bar]] = {}
    for model in model_order(results):
        entries: list[_Bar] = []
        label = None
        for recipe in style.recipe_list:
            if recipe == BASELINE:
                continue
            cell = find_cell(results, model, recipe)
            if cell is None:
                continue
            if cell.status != "ok":
                entries.append((recipe, cell.status, None))
                continue
            ref = reference_point(cell, style.sizes)
            if ref is None or ref.speedup is None:
                continue
            s = ref.speedup
            entries.append((recipe, s.median, (s.ci_low, s.ci_high)))
            if label is None:
                unit = {"vision": " px", "text": " tokens"}.get(cell.family or "", "")
                label = f"{model}\n({ref.batch_size} × {ref.input_size}{unit})"
        if label is not None:  # at least one measured speedup
            groups.append(model)
            labels.append(label)
            bars[model] = entries
    if not groups:
        return False
    vmax = max(
        max(v, ci[1] if ci else v) for g in groups for _, v, ci in bars[g] if not isinstance(v, str)
    )
    vmax = max(vmax, 1.0)

    plt = _pyplot()
    n_bars = sum(len(b) for b in bars.values())
    fig, ax = plt.subplots(figsize=(8.5, max(2.5, 0.9 + 0.36 * n_bars + 0.25 * len(groups))))
    used = _grouped_barh(ax, groups, bars, style, lambda v: f"{v:.2f}x", label_offset=vmax * 0.02)
    ax.set_yticklabels(labels, fontsize=8)
    ax.axvline(1.0, color="0.1", linestyle="--", linewidth=1.2)
    ax.set_xlim(0, vmax * 1.35)
    ax.set_xlabel("speedup vs fp32 (paired, median of per-round ratios; > 1 = faster)")
    ax.set_title("Speedup vs fp32 at the reference shape (batch × input size)")
    ax.grid(True, axis="x", alpha=0.35)
    _recipe_patch_legend(ax, used, style)
    _save(fig, path)
    return True


def pareto_front(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """(latency, accuracy, label) points no other point beats on both (lower latency and
    higher accuracy), sorted by latency.

    >>> [p[2] for p in pareto_front([(1, 0.9, "a"), (2, 0.95, "b"), (3, 0.94, "c")])]
    ['a', 'b']
    """
    front: list[tuple[float, float, str]] = []
    for pt in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or pt[1] > front[-1][1]:
            front.append(pt)
    return front


def plot_accuracy_pareto(
    path: Path, results: list[CellResult], ctx: PlotContext | None = None
) -> bool:
    """Per model: task metric (as % of fp32) vs latency at the reference point, with the
    Pareto front (the variants worth shipping) drawn through them."""
    style = ctx or plot_context(results)
    panels: dict[str, list[tuple[float, float, str]]] = {}
    bars: dict[str, float] = {}
    for model in model_order(results):
        pts = []
        for c in results:
            if c.model != model or c.status != "ok" or not c.accuracy:
                continue
            ref = reference_point(c, style.sizes)
            rel = c.accuracy.relative
            if ref is None or rel is None:
                continue
            pts.append((to_ms(ref.median, ref.unit), 100.0 * rel, c.recipe))
            bars[model] = 100.0 * (1 - float(c.accuracy.max_drop or 0.01))
        if pts:
            panels[model] = pts
    if not panels:
        return False
    plt = _pyplot()
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(min(5.0 * n, 15), 4.2), squeeze=False)
    for ax, (model, pts) in zip(axes[0], panels.items(), strict=False):
        cmap = plt.get_cmap("tab20")
        for x, y, recipe in pts:
            st = style.recipes.get(recipe)
            i = style.recipe_list.index(recipe) if recipe in style.recipe_list else 0
            ax.scatter([x], [y], color=cmap(i % 20), marker=st.marker if st else "o", s=46,
                       zorder=3, label=recipe)  # fmt: skip
        front = pareto_front(pts)
        ax.plot([p[0] for p in front], [p[1] for p in front], color="0.4", lw=1, ls="--",
                zorder=2, label="Pareto front")  # fmt: skip
        ax.axhline(bars[model], color="tab:red", lw=1, ls=":", label="accuracy bar")
        metric = next((c.accuracy.metric for c in results
                       if c.model == model and c.accuracy), "metric")  # fmt: skip
        ax.set_xlabel("latency at the reference shape (ms, median)")
        ax.set_ylabel(f"{metric} (% of fp32)")
        ax.set_title(model, fontsize=10)
        ax.grid(True, alpha=0.35)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("Accuracy vs latency: up and to the left is better", fontsize=11)
    _save(fig, path)
    return True


def plot_tradeoff(path: Path, results: list[CellResult], ctx: PlotContext | None = None) -> bool:
    """Per model: size vs latency at the reference point, coloured by the task metric
    (% of fp32) where measured, else by cosine to fp32; the Pareto front of size and
    latency among the variants that meet the bar is drawn through them."""
    from quantbench.best import keeps_fidelity

    style = ctx or plot_context(results)
    panels: dict[str, list[tuple[float, float, float | None, str, bool]]] = {}
    label = "cosine to fp32"
    for model in model_order(results):
        pts = []
        for c in results:
            if c.model != model or c.status != "ok" or not c.size_bytes:
                continue
            ref = reference_point(c, style.sizes)
            if ref is None:
                continue
            if c.recipe == BASELINE:
                q = 100.0
            elif c.accuracy and c.accuracy.relative is not None:
                q, label = 100.0 * c.accuracy.relative, "metric (% of fp32)"
            else:
                q = 100.0 * c.fidelity.cosine if c.fidelity and c.fidelity.cosine else None
            ok, _ = keeps_fidelity(c, 0.99, 0.99)
            pts.append((to_ms(ref.median, ref.unit), c.size_bytes / 2**20, q, c.recipe, ok))
        if len(pts) > 1:
            panels[model] = pts
    if not panels:
        return False
    plt = _pyplot()
    n = len(panels)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.0 * cols, 4.4 * rows), squeeze=False)
    qs = [p[2] for pts in panels.values() for p in pts if p[2] is not None]
    vmin = min(qs + [99.0]) if qs else 90.0
    for ax, (model, pts) in zip(axes.flat, panels.items(), strict=False):
        sc = None
        for x, y, q, recipe, ok in pts:
            st = style.recipes.get(recipe)
            sc = ax.scatter([x], [y], c=[q if q is not None else vmin], cmap="viridis",
                            vmin=vmin, vmax=100.0, marker=st.marker if st else "o", s=60,
                            edgecolors="black" if ok else "red", linewidths=1.0, zorder=3)  # fmt: skip
            ax.annotate(recipe, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        keep = [(x, -y, r) for x, y, _, r, ok in pts if ok]
        front = pareto_front(keep)
        ax.plot([p[0] for p in front], [-p[1] for p in front], color="0.4", lw=1, ls="--")
        ax.set_title(model, fontsize=10)
        ax.set_xlabel("latency at the reference shape (ms)")
        ax.set_ylabel("artifact size (MiB)")
        ax.grid(True, alpha=0.35)
        if sc is not None:
            fig.colorbar(sc, ax=ax, label=label, shrink=0.8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("Size vs latency vs accuracy (red edge: misses the bar; dashed: Pareto front "
                 "of those that meet it)", fontsize=10)  # fmt: skip
    _save(fig, path)
    return True


def plot_speedup_heatmap(
    path: Path, results: list[CellResult], ctx: PlotContext | None = None
) -> bool:
    """Per model and recipe: paired speedup vs fp32 over batch size x input size (green:
    int8 wins, red: it loses; blank: not measured — ``--grid`` measures every cell)."""
    import math

    style = ctx or plot_context(results)
    rows: list[tuple[str, str, dict[tuple[int, int], float]]] = []
    for model in model_order(results):
        for recipe in style.recipe_list:
            if recipe == BASELINE:
                continue
            c = find_cell(results, model, recipe)
            if c is None or c.status != "ok":
                continue
            grid = {(p.batch_size, p.input_size): p.speedup.median
                    for p in c.latency if p.speedup is not None}  # fmt: skip
            if len(grid) >= 2:
                rows.append((model, recipe, grid))
    if not rows:
        return False
    plt = _pyplot()
    from matplotlib.colors import TwoSlopeNorm

    cols = min(len(rows), 4)
    nrows = (len(rows) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    allv = [math.log2(v) for _, _, g in rows for v in g.values() if v > 0]
    lim = max(1.0, max(abs(v) for v in allv)) if allv else 1.0
    norm = TwoSlopeNorm(vmin=-lim, vcenter=0.0, vmax=lim)
    im = None
    for ax, (model, recipe, grid) in zip(axes.flat, rows, strict=False):
        bs = sorted({b for b, _ in grid})
        ss = sorted({s for _, s in grid})
        data = [[math.log2(grid[(b, s)]) if (b, s) in grid and grid[(b, s)] > 0 else float("nan")
                 for s in ss] for b in bs]  # fmt: skip
        im = ax.imshow(data, cmap="RdYlGn", norm=norm, aspect="auto", origin="lower")
        ax.set_xticks(range(len(ss)), [str(s) for s in ss], fontsize=7)
        ax.set_yticks(range(len(bs)), [str(b) for b in bs], fontsize=7)
        for i, b in enumerate(bs):
            for j, s in enumerate(ss):
                if (b, s) in grid:
                    ax.text(j, i, f"{grid[(b, s)]:.2f}", ha="center", va="center", fontsize=6)
        ax.set_title(f"{model} · {recipe}", fontsize=8)
        ax.set_xlabel("input size", fontsize=7)
        ax.set_ylabel("batch size", fontsize=7)
    for ax in list(axes.flat)[len(rows) :]:
        ax.axis("off")
    if im is not None:
        cb = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.7)
        ticks = [t for t in range(-int(lim), int(lim) + 1)]
        cb.set_ticks(ticks, labels=[f"{2**t:g}x" for t in ticks])
        cb.set_label("speedup vs fp32 (log scale)")
    fig.suptitle("Where int8 wins (green) and loses (red): paired speedup vs fp32", fontsize=10)
    _save(fig, path)
    return True


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


def plot_gflops(
    path: Path,
    results: list[CellResult],
    ctx: PlotContext | None = None,
) -> bool:
    """Achieved GFLOP/s (fp32-equivalent for int8) per model and recipe at the reference
    shape, with dashed lines at the micro-benchmark's fp32 GFLOP/s and int8 GOP/s.

    Returns False, writing nothing, when no cell has FLOPs recorded.
    """
    style = ctx or plot_context(results)
    bench = style.bench
    groups: list[str] = []
    labels: list[str] = []
    bars: dict[str, list[_Bar]] = {}
    for model in model_order(results):
        entries: list[_Bar] = []
        label = None
        for recipe in style.recipe_list:
            cell = find_cell(results, model, recipe)
            if cell is None:
                continue
            if cell.status != "ok":
                entries.append((recipe, cell.status, None))
                continue
            ref = reference_point(cell, style.sizes)
            rate = point_gflops_per_s(ref) if ref is not None else None
            if ref is None or rate is None:
                continue
            entries.append((recipe, rate, None))
            if label is None:
                unit = {"vision": " px", "text": " tokens"}.get(cell.family or "", "")
                label = f"{model}\n({ref.batch_size} × {ref.input_size}{unit})"
        if label is not None:
            groups.append(model)
            labels.append(label)
            bars[model] = entries
    if not groups:
        return False
    refs: list[tuple[str, float, str]] = []
    for key, text, colour in (
        ("fp32_gflops", "machine fp32 Linear: {v:.3g} GFLOP/s", "0.15"),
        ("int8_gops", "machine int8 Linear: {v:.3g} GOP/s", "tab:red"),
    ):
        v = (bench or {}).get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            refs.append((text.format(v=v), float(v), colour))
    values = [v for g in groups for _, v, _ in bars[g] if not isinstance(v, str)]
    vmax = max([*values, *(v for _, v, _ in refs)], default=1.0) or 1.0

    plt = _pyplot()
    n_bars = sum(len(b) for b in bars.values())
    fig, ax = plt.subplots(figsize=(8.5, max(2.8, 1.2 + 0.36 * n_bars + 0.25 * len(groups))))
    used = _grouped_barh(ax, groups, bars, style, lambda v: f"{v:.3g}", label_offset=vmax * 0.02)
    ax.set_yticklabels(labels, fontsize=8)
    lines = [
        ax.axvline(v, color=colour, linestyle="--", linewidth=1.3, label=text)
        for text, v, colour in refs
    ]
    ax.set_xlim(0, vmax * 1.35)
    ax.set_xlabel("achieved GFLOP/s (fp32 FLOPs / median time; fp32-equivalent for int8)")
    ax.set_title("Achieved compute at the reference shape (batch × input size)")
    ax.grid(True, axis="x", alpha=0.35)
    _recipe_patch_legend(ax, used, style, extra=lines)
    _save(fig, path)
    return True
