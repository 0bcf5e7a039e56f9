"""The size figure: artifact size (MiB) per model and recipe, one panel per family."""

from __future__ import annotations

from pathlib import Path

from quantbench.report.data import find_cell, mib, model_family, model_order, ok_cells
from quantbench.report.plots.bars import _Bar, _grouped_barh, _recipe_patch_legend
from quantbench.report.plots.style import PlotContext, _pyplot, _save, plot_context
from quantbench.results import CellResult


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
