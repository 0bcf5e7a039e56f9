"""The sections of a report across machines (``report --sweep``, ``compare --sweep``): the
opening, a table and a figure per model (a column / a bar per machine), the machines.

Their order and titles are the registry ``quantbench.report.render.SWEEP_SECTIONS``; the
tables themselves are ``quantbench.machines``' (the same in compare.md and report.md).
"""

from __future__ import annotations

from quantbench.machines import CELL_LEGEND, fingerprint_lines, model_lines
from quantbench.report.context import SweepContext
from quantbench.report.fmt import md_code, md_escape


def header(ctx: SweepContext) -> list[str]:
    """Title, what was compared (sweep, runs, dates, cells) and how to read the tables."""
    cmp = ctx.cmp
    metas = [m.meta for m in cmp.machines]
    started = sorted(str(m["started_at"]) for m in metas if m.get("started_at"))
    finished = sorted(str(m["finished_at"]) for m in metas if m.get("finished_at"))
    dates = " → ".join(x for x in (started[:1] + finished[-1:]) if x) or "not recorded"
    statuses: dict[str, int] = {}
    for m in cmp.machines:
        for c in m.cells:
            statuses[str(c.status)] = statuses.get(str(c.status), 0) + 1
    cells = ", ".join(f"{n} {md_escape(s)}" for s, n in statuses.items()) or "none"
    lines = [f"# {md_escape(ctx.heading)}", ""]
    if cmp.sweep_id:
        lines.append(f"- **Sweep:** {md_code(cmp.sweep_id)}")
    lines += [
        f"- **Machines:** {len(cmp.machines)} (one run each: "
        + ", ".join(md_code(m.run_id) for m in cmp.machines) + ")",
        f"- **Date:** {md_escape(dates)}",
        f"- **Models:** {', '.join(md_escape(t.model) for t in cmp.tables) or 'none'}",
        f"- **Cells:** {cells}",
        "",
        CELL_LEGEND,
        "",
    ]  # fmt: skip
    return lines


def models(ctx: SweepContext) -> list[str] | None:
    """Per model: its reference shape, the table (a column per machine) and its figure."""
    lines: list[str] = []
    for table in ctx.cmp.tables:
        lines += [f"### {md_escape(table.model)}", "", *model_lines(ctx.cmp, table)]
        lines += ctx.model_figure_lines(table.model, "sweep_models")
    return lines or None


def machines(ctx: SweepContext) -> list[str]:
    """Each machine's fingerprint: CPU, cores, int8 ISA, GPU, engine, threads, torch."""
    return fingerprint_lines(ctx.cmp)
