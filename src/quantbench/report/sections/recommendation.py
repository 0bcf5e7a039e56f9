"""## Recommendation: what to ship per model, and why the others lost (``quantbench.best``)."""

from __future__ import annotations

from typing import Any

from quantbench.report.context import ReportContext
from quantbench.report.fmt import md_escape, md_table


def _fidelity_text(c: Any) -> str:
    if c is None:
        return "—"
    if c.accuracy is not None:
        rel = f" ({c.accuracy_relative:.1%} of fp32)" if c.accuracy_relative else ""
        return f"{c.metric} {c.accuracy:.4f}{rel}"
    if c.recipe == "fp32":
        return "—"
    text = f"cos {c.cosine:.4f}" if c.cosine is not None else "cos n/a"
    return text + (f", top-1 {c.top1:.1%}" if c.top1 is not None else "")


def _fastest_text(r: Any) -> str:
    """The pick for speed, as sure as the timings allow (``quantbench.fastest``)."""
    from quantbench.fastest import NO_SPEEDUP, TIED

    f, speed = r.fastest, r.speed
    if speed is not None and speed.verdict == TIED:
        return " = ".join([speed.recipe, *speed.tied]) + " (tied: not told apart)"
    if speed is not None and speed.verdict == NO_SPEEDUP:
        seen = f"; best seen {speed.recipe}" if speed.recipe else ""
        return f"{f.recipe if f else '—'} (no significant speedup at this shape{seen})"
    return f.recipe if f else "—"


def recommendation(ctx: ReportContext) -> list[str] | None:
    """The table the report opens with, then its figure (size vs latency vs accuracy)."""
    from quantbench.best import DEFAULT_MIN_COSINE, DEFAULT_MIN_TOP1, recommend

    spec = ctx.run.get("spec") or {}
    min_cos = spec.get("min_cosine", DEFAULT_MIN_COSINE)
    min_top1 = spec.get("min_top1", DEFAULT_MIN_TOP1)
    recs = recommend(ctx.results, ref_sizes=ctx.sizes, min_cosine=min_cos, min_top1=min_top1)
    if not recs:
        return None
    rows = []
    for model, r in recs.items():
        f, sm = r.fastest, r.smallest
        shape = f"{r.reference[0]} × {r.reference[1]}" if r.reference else "—"
        speed = "—"
        if f is not None and f.speedup is not None:
            ci = f" [{f.speedup_ci[0]:.2f}, {f.speedup_ci[1]:.2f}]" if f.speedup_ci else ""
            speed = f"{f.speedup:.2f}x{ci}"
            if f.runtime_speedup is not None and f.runtime_baseline:  # quantization's share
                speed += f"; {f.runtime_speedup:.2f}x vs {md_escape(f.runtime_baseline)}"
        lost = [
            f"{c.recipe}: {c.why_not}"
            for c in r.candidates
            if c is not f and c is not sm and c.why_not
        ]
        rows.append([
            model, shape, _fastest_text(r), speed,
            f"{f.size_ratio:.2f}" if f and f.size_ratio is not None else "—", _fidelity_text(f),
            sm.recipe if sm else "—",
            f"{sm.size_ratio:.2f}" if sm and sm.size_ratio is not None else "—",
            "; ".join(lost) or "—",
        ])  # fmt: skip
    lines = [
        f"Per model, the fastest and the smallest variant that keep fidelity: on real data "
        f"(section 6), the task metric within the accuracy bar; otherwise cosine to fp32 "
        f"≥ {md_escape(min_cos)} and top-1 agreement ≥ {min_top1:.0%} for classifiers. Speed is the "
        "paired speedup vs fp32 at the reference shape (batch × input size), and vs the "
        "runtime's own fp32 where it ran too (ort-fp32, et-fp32, ov-fp32: what quantization "
        "bought inside that runtime); size ratio is the artifact's size over fp32's.",
        "",
    ]
    if "fidelity" not in (spec.get("measure") or []) and not any(c.accuracy for c in ctx.results):
        lines += [
            "> ⚠️ This run measured neither fidelity nor accuracy, so no quantized variant is "
            "known to keep fidelity and none is recommended; add `fidelity` to `--measure` "
            "(or give `--dataset`) to judge them.",
            "",
        ]
    lines += md_table(
        ["Model", "Reference shape", "Fastest", "Speedup [CI]", "Size ratio", "Fidelity / accuracy",
         "Smallest", "Size ratio", "Why the others lost"],
        rows,
    )  # fmt: skip
    caveats = [f"- {md_escape(m)}: {md_escape(c)}" for m, r in recs.items() for c in r.caveats]
    lines += ["", *caveats] if caveats else []
    return lines + [""] + ctx.figure_lines("recommendation")
