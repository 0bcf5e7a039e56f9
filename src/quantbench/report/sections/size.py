"""## 1. Models and model size (the per-variant table) and ## 3. Model size (by family)."""

from __future__ import annotations

import math

from quantbench.report.context import ReportContext
from quantbench.report.data import (
    BASELINE,
    find_cell,
    model_family,
    model_order,
    ok_cells,
    sort_cells,
)
from quantbench.report.findings import compression, ordered_families
from quantbench.report.fmt import Md, fmt_counts, fmt_mib, fmt_params, fmt_pct, md_escape, md_table


def _em(text: str) -> Md:
    """``text`` in italics, as a table cell."""
    return Md(f"*{md_escape(text)}*")


def ratio_text(orig: int | None, quant: int | None) -> str:
    """quantized/original as ``0.25x (4.0x smaller)``, ``1.00x (no change)``, ..."""
    if not orig or quant is None:
        return "—"
    ratio = quant / orig
    if quant == 0:
        return f"{ratio:.2f}x"
    factor = orig / quant
    if abs(ratio - 1) < 0.005:
        return f"{ratio:.2f}x (no change)"
    if ratio < 1:
        return (
            f"{ratio:.2f}x ({factor:.1f}x smaller)"
            if factor >= 1.1
            else f"{ratio:.2f}x ({factor:.2f}x smaller)"
        )
    return f"{ratio:.2f}x ({ratio:.2f}x larger)"


def models(ctx: ReportContext) -> list[str]:
    """One row per variant: what was quantized, its size against fp32's."""
    results = ctx.results
    rows = []
    for model in model_order(results):
        base = find_cell(results, model, BASELINE)
        base_ok = base if base is not None and base.status == "ok" else None
        family = model_family(results, model) or "—"
        orig = base_ok.size_bytes if base_ok else None
        variants = [c for c in sort_cells(results) if c.model == model and c.recipe != BASELINE]
        if not variants:
            rows.append(
                [model, family, "fp32", fmt_mib(orig), "— (fp32 only)", "—", "—", "—",
                 fmt_pct(base_ok.int8_param_fraction) if base_ok else "—",
                 fmt_params(base_ok.params) if base_ok else "—"]
            )  # fmt: skip
            continue
        for c in variants:
            if c.status != "ok":
                rows.append(
                    [model, family, "fp32", fmt_mib(orig), c.recipe, _em(c.status),
                     _em(c.status), "—", "—", fmt_params(base_ok.params) if base_ok else "—"]
                )  # fmt: skip
                continue
            rows.append(
                [model, family, "fp32", fmt_mib(orig), c.recipe, fmt_counts(c.quantized_modules),
                 fmt_mib(c.size_bytes), ratio_text(orig, c.size_bytes),
                 fmt_pct(c.int8_param_fraction),
                 fmt_params(c.params if c.params is not None else (base_ok.params if base_ok else None))]
            )  # fmt: skip
    if not rows:
        return ["No results in this run.", ""]
    lines = md_table(
        ["Model", "Family", "Original precision", "Original size (MiB)", "Target precision",
         "Parts quantized", "Quantized size (MiB)", "Ratio (quantized/original)",
         "int8 params", "Params"],
        rows,
    )  # fmt: skip
    lines += [
        "",
        "Size is the bytes of the saved artifact (as `du` sees it). *int8 params* is the "
        "share of parameter bytes stored as int8.",
        "",
    ]
    return lines


def size(ctx: ReportContext) -> list[str]:
    """The size figure, then per family how much of fp32's size each recipe leaves."""
    lines = ctx.figure_lines("size")
    comp = compression(ctx.results)
    if not comp:
        have_size = any(c.size_bytes is not None for c in ok_cells(ctx.results))
        lines.append(
            "No quantized size could be compared with an fp32 size in this run."
            if have_size
            else "Size was not measured in this run."
        )
        return lines + [""]
    for fam in ordered_families(comp):
        models = list(dict.fromkeys(m for pairs in comp[fam].values() for m, _ in pairs))
        parts = []
        for recipe, pairs in comp[fam].items():
            ratios = [r for _, r in pairs]
            lo, hi = min(ratios), max(ratios)
            span = f"{lo:.2f}" if math.isclose(lo, hi, abs_tol=0.005) else f"{lo:.2f}–{hi:.2f}"
            parts.append(f"{md_escape(recipe)} leaves {span} of the fp32 size")
        lines.append(
            f"- **{md_escape(fam)}** ({len(models)} model{'s' if len(models) != 1 else ''}: "
            f"{', '.join(md_escape(m) for m in models)}): " + "; ".join(parts) + "."
        )
    return lines + [""]
