"""The compute figure: achieved GFLOP/s at the reference shape against the machine's
measured matmul rates."""

from __future__ import annotations

from pathlib import Path

from quantbench.report.data import find_cell, model_order, point_gflops_per_s
from quantbench.report.plots.bars import _Bar, _grouped_barh, _recipe_patch_legend
from quantbench.report.plots.style import PlotContext, _pyplot, _save, plot_context
from quantbench.results import CellResult
from quantbench.shapes import reference_point


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
