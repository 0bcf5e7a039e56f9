"""The figures of compare.md (``quantbench compare``): the latency change at every shared
point, and each run's paired speedups side by side. Which figures exist and their files:
``report.figures`` (``COMPARE_FIGURES``).

Example::

    from quantbench.report.plots.compare import plot_latency_change
    plot_latency_change(Path("out/compare_latency.png"), comparison)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantbench.report.plots.style import _pyplot, save_closed

DPI = 110


def _labels(points: list[Any]) -> list[str]:
    """``model · recipe · BxS``, with the run when several runs are compared."""
    several = len({p.run for p in points}) > 1
    return [f"{p.model} · {p.recipe} · {p.batch_size}×{p.input_size}"
            + (f" [{p.run}]" if several else "") for p in points]  # fmt: skip


def plot_latency_change(path: Path, cmp: Any) -> bool:
    """Latency change per shared point of ``cmp`` (a :class:`quantbench.compare.Comparison`):
    red slower, green faster, grey not significant."""
    plt, points = _pyplot(), cmp.points
    fig, ax = plt.subplots(figsize=(9, max(2.5, 0.28 * len(points) + 1.2)))
    colors = ["silver" if not p.significant else "tab:red" if p.change_pct > 0 else "tab:green"
              for p in points]  # fmt: skip
    ax.barh(_labels(points), [p.change_pct for p in points], color=colors)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("latency change vs the baseline run (%; > 0 = slower; grey = not significant)")
    ax.tick_params(axis="y", labelsize=7)
    ax.invert_yaxis()
    fig.tight_layout()
    save_closed(fig, path, dpi=DPI)
    return True


def plot_speedups(path: Path, cmp: Any) -> bool:
    """The paired speedups vs fp32 of both runs at each shared point that has one."""
    plt, points = _pyplot(), cmp.points
    sp = [(lab, p) for lab, p in zip(_labels(points), points, strict=True) if p.speedup is not None]
    fig, ax = plt.subplots(figsize=(9, max(2.5, 0.28 * len(sp) + 1.2)))
    if sp:
        ys = range(len(sp))
        ax.barh([y - 0.2 for y in ys], [p.base_speedup or 0 for _, p in sp], height=0.4,
                label="baseline run", color="tab:blue")  # fmt: skip
        ax.barh([y + 0.2 for y in ys], [p.speedup for _, p in sp], height=0.4,
                label="compared run", color="tab:orange")  # fmt: skip
        ax.set_yticks(list(ys), [lab for lab, _ in sp], fontsize=7)
        ax.axvline(1, color="black", lw=0.8, ls="--")
        ax.legend(fontsize=8)
        ax.invert_yaxis()
    ax.set_xlabel("paired speedup vs fp32 (inside each run)")
    fig.tight_layout()
    save_closed(fig, path, dpi=DPI)
    return True
