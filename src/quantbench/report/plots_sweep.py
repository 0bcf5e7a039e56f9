"""Drawing a model across machines (a sweep, ``quantbench.machines``): per recipe, one bar
per machine, for the speedup vs fp32 on that machine and for the median latency, both at
each run's reference shape. Which figures exist and their files: ``report.figures``
(``SWEEP_FIGURES``).

One colour per machine, the same in every figure of a comparison. matplotlib is
imported inside the functions (Agg backend), so importing this module stays cheap.

Example::

    from quantbench.machines import load
    from quantbench.report.plots_sweep import plot_machines
    cmp = load(sweep_id="s1", store="quantbench.db")
    plot_machines(Path("out/machines_resnet18.png"), cmp, cmp.tables[0])
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantbench.report.data import BASELINE
from quantbench.report.plots import LOG_RANGE, _pyplot, _save

if TYPE_CHECKING:
    from quantbench.machines import MachineComparison, ModelTable


def machine_colors(cmp: MachineComparison) -> dict[str, Any]:
    """A distinct colour per machine (run id), in the comparison's order."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(cmp.machines) <= 10 else "tab20"]
    return {m.run_id: cmap(i % cmap.N) for i, m in enumerate(cmp.machines)}


def _grouped(
    ax: Any, cmp: MachineComparison, table: ModelTable, recipes: list[str], value: str
) -> list[float]:
    """Vertical bars: a group per recipe, a bar per machine; a cell that is not ok (or not
    run) is a grey note in its slot, never a missing bar read as zero. Returns the values."""
    colors = machine_colors(cmp)
    n = max(1, len(cmp.machines))
    width = 0.8 / n
    values: list[float] = []
    labelled: set[str] = set()  # each machine once in the legend
    for ri, recipe in enumerate(recipes):
        for mi, m in enumerate(cmp.machines):
            x = ri - 0.4 + width * (mi + 0.5)
            e = table.entries.get((recipe, m.run_id))
            v = None if e is None else e.speedup if value == "speedup" else e.ms
            if v is None:
                note = "not run" if e is None else e.status if e.status != "ok" else "—"
                ax.text(x, 0, f" {note}", rotation=90, ha="center", va="bottom", fontsize=7,
                        style="italic", color="0.35")  # fmt: skip
                continue
            yerr = None
            if value == "speedup" and e is not None and e.ci is not None:
                yerr = [[max(0.0, v - e.ci[0])], [max(0.0, e.ci[1] - v)]]
            ax.bar(x, v, width=width * 0.92, color=colors[m.run_id], edgecolor="0.2",
                   linewidth=0.6, yerr=yerr, error_kw={"capsize": 2, "elinewidth": 0.8},
                   label=None if m.run_id in labelled else m.label)  # fmt: skip
            labelled.add(m.run_id)
            ax.annotate(f"{v:.2f}x" if value == "speedup" else f"{v:.3g}", (x, v),
                        xytext=(0, 2), textcoords="offset points", ha="center",
                        va="bottom", fontsize=6.5)  # fmt: skip
            values.append(v)
    ax.set_xticks(range(len(recipes)), recipes, rotation=20, ha="right", fontsize=8)
    return values


def plot_machines(path: Path, cmp: MachineComparison, table: ModelTable) -> bool:
    """Speedup vs fp32 (each machine's own, paired) and median latency of one model, per
    recipe and machine; False when no machine measured its latency."""
    if not any(e.ms is not None for e in table.entries.values()):
        return False
    plt = _pyplot()
    variants = [r for r in table.recipes if r != BASELINE]
    wide = max(len(variants), len(table.recipes)) * max(1, len(cmp.machines))
    fig, axes = plt.subplots(1, 2, figsize=(min(16, 6 + 0.5 * wide), 4.2))
    ax = axes[0]
    if variants and _grouped(ax, cmp, table, variants, "speedup"):
        ax.axhline(1.0, color="0.1", linestyle="--", linewidth=1.0)
        ax.set_ylabel("speedup vs fp32, same machine (> 1 = faster)")
    else:
        ax.text(0.5, 0.5, "no speedup measured", ha="center", va="center",
                transform=ax.transAxes, color="0.35")  # fmt: skip
    ax.set_title("Speedup vs fp32 (paired, per machine)", fontsize=10)
    ax.grid(True, axis="y", alpha=0.35)
    ax = axes[1]
    values = _grouped(ax, cmp, table, table.recipes, "ms")
    if values and min(values) > 0 and max(values) / min(values) > LOG_RANGE:
        ax.set_yscale("log")
    ax.set_ylabel("median latency (ms)")
    ax.set_title("Latency at the reference shape", fontsize=10)
    ax.grid(True, axis="y", alpha=0.35)
    handles, labels = axes[1].get_legend_handles_labels()
    if not handles:
        handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, max(1, len(labels))),
               fontsize=8, frameon=False, bbox_to_anchor=(0.5, -0.02))  # fmt: skip
    fig.suptitle(f"{table.model} across machines", fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    _save(fig, path)
    return True
