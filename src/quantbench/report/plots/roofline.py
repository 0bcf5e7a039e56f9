"""The limit figures: the roofline (log-log, the machine's ceilings drawn, one point per
variant at its reference shape) and the time by operator kind (a stacked bar per
variant, one panel per model). Their data: ``report.limits``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantbench.measure.profile import KINDS
from quantbench.report.limits import LimitRow, Limits
from quantbench.report.plots.style import PlotContext, _pyplot, _save
from quantbench.results import CellResult

_PEAK_COLOURS = {"fp32": "0.15", "bf16": "tab:purple", "fp16": "tab:brown", "int8": "tab:red"}
_KIND_COLOURS = {"matmul": "#4C72B0", "qdq": "#DD8452", "reorder": "#C44E52",
                 "norm": "#8172B3", "softmax": "#55A868", "other": "#937860"}  # fmt: skip


def plot_roofline(path: Path, found: Limits | None, ctx: PlotContext) -> bool:
    """Rate (G op/s) against arithmetic intensity (op/byte), both log: the bandwidth
    slope, each precision's measured peak (dashed; theoretical dotted), one point per
    variant. False (nothing written) without ceilings or a point."""
    if found is None or found.ceilings is None:
        return False
    rows = [r for r in found.rows if r.roof is not None and r.work.intensity]
    bw = found.ceilings.bandwidth()
    if not rows or not bw:
        return False
    c = found.ceilings
    xs = [r.work.intensity for r in rows]
    lo, hi = min(xs) / 4, max(max(xs) * 4, *(c.ridge(p) or 0 for p in c.peaks))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 6.2))
    top = max(c.peak(p) or 0 for p in c.peaks)
    ax.plot([lo, hi], [bw * lo / 1e9, min(bw * hi, top * 4) / 1e9], color="0.3", lw=1.4,
            label=f"memory: {bw / 1e9:.3g} GB/s (STREAM triad)")  # fmt: skip
    for p, best in c.peaks.items():
        rate = c.peak(p)
        if rate is None:
            continue
        unit = "GOP/s" if p == "int8" else "GFLOP/s"
        colour = _PEAK_COLOURS.get(p, "0.5")
        ax.hlines(rate / 1e9, (c.ridge(p) or lo), hi, colors=colour, linestyles="--", lw=1.4,
                  label=f"{p} peak {rate / 1e9:.3g} {unit} ({best.get('library')})")  # fmt: skip
        theory = (c.theoretical.get(p) or {}).get("rate")
        if theory:
            ax.hlines(theory / 1e9, lo, hi, colors=colour, linestyles=":", lw=1.0,
                      label=f"{p} theoretical {theory / 1e9:.3g} {unit}")  # fmt: skip
    for i, r in enumerate(sorted(rows, key=lambda r: r.work.intensity or 0)):
        _point(ax, r, ctx, i)
    _log_axes(ax)
    ax.set_xlim(lo, hi)
    ax.set_xlabel("arithmetic intensity (FLOPs per byte moved: weights + activations)")
    ax.set_ylabel("G ops/s (FLOPs of the fp32 model / median time)")
    ax.set_title(f"Roofline at the reference shape ({c.threads} thread(s))")
    ax.grid(True, which="both", alpha=0.3)
    # below the axes: inside, it would hide the points of the memory-bound corner
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2,
              frameon=False)  # fmt: skip
    _save(fig, path)
    return True


def _log_axes(ax: Any) -> None:
    """Both axes logarithmic, ticks as plain numbers (no 2×10⁰)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(NullFormatter())


def _point(ax: Any, r: LimitRow, ctx: PlotContext, i: int) -> None:
    roof = r.roof
    assert roof is not None
    colour = ctx.colors.get(r.cell.model, "0.4")
    style = ctx.recipes.get(r.cell.recipe)
    marker = style.marker if style is not None else "o"
    x, y = r.work.intensity, roof.achieved / 1e9
    ax.plot([x], [y], marker=marker, color=colour, ms=8, mec="0.1", ls="none")
    ax.vlines(x, y, roof.attainable / 1e9, colors=colour, lw=0.8, alpha=0.6)
    # neighbours (a variant that changed little) would print over each other: stagger
    ax.annotate(f"{r.cell.model} · {r.cell.recipe} ({roof.share:.0%})", (x, y),
                xytext=(6, -3 - 9 * (i % 3)), textcoords="offset points", fontsize=7)  # fmt: skip


def plot_time_breakdown(path: Path, found: Limits | None, ctx: PlotContext) -> bool:
    """Per model, a stacked bar per variant: ms of one pass by operator kind, what no
    operator accounts for hatched, and a tick at the fastest timed pass. False without a
    profiled variant."""
    rows = found.profiled if found is not None else []
    if not rows:
        return False
    models = list(dict.fromkeys(r.cell.model for r in rows))
    plt = _pyplot()
    heights = [len([r for r in rows if r.cell.model == m]) for m in models]
    fig, axes = plt.subplots(len(models), 1, squeeze=False,
                             figsize=(8.5, 1.2 + sum(0.45 * h + 0.7 for h in heights)),
                             gridspec_kw={"height_ratios": [h + 1 for h in heights]})  # fmt: skip
    for ax, model in zip(axes[:, 0], models, strict=True):
        mine = [r for r in rows if r.cell.model == model]
        for y, r in enumerate(reversed(mine)):
            _stack(ax, y, r)
        ax.set_yticks(range(len(mine)))
        ax.set_yticklabels([f"{r.cell.recipe}\n({r.breakdown.profiler})"  # type: ignore[union-attr]
                            for r in reversed(mine)], fontsize=7)  # fmt: skip
        b = mine[0].breakdown
        assert b is not None
        ax.set_title(f"{model} at batch {b.batch_size} × size {b.input_size}", fontsize=9,
                     loc="left")  # fmt: skip
        ax.set_xlabel("ms of one forward pass", fontsize=8)
        ax.grid(True, axis="x", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=_KIND_COLOURS[k]) for k in KINDS]
    handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="0.4", hatch="///"))
    handles.append(plt.Line2D([0], [0], color="black", marker="|", ls="none", ms=12))
    labels = [*KINDS.values(), "not in an operator", "fastest timed pass"]
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    _save(fig, path)
    return True


def _stack(ax: Any, y: int, r: LimitRow) -> None:
    b = r.breakdown
    assert b is not None
    left = 0.0
    for kind, ms in b.kinds.items():
        if ms > 0:
            ax.barh(y, ms, left=left, color=_KIND_COLOURS.get(kind, "0.6"), height=0.6)
            left += ms
    if b.unattributed_ms > 0:
        ax.barh(y, b.unattributed_ms, left=left, facecolor="white", edgecolor="0.4",
                hatch="///", height=0.6, lw=0.5)  # fmt: skip
    from quantbench.report.data import to_ms

    ax.plot([to_ms(r.point.min, r.point.unit)], [y], marker="|", color="black", ms=14)


def draw_roofline(path: Path, results: list[CellResult], ctx: PlotContext) -> bool:
    """The figure registry's entry: :func:`plot_roofline` of the run in ``ctx``."""
    return plot_roofline(path, ctx.limits, ctx)


def draw_time_breakdown(path: Path, results: list[CellResult], ctx: PlotContext) -> bool:
    """The figure registry's entry: :func:`plot_time_breakdown` of the run in ``ctx``."""
    return plot_time_breakdown(path, ctx.limits, ctx)
