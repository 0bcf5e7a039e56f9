"""## 5. Discussion: the findings of ``report.findings`` in words.

Compression, speedup at the reference shape, where a variant is slower than fp32 (and
why), where it is barely faster, achieved compute against the machine's matmul rates,
and fidelity to fp32.
"""

from __future__ import annotations

import statistics

from quantbench.report.context import ReportContext
from quantbench.report.data import (
    INT8_ISA_FLAGS,
    is_random_weights,
    model_order,
    ok_cells,
    sort_cells,
    to_ms,
    weights_by_model,
)
from quantbench.report.findings import (
    BARELY_FASTER,
    FIDELITY_MIN,
    SMALL_MS,
    AchievedCompute,
    BarelyFaster,
    ComputeEvidence,
    FewModules,
    ProfileEvidence,
    SlowCase,
    Speedups,
    achieved_compute,
    barely_faster,
    compression,
    fidelity_issue,
    ordered_families,
    slow_cases,
    speedups,
)
from quantbench.report.fmt import (
    Md,
    cell_name,
    fmt_counts,
    fmt_pct,
    fmt_shape,
    fmt_sig,
    fmt_speedup,
    md_escape,
    md_table,
)
from quantbench.report.limits import run_ceilings
from quantbench.report.sections.limits import share_text
from quantbench.results import CellResult


def discussion(ctx: ReportContext) -> list[str]:
    """Every finding of the run, in the order a reader asks for them."""
    cells = ok_cells(ctx.results)
    lines = _compression_lines(ctx)
    found = speedups(cells, ctx.sizes)
    lines += _speedup_lines(found)

    lines += ["**Where a quantized variant is slower than fp32:**", ""]
    slow_lines = [_slow_text(case) for case in slow_cases(ctx.run, cells, found, ctx.sizes)]
    if not found.points:
        slow_lines = ["- Not applicable: no speedup vs fp32 was measured."]
    lines += slow_lines or ["- None: every measured quantized variant is at least as fast as fp32."]
    lines.append("")

    # Barely faster at the reference shape (and not already discussed as slower).
    slow_cells = {id(c) for c, _, s in found.points if s.median < 1.0}
    barely = [_barely_text(b) for b in barely_faster(ctx.run, cells, slow_cells, ctx.sizes)]
    if barely:
        lines += [
            f"**Where a quantized variant is barely faster** (under {BARELY_FASTER:g}x at the "
            "reference shape):",
            "",
            *barely,
            "",
        ]
    if run_ceilings(ctx.run) is None:  # a run from before the ceilings; else: the roofline
        lines += _compute_lines(achieved_compute(ctx.run, cells, ctx.sizes))
    return lines + _fidelity_lines(ctx)


def _compression_lines(ctx: ReportContext) -> list[str]:
    comp = compression(ctx.results)
    lines = ["**Compression** (fp32 size / quantized size):", ""]
    if comp:
        for fam in ordered_families(comp):
            for recipe, pairs in comp[fam].items():
                factors = [1 / r for _, r in pairs if r > 0]
                if not factors:
                    continue
                mean = statistics.fmean(factors)
                lo, hi = min(factors), max(factors)
                if len(factors) == 1:
                    extra = f" ({md_escape(pairs[0][0])})"
                elif f"{lo:.2f}" == f"{hi:.2f}":
                    extra = f" (the same for all {len(factors)} models)"
                else:
                    extra = f" (range {lo:.2f}x–{hi:.2f}x over {len(factors)} models)"
                lines.append(
                    f"- {md_escape(fam)}, {md_escape(recipe)}: {mean:.2f}x smaller on "
                    f"average{extra}."
                )
    else:
        lines.append("- No size comparison available.")
    return lines + [""]


def _speedup_lines(found: Speedups) -> list[str]:
    """Speedup at the reference shape, with best and worst shapes."""
    rows = []
    for r in found.rows:
        fam = r.cell.family
        rows.append(
            [r.cell.model, r.cell.recipe, fmt_shape(r.ref, fam) if r.ref else "—",
             fmt_speedup(r.ref_speedup),
             Md(f"{fmt_shape(r.best[0], fam)} ({r.best[1].median:.2f}x)") if r.best else "—",
             Md(f"{fmt_shape(r.worst[0], fam)} ({r.worst[1].median:.2f}x)") if r.worst else "—"]
        )  # fmt: skip
    lines = ["**Speedup vs fp32** at each model's reference shape:", ""]
    if rows:
        lines += md_table(
            ["Model", "Recipe", "Reference shape", "Speedup [CI]", "Best shape", "Worst shape"],
            rows,
        )
        lines.append("")
    else:
        lines += ["- No latency was measured for a quantized variant.", ""]
    if found.best is not None and found.worst is not None:
        best_c, best_p, best_s = found.best
        worst_c, worst_p, worst_s = found.worst
        lines += [
            f"Across the run, quantization helps most for {cell_name(best_c)} at "
            f"{fmt_shape(best_p, best_c.family)} ({fmt_speedup(best_s)}) and least for "
            f"{cell_name(worst_c)} at {fmt_shape(worst_p, worst_c.family)} "
            f"({fmt_speedup(worst_s)}).",
            "",
        ]
    return lines


def _few_text(few: FewModules) -> str:
    if few.nothing:
        return "nothing was quantized, so the variant can only add overhead"
    text = f"few modules were quantized (only {fmt_counts(few.quantized)}"
    if few.fraction is not None:
        text += f"; {fmt_pct(few.fraction)} of parameters int8"
    text += ")"
    if few.floats:
        text += f" while {fmt_counts(few.floats, sep=' ')} stayed in float"
    return text + ", so there is little int8 compute to gain from"


def _evidence_text(e: ComputeEvidence) -> str:
    """Achieved GFLOP/s of fp32 and of the variant, against the micro-benchmark."""
    shape = fmt_shape(e.point, e.family)
    parts = []
    if e.fp32_rate is not None:
        text = f"fp32 reaches {fmt_sig(e.fp32_rate)} GFLOP/s at {shape}"
        if e.fp32_peak is not None:
            text += (
                f", {e.fp32_share:.0%} of the machine's measured fp32 matmul rate "
                f"({fmt_sig(e.fp32_peak)} GFLOP/s)"
            )
            if not e.matmul_bound:
                text += (
                    ", so this pass is limited by something other than matrix-multiply "
                    "throughput (memory traffic, small or non-matmul operators, per-operator "
                    "overhead), which faster int8 matrix multiplies do not remove"
                )
            else:
                text += ", so this pass is largely bound by matrix-multiply throughput"
        parts.append(text)
    if e.rate is not None:
        text = f"{md_escape(e.recipe)} reaches {fmt_sig(e.rate)} GFLOP/s fp32-equivalent"
        if e.fp32_rate is None:
            text += f" at {shape}"
        what = "int8 matmul peak" if e.source == "ceilings" else "int8 Linear rate"
        if e.int8_peak is not None:
            text += (
                f" ({e.rate / e.int8_peak:.0%} of the machine's {what}, "
                f"{fmt_sig(e.int8_peak)} GOP/s)"
            )
        parts.append(text)
    if e.slow_int8:
        parts.append(
            f"this machine's int8 matmuls peak at only {e.bench_ratio:.2f}x fp32's"
            if e.source == "ceilings"
            else f"this machine's int8 Linear runs only {e.bench_ratio:.2f}x as fast as fp32 "
            "in the micro-benchmark"
        )
    return "; ".join(parts)


def _profile_text(p: ProfileEvidence, cell: CellResult) -> str:
    """What the variant's profile and roofline say, against fp32's at the same shape:
    "31% of the time in quantize/dequantize and reorders, matmuls 1.9x faster than
    fp32's"."""
    where = f"profiled at {fmt_shape(p.point, cell.family)} ({md_escape(p.variant.profiler)})"
    parts = [f"{share_text(p.overhead_share)} of {md_escape(cell.recipe)}'s operator time in "
             "quantize/dequantize and layout reorders"]  # fmt: skip
    speed = p.matmul_speedup
    if speed is not None:
        parts.append(f"its matmuls/convolutions {speed:.2f}x "
                     + ("faster than fp32's" if speed >= 1 else "as fast as fp32's"))  # fmt: skip
    if p.roof is not None:
        text = f"it reaches {p.roof.share:.0%} of its attainable rate ({p.roof.bound}-bound)"
        if p.fp32_roof is not None:
            text += f", fp32 {p.fp32_roof.share:.0%} ({p.fp32_roof.bound}-bound)"
        parts.append(text)
    return f"{where}: " + ", ".join(parts)


def _slow_text(case: SlowCase) -> str:
    c = case.cell
    shape_texts = [f"{fmt_shape(p, c.family)}: {fmt_speedup(s)}" for p, s in case.slow[:3]]
    if len(case.slow) > 3:
        shape_texts.append(f"{len(case.slow) - 3} more")
    if case.n_significant == len(case.slow):
        sig_text = "the CI is entirely below 1 at every one of them"
    elif case.n_significant:
        sig_text = f"the CI is entirely below 1 at {case.n_significant}; the others may be noise"
    else:
        sig_text = "the CI includes 1.0 at each, so this may be noise"
    reasons = []
    if case.few:
        reasons.append(_few_text(case.few))
    if case.small:
        shapes = ", ".join(
            f"{fmt_shape(p, c.family)} takes {fmt_sig(to_ms(p.median, p.unit))} ms"
            for p in case.small[:3]
        )
        if len(case.small) > 3:
            shapes += f", and {len(case.small) - 3} more under {SMALL_MS:g} ms"
        reasons.append(
            "small shapes, where the fixed cost of quantizing/dequantizing activations "
            f"and dispatching int8 kernels dominates a short pass ({shapes})"
        )
    if case.missing_isa_flags is not None:
        flags = ", ".join(map(md_escape, case.missing_isa_flags)) or "none"
        reasons.append(
            f"the CPU has no VNNI/AMX int8 instructions (none of "
            f"{', '.join(INT8_ISA_FLAGS)} among its flags: {flags}), so int8 matrix "
            "multiplies gain little over fp32"
        )
    if case.noisy:
        reasons.append(
            f"{case.noisy} of these points {'is' if case.noisy == 1 else 'are'} marked "
            "noisy, so the ratio is uncertain"
        )
    if not case.has_reason and case.evidence is None and case.profile is None:
        reasons.append(
            "no cause is evident from the recorded data (enough modules quantized, "
            "int8 ISA present or unknown, not a tiny shape); profile this cell"
        )
    plural = "s" if len(reasons) > 1 else ""
    text = (
        f"- **{cell_name(c)}** is slower than fp32 at {len(case.slow)} of "
        f"{case.n_total} shapes ({sig_text}); slowest: {'; '.join(shape_texts)}."
    )
    if reasons:
        text += f" Likely reason{plural}: {'; '.join(reasons)}."
    if case.evidence is not None:
        text += f" Evidence: {_evidence_text(case.evidence)}."
    if case.profile is not None:
        text += f" Where the time goes: {_profile_text(case.profile, c)}."
    if case.winner is not None:
        w = case.winner
        names = " and ".join(f"**{md_escape(r)}**" for r in [w.recipe, *w.tied])
        which = "the fastest variant" if not w.tied else "the fastest variants (not told apart)"
        ci = f" [{w.speedup_ci[0]:.2f}, {w.speedup_ci[1]:.2f}]" if w.speedup_ci else ""
        text += (
            f" At {fmt_shape(case.slow[0][0], c.family)} {names} {'is' if not w.tied else 'are'} "
            f"{which} ({w.speedup:.2f}x fp32{ci}): use {'it' if not w.tied else 'one'} instead."
        )
    return text


def _barely_text(b: BarelyFaster) -> str:
    c = b.cell
    text = f"- **{cell_name(c)}**: {fmt_speedup(b.speedup)} at {fmt_shape(b.ref, c.family)}."
    if b.few:
        text += f" Likely reason: {_few_text(b.few)}."
    if b.evidence is not None:
        text += f" Evidence: {_evidence_text(b.evidence)}."
    if b.profile is not None:
        text += f" Where the time goes: {_profile_text(b.profile, c)}."
    if not b.few and b.evidence is None and b.profile is None:
        text += " No cause is evident from the recorded data."
    return text


def _compute_lines(found: AchievedCompute | None) -> list[str]:
    """The machine's int8:fp32 ceiling and each cell's achieved rate at its reference shape."""
    if found is None:
        return []
    title = "**Achieved compute" + (" vs the machine's matmul rates" if found.bench else "") + ":**"
    return [title, "", *_ceiling_lines(found), *_rate_lines(found)]


def _ceiling_lines(found: AchievedCompute) -> list[str]:
    """The micro-benchmark's rates, the int8:fp32 ceiling they set, and who beats it."""
    bench, ratio = found.bench, found.ratio
    fp32_peak, int8_peak = found.fp32_peak, found.int8_peak
    lines: list[str] = []
    if bench is not None:
        shape = bench.get("shape")
        shape_text = (
            "×".join(str(x) for x in shape)
            if isinstance(shape, (list, tuple)) and len(shape) == 3
            else "shape not recorded"
        )
        threads = bench.get("threads")
        setup = f"one Linear layer, M×K×N = {shape_text}" + (
            f", {threads} threads" if threads is not None else ""
        )
        rates = ", ".join(
            t
            for t in (
                f"fp32 {fmt_sig(fp32_peak)} GFLOP/s" if fp32_peak is not None else "",
                f"dynamic int8 {fmt_sig(int8_peak)} GOP/s" if int8_peak is not None else "",
            )
            if t
        )
        text = f"- Micro-benchmark at the start of the run ({setup}): {rates}."
        if ratio is not None and ratio >= 1:
            text += (
                f" So this machine's int8 Linear runs {ratio:.2f}x faster than fp32 at most "
                "(at that shape): the realistic ceiling for GEMM-dominated models. Speedups "
                "above it come from other changes than faster int8 matrix multiplies, such as "
                "fused conv+relu, smaller memory traffic, or matrix shapes where fp32 is less "
                "efficient than in the micro-benchmark."
            )
        elif ratio is not None:
            text += (
                f" int8 Linear is slower than fp32 on this machine ({ratio:.2f}x), so int8 "
                "matrix multiplies cannot be expected to speed a model up here; any speedup "
                "comes from other changes (fused operators, smaller memory traffic)."
            )
        lines.append(text)
        above = [
            f"{cell_name(c)} ({s.median:.2f}x at {fmt_shape(ref, c.family)})"
            for c, s, ref in found.above
        ]
        if ratio is not None and above:
            lines.append(
                f"- Above that {ratio:.2f}x ceiling at the reference shape: "
                + ", ".join(above)
                + "."
            )
        elif ratio is not None and found.any_variant_timed:
            lines.append(f"- No variant exceeds the {ratio:.2f}x ceiling at the reference shape.")
        lines.append("")
    return lines


def _rate_lines(found: AchievedCompute) -> list[str]:
    """Each cell's GFLOP and achieved GFLOP/s, and its share of the machine's rate."""
    lines: list[str] = []
    if found.rows:
        rows = [
            [r.cell.model, r.cell.recipe, fmt_shape(r.ref, r.cell.family), fmt_sig(r.gflop),
             fmt_sig(r.rate),
             f"{r.rate / r.peak:.0%} of {r.peak_name}" if r.peak is not None else "—"]  # own
            for r in found.rows
        ]  # fmt: skip
        headers = ["Model", "Recipe", "Reference shape", "GFLOP", "GFLOP/s achieved"]
        have_share = any(row[-1] != "—" for row in rows)
        if have_share:
            headers.append("Share of the machine's rate")
        lines += md_table(headers, [row if have_share else row[:-1] for row in rows])
        lines += ["", "GFLOP/s of int8 variants is fp32-equivalent (fp32 FLOPs / median time)."]
        if have_share:
            lines[-1] += (
                " The share compares fp32 with the measured fp32 Linear rate and int8 variants "
                "with the measured int8 Linear rate; a model far below the machine's rate is "
                "limited by something other than matrix-multiply throughput."
            )
        else:
            lines[-1] += (
                " No micro-benchmark was recorded with this run, so the achieved rates cannot "
                "be compared with the machine's capability."
            )
        lines.append("")
    return lines


def _fidelity_lines(ctx: ReportContext) -> list[str]:
    weights = weights_by_model(ctx.run, ctx.results)
    cells = [c for c in sort_cells(ok_cells(ctx.results)) if c.fidelity is not None]
    lines = ["**Fidelity** (outputs compared with fp32 on the same inputs):", ""]
    if not cells:
        return lines + ["- Fidelity was not measured in this run.", ""]
    rows = []
    warnings = []
    for c in cells:
        f = c.fidelity
        assert f is not None
        rows.append(
            [c.model, c.recipe, fmt_sig(f.cosine, 4) if f.cosine is not None else "—",
             fmt_sig(f.max_abs_err, 3), fmt_pct(f.top1_agreement), f.note or ""]
        )  # fmt: skip
        issue = fidelity_issue(c)
        if issue is None:
            continue
        problems = []
        if issue.undefined_cosine:
            problems.append("cosine is undefined (degenerate, e.g. all-zero, outputs)")
        elif issue.low_cosine is not None:
            problems.append(f"cosine {fmt_sig(issue.low_cosine, 4)} < {FIDELITY_MIN}")
        if issue.low_top1 is not None:
            problems.append(f"top-1 agreement {fmt_pct(issue.low_top1)} < {FIDELITY_MIN:.0%}")
        random_tag = " (random weights)" if is_random_weights(weights.get(c.model)) else ""
        warnings.append(f"- ⚠️ **{cell_name(c)}**{random_tag}: " + "; ".join(problems) + ".")
    lines += md_table(["Model", "Recipe", "Cosine", "Max abs err", "Top-1 agreement", "Note"], rows)
    lines.append("")
    lines += warnings or [f"- All measured variants keep cosine and top-1 ≥ {FIDELITY_MIN}."]
    random_models = [m for m in model_order(cells) if is_random_weights(weights.get(m))]
    if random_models:
        lines += [
            "",
            f"Fidelity for {', '.join(map(md_escape, random_models))} was measured on random "
            "weights: it "
            "shows how the arithmetic differs, not how a trained model would fare.",
        ]
    return lines + [""]
