"""Trade-off figures: accuracy vs latency and size vs latency vs accuracy per model, with
their Pareto fronts."""

from __future__ import annotations

from pathlib import Path

from quantbench.report.data import BASELINE, model_order, to_ms
from quantbench.report.plots.style import PlotContext, _pyplot, _save, plot_context
from quantbench.results import CellResult
from quantbench.shapes import reference_point


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
