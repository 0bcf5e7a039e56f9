"""Speedup figures: paired speedup vs fp32 at the reference shape (bars), and over
batch size x input size (heatmap)."""

from __future__ import annotations

from pathlib import Path

from quantbench.report.data import BASELINE, find_cell, model_order
from quantbench.report.plots.bars import _Bar, _grouped_barh, _recipe_patch_legend
from quantbench.report.plots.style import PlotContext, _pyplot, _save, plot_context
from quantbench.results import CellResult
from quantbench.shapes import reference_point


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
