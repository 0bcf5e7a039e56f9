"""## 6. Accuracy on real data (task metrics, the bar, the Pareto figure) and what each
accuracy-aware fallback kept in float; without evaluation data, ## 6. Accuracy-aware fallback."""

from __future__ import annotations

from quantbench.report.context import ReportContext
from quantbench.report.data import find_cell, sort_cells, stored_variant, to_ms
from quantbench.report.fmt import Md, fmt_mib, fmt_pct, fmt_sig, md_code, md_escape, md_table
from quantbench.results import Accuracy, CellResult
from quantbench.shapes import reference_point


def metric_text(acc: Accuracy | None) -> str:
    """``top1 71.90% (99.9% of fp32)`` / ``Spearman 0.9981``; "—" when not measured."""
    if not acc or acc.value is None:
        return "—"
    v, rel = acc.value, acc.relative
    if acc.metric == "spearman":
        return f"Spearman {v:.4f}"
    text = f"{md_escape(acc.metric)} {v:.2%}"
    return text + (f" ({rel:.1%} of fp32)" if rel is not None else "")


def _fallback_base(cell: CellResult) -> str | None:
    """The variant an ``...+fallback`` cell fell back from; None for other cells."""
    v = stored_variant(cell.recipe)
    if v.name != cell.recipe or v.transforms[-1:] != ("fallback",):
        return None
    return v.without_last().name


def fallback_lines(ctx: ReportContext) -> list[str]:
    """What each ``<recipe>+fallback`` kept in float, what it cost, and the ranking."""
    results = ctx.results
    lines: list[str] = []
    for c in sort_cells(results):
        base_name = _fallback_base(c)
        if base_name is None or c.status != "ok":
            continue
        base = find_cell(results, c.model, base_name)
        kept = c.details.get("float_layers") or []
        cost = []
        if base and base.size_bytes and c.size_bytes:
            cost.append(f"size {fmt_mib(base.size_bytes)} → {fmt_mib(c.size_bytes)} MiB")
        bp = reference_point(base, ctx.sizes) if base else None
        cp = reference_point(c, ctx.sizes)
        if bp and cp:
            cost.append(
                f"latency {fmt_sig(to_ms(bp.median, bp.unit))} → "
                f"{fmt_sig(to_ms(cp.median, cp.unit))} ms at the reference shape"
            )
        steps = "; ".join(
            f"+{md_escape(n)} → {v:.4f}" if v is not None else f"+{md_escape(n)}"
            for n, v in c.details.get("fallback_steps") or []
        )
        if c.accuracy:
            result, met = metric_text(c.accuracy), bool(c.accuracy.passes)
        else:
            f = c.fidelity
            result = f"cosine {fmt_sig(f.cosine, 4)}" if f and f.cosine is not None else "—"
            if f and f.top1_agreement is not None:
                result += f", top-1 agreement {fmt_pct(f.top1_agreement)}"
            met = bool(c.details.get("meets_bar"))
        lines += [
            f"**{md_escape(c.model)} · {md_escape(c.recipe)}:** kept {len(kept)} layer(s) in "
            f"float ({', '.join(map(md_code, kept))}); {result}, "
            f"{'meets' if met else 'still misses'} the bar. "
            f"Cost: {', '.join(cost) or 'not measured'}. Steps: {steps}.",
            "",
        ]
        sens = c.details.get("sensitivity") or []
        if sens:
            lines += md_table(
                ["Layer (most sensitive first)", "Type", "Cosine won back in float"],
                [[md_code(n), k, f"{e:+.4f}" if e is not None else "—"]
                 for n, k, e in sens],
            )  # fmt: skip
            lines.append("")
    return lines


def _scored(ctx: ReportContext) -> list[CellResult]:
    return [c for c in sort_cells(ctx.results) if c.accuracy]


def accuracy(ctx: ReportContext) -> list[str] | None:
    """Task metrics per variant, the bar, what fallback kept in float, and the Pareto plot."""
    from quantbench.best import bar_text

    cells = _scored(ctx)
    if not cells:
        return None
    spec = ctx.run.get("spec") or {}
    drop = float(spec.get("max_accuracy_drop", 0.01))
    lines = [
        f"Each variant is scored on the evaluation data; it **passes** when its metric stays "
        f"at or above {bar_text(drop)} of fp32's (`--max-accuracy-drop {drop:g}`). For sentence "
        "embeddings the metric is the Spearman correlation between the fp32 and the variant's "
        "pairwise-similarity matrices (does retrieval ranking survive?), with the cosine of "
        "each sentence's embedding to fp32's beside it.", "",
    ]  # fmt: skip
    rows = []
    for c in cells:
        a = c.accuracy or Accuracy()
        if a.metric == "spearman":
            other = f"cosine mean {fmt_sig(a.mean_cosine, 4)}, min {fmt_sig(a.min_cosine, 4)}"
        else:
            parts = [f"top-5 {a.top5:.2%}"] if a.top5 is not None else []
            if a.macro_f1 is not None:
                parts.append(f"macro-F1 {a.macro_f1:.4f}")
            other = ", ".join(parts) or "—"
        verdict = "—" if c.recipe == "fp32" else ("pass" if a.passes else Md("**fail**"))
        n = "—" if a.n is None else str(a.n)
        rows.append([c.model, c.recipe, Md(metric_text(a)), other, n, verdict])
    lines += md_table(["Model", "Recipe", "Metric", "Also", "Examples", "Bar"], rows)
    lines.append("")
    sources = sorted({str(c.accuracy.dataset if c.accuracy else None) for c in cells})
    lines.append(f"Evaluation data: {', '.join(map(md_code, sources))}.")
    if spec.get("calibration") is None and any(
        "calibrated" in n and "synthetic" in n for c in cells for n in c.notes
    ):
        lines.append(
            "⚠️ Static recipes were calibrated on **synthetic inputs** (no `--calibration` "
            "data): their activation ranges may not fit real data, and accuracy may suffer."
        )
    lines.append("")
    lines += fallback_lines(ctx)
    return lines + ctx.figure_lines("accuracy")


def fallback_only(ctx: ReportContext) -> list[str] | None:
    """Without evaluation data: what each fallback variant kept in float (fidelity bar)."""
    if _scored(ctx):
        return None
    fallback = fallback_lines(ctx)
    if not fallback:
        return None
    return [
        "No evaluation data was given, so the bar was fidelity to fp32 on the same "
        "inputs (cosine and top-1 agreement, as in the recommendation table).", "",
        *fallback,
    ]  # fmt: skip
