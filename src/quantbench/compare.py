"""Compare stored runs: the cells they share, side by side.

The first run is the baseline. For every (model, recipe, batch size, input size) point
that a later run also measured: both latency medians and the change, both paired
speedups vs fp32 (each taken inside its own run, so machine drift cancels), sizes and
task metrics. ``--fail-if-slower PCT`` turns a latency increase beyond PCT percent into
exit status 1, for CI.

Example::

    >>> from quantbench.compare import pct_change
    >>> round(pct_change(10.0, 11.0), 1)
    10.0
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantbench.errors import QuantbenchError
from quantbench.results import CellResult


@dataclass
class Point:
    run: str
    model: str
    recipe: str
    batch_size: int
    input_size: int
    base_ms: float
    ms: float
    change_pct: float  # latency change vs the baseline run, percent (+ = slower)
    base_speedup: float | None
    speedup: float | None
    base_size: int | None
    size: int | None
    base_metric: float | None
    metric: float | None


def pct_change(base: float, new: float) -> float:
    return (new / base - 1.0) * 100.0


def _points(cells: list[CellResult]) -> dict[tuple, tuple[CellResult, Any]]:
    out = {}
    for c in cells:
        if c.status != "ok":
            continue
        for p in c.latency:
            out[(c.model, c.recipe, p.batch_size, p.input_size)] = (c, p)
    return out


def compare(runs: list[tuple[dict[str, Any], list[CellResult]]]) -> list[Point]:
    """Points shared by the first run and each later one; raises when none are shared."""
    if len(runs) < 2:
        raise QuantbenchError("compare needs at least two runs")
    base_meta, base_cells = runs[0]
    base = _points(base_cells)
    out: list[Point] = []
    for meta, cells in runs[1:]:
        other = _points(cells)
        shared = sorted(base.keys() & other.keys())
        if not shared:
            raise QuantbenchError(
                f"runs {base_meta['id']} and {meta['id']} share no measured cells "
                "(no model, recipe, batch size and input size in common)"
            )
        for key in shared:
            (bc, bp), (c, p) = base[key], other[key]
            out.append(Point(
                run=meta["id"], model=key[0], recipe=key[1], batch_size=key[2],
                input_size=key[3], base_ms=bp.median, ms=p.median,
                change_pct=pct_change(bp.median, p.median),
                base_speedup=bp.speedup.median if bp.speedup else None,
                speedup=p.speedup.median if p.speedup else None,
                base_size=bc.size_bytes, size=c.size_bytes,
                base_metric=bc.accuracy.value if bc.accuracy else None,
                metric=c.accuracy.value if c.accuracy else None,
            ))  # fmt: skip
    return out


def regressions(points: list[Point], pct: float) -> list[Point]:
    return [p for p in points if p.change_pct > pct]


def _f(x: float | None, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def render(runs: list[dict[str, Any]], points: list[Point], fail_pct: float | None) -> str:
    """Markdown: the runs compared (machine, date), then one table per later run."""
    from quantbench.report.fmt import md_escape

    lines = ["# quantbench compare", "", "| Run | Date | Machine | Status |", "|---|---|---|---|"]
    for i, m in enumerate(runs):
        host = m.get("host") or {}
        machine = f"{host.get('cpu', '?')}, {host.get('cores', '?')} cores"
        tag = " (baseline)" if i == 0 else ""
        lines.append(f"| `{md_escape(m['id'])}`{tag} | {m.get('started_at', '?')} | "
                     f"{md_escape(machine)} | {m.get('status', '?')} |")  # fmt: skip
    lines.append("")
    for m in runs[1:]:
        pts = [p for p in points if p.run == m["id"]]
        lines += [
            f"## `{md_escape(m['id'])}` vs `{md_escape(runs[0]['id'])}`", "",
            "Latency is the median of each run's samples; change > 0 means slower. Speedups "
            "are paired vs fp32 inside each run.", "",
            "| Model | Recipe | Batch × size | Baseline ms | ms | Change | Speedup (base → new) "
            "| Size MiB (base → new) | Metric (base → new) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]  # fmt: skip
        for p in pts:
            flag = " ⚠️" if fail_pct is not None and p.change_pct > fail_pct else ""
            size = (f"{_f(p.base_size and p.base_size / 2**20, '.1f')} → "
                    f"{_f(p.size and p.size / 2**20, '.1f')}")  # fmt: skip
            lines.append(
                f"| {md_escape(p.model)} | {md_escape(p.recipe)} | {p.batch_size} × "
                f"{p.input_size} | {p.base_ms:.3f} | {p.ms:.3f} | {p.change_pct:+.1f}%{flag} | "
                f"{_f(p.base_speedup, '.2f')}x → {_f(p.speedup, '.2f')}x | {size} | "
                f"{_f(p.base_metric, '.4f')} → {_f(p.metric, '.4f')} |"
            )
        lines.append("")
    if fail_pct is not None:
        bad = regressions(points, fail_pct)
        lines.append(
            f"**{len(bad)} point(s) slower than the baseline by more than {fail_pct:g}%.**"
            if bad else f"No point is slower than the baseline by more than {fail_pct:g}%."
        )  # fmt: skip
    lines += ["", "![latency change](compare_latency.png)", "",
              "![speedups](compare_speedup.png)", ""]  # fmt: skip
    return "\n".join(lines)


def plot(out_dir: Path, points: list[Point]) -> list[Path]:
    """Latency change per shared point, and the paired speedups side by side (each PNG
    written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from quantbench.report.plots import save_png

    def save(fig: Any, path: Path) -> None:
        try:
            save_png(fig, path, dpi=110)
        finally:
            plt.close(fig)

    paths = []
    labels = [f"{p.model} · {p.recipe} · {p.batch_size}×{p.input_size}"
              + (f" [{p.run}]" if len({q.run for q in points}) > 1 else "") for p in points]  # fmt: skip
    h = max(2.5, 0.28 * len(points) + 1.2)
    fig, ax = plt.subplots(figsize=(9, h))
    colors = ["tab:red" if p.change_pct > 0 else "tab:green" for p in points]
    ax.barh(labels, [p.change_pct for p in points], color=colors)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("latency change vs the baseline run (%; > 0 = slower)")
    ax.tick_params(axis="y", labelsize=7)
    ax.invert_yaxis()
    fig.tight_layout()
    paths.append(out_dir / "compare_latency.png")
    save(fig, paths[-1])

    sp = [(lab, p) for lab, p in zip(labels, points, strict=True) if p.speedup is not None]
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
    paths.append(out_dir / "compare_speedup.png")
    save(fig, paths[-1])
    return paths


def run_compare(
    run_ids: list[str],
    store: str | None = None,
    out: str | None = None,
    fail_if_slower: float | None = None,
) -> tuple[str, Path, list[Point]]:
    """Load the runs from the store, compare, write compare.md and the plots to ``out``
    (atomically: a reader never sees half a file)."""
    from quantbench.results import atomic_write_text
    from quantbench.store import open_store

    if fail_if_slower is not None and fail_if_slower < 0:
        raise QuantbenchError(f"fail-if-slower must be a percentage >= 0, got {fail_if_slower:g}")
    st = open_store(store, create=False)
    try:
        runs = [st.load_run(r) for r in run_ids]
    finally:
        st.close()
    points = compare(runs)
    out_dir = Path(out) if out else Path("quantbench-runs") / ("compare-" + "-vs-".join(run_ids))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise QuantbenchError(f"cannot write to '{out_dir}': {e.strerror or e}") from None
    text = render([m for m, _ in runs], points, fail_if_slower)
    atomic_write_text(out_dir / "compare.md", text + "\n")
    plot(out_dir, points)
    return text, out_dir, points
