"""The sections of compare.md (``quantbench compare``): the runs compared, a table per
later run against the baseline, what the gates found, the figures.

Their order is the registry ``quantbench.report.render.COMPARE_SECTIONS``; the records are
``quantbench.compare``'s, the compared metrics (the "(base → new)" columns) the metrics
table's (``quantbench.measure.metrics``).
"""

from __future__ import annotations

from quantbench.measure import metrics
from quantbench.measure.significance import ALPHA, MIN_SAMPLES
from quantbench.report.context import CompareContext
from quantbench.report.fmt import md_code, md_escape


def header(ctx: CompareContext) -> list[str]:
    """The title and the runs compared: date, machine, status (the baseline first)."""
    lines = ["# quantbench compare", "", "| Run | Date | Machine | Status |", "|---|---|---|---|"]
    for i, m in enumerate(ctx.cmp.runs):
        host = m.get("host") or {}
        machine = f"{host.get('cpu', '?')}, {host.get('cores', '?')} cores"
        tag = " (baseline)" if i == 0 else ""
        lines.append(f"| {md_code(m['id'])}{tag} | {md_escape(m.get('started_at', '?'))} | "
                     f"{md_escape(machine)} | {md_escape(m.get('status', '?'))} |")  # fmt: skip
    lines.append("")
    for w in ctx.cmp.warnings:  # runs that differ besides the code (quantbench.compareruns)
        lines += [f"> ⚠️ **Warning:** {md_escape(w)}", ""]
    return lines


def runs(ctx: CompareContext) -> list[str]:
    """Per later run, a row per shared point: latency, its change and significance, then
    each compared metric, baseline → this run."""
    cmp, compared = ctx.cmp, metrics.shown("compare")
    base_id = cmp.runs[0]["id"]
    failed = (
        {(f.run, f.model, f.recipe, f.shape) for f in cmp.gates.failures} if cmp.gates else set()
    )
    lines: list[str] = []
    for m in cmp.runs[1:]:
        lines += [
            f"## {md_code(m['id'])} vs {md_code(base_id)}", "",
            "Latency is the median of each run's samples; change > 0 means slower. Speedups "
            "are paired vs fp32 inside each run. Significance: two-sided Mann-Whitney U on "
            f"both runs' raw samples, p < {ALPHA:g}; fewer than {MIN_SAMPLES} samples a side "
            "is too few to test.", "",
            "| Model | Recipe | Batch × size | Baseline ms | ms | Change | Significance | p | "
            + " | ".join(f"{md_escape(x.label)} (base → new)" for x in compared) + " |",
            "|---|---|---|---|---|---|---|---|" + "---|" * len(compared),
        ]  # fmt: skip
        for p in (p for p in cmp.points if p.run == m["id"]):
            key = (p.run, p.model, p.recipe, (p.batch_size, p.input_size))
            flag = " ⚠️" if key in failed else ""
            pairs = [" → ".join(md_escape(x.text(v, "compare")) for v in p.pair(x.name))
                     for x in compared]  # fmt: skip
            lines.append(
                f"| {md_escape(p.model)} | {md_escape(p.recipe)} | {md_escape(p.batch_size)} × "
                f"{md_escape(p.input_size)} | {p.base_ms:.3f} | {p.ms:.3f} | "
                f"{p.change_pct:+.1f}%{flag} | {p.verdict} | {p.p_text} | "
                + " | ".join(pairs) + " |"
            )  # fmt: skip
        lines.append("")
    return lines


def gates(ctx: CompareContext) -> list[str] | None:
    """One line per failure or note of the gates asked for, then the summary."""
    report = ctx.cmp.gates
    if report is None or not report.checked:
        return None
    gate_lines = report.lines()
    lines = [f"- {md_escape(x)}" for x in gate_lines[:-1]] + [""] if len(gate_lines) > 1 else []
    return [*lines, f"**{md_escape(gate_lines[-1])}**"]


def figures(ctx: CompareContext) -> list[str]:
    """The figures (``report.figures.COMPARE_FIGURES``), or why one is missing."""
    return ["", *ctx.figures.lines("compare_figures")]
