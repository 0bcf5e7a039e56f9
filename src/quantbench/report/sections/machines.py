"""The sections of a report across machines (``report --sweep``, ``compare --sweep``): the
opening, a table and a figure per model (a column / a bar per machine), the machines.

Their order and titles are the registry ``quantbench.report.render.SWEEP_SECTIONS``; the
records are ``quantbench.machines``' (the same tables in compare.md and report.md).
"""

from __future__ import annotations

from typing import Any

from quantbench.machines import Entry, MachineComparison, ModelTable, gpu_names, int8_isa
from quantbench.measure import metrics
from quantbench.report.context import SweepContext
from quantbench.report.fmt import md_code, md_escape, md_table, unit_word


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


# ------------------------------------------------------------------ the tables


def _shape_text(shape: tuple[int, int] | None, family: str | None) -> str:
    """``1 × 224 px`` as Markdown text."""
    if shape is None:
        return "—"
    return f"{md_escape(shape[0])} × {md_escape(shape[1])} {unit_word(family)}".rstrip()


def entry_text(entry: Entry | None) -> str:
    """``2.31x · 4.12 ms · 11.3 MiB``: the speedup, then each of the metrics table's
    ``"machines"`` metrics; the status (and reason) of a cell that is not ok."""
    if entry is None:
        return "not run"
    if entry.status != "ok":
        why = f": {entry.reason[:80]}" if entry.reason else ""
        return f"{entry.status}{why}"
    speedup = "—" if entry.speedup is None else f"{entry.speedup:.2f}x"
    if entry.speedup is not None and not entry.paired:
        speedup += " (unpaired)"
    shown = [m.text(entry.values.get(m.name), "machines") for m in metrics.shown("machines")]
    return " · ".join([speedup, *shown])


def model_lines(cmp: MachineComparison, table: ModelTable) -> list[str]:
    """The model's reference shape(s) and its table: a row per recipe, a column per machine."""
    shapes = {m.run_id: next((e.shape for (_, r), e in table.entries.items()
                              if r == m.run_id and e.shape), None)
              for m in cmp.machines}  # fmt: skip
    distinct = {s for s in shapes.values() if s is not None}
    if len(distinct) == 1:
        where = f"{_shape_text(distinct.pop(), table.family)} on every machine that measured it"
    else:
        where = "; ".join(f"{md_escape(m.label)}: {_shape_text(shapes[m.run_id], table.family)}"
                          for m in cmp.machines)  # fmt: skip
    rows = [[recipe] + [entry_text(table.entries.get((recipe, m.run_id))) for m in cmp.machines]
            for recipe in table.recipes]  # fmt: skip
    return [f"Reference shape (batch × input size): {where}.", "",
            *md_table(["Recipe", *(m.label for m in cmp.machines)], rows), ""]  # fmt: skip


CELL_LEGEND = (
    "Each cell: speedup vs fp32 **on the same machine** (paired: the median of per-round "
    "fp32/variant ratios timed side by side, so no two machines' clocks are divided) · "
    "median latency · artifact size, at that run's reference shape. Latencies of different "
    "machines are separate measurements, each with its own threads and load."
)


def fingerprint_rows(cmp: MachineComparison) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the machines table: an attribute per row, a machine per column."""

    def row(name: str, get: Any) -> list[str]:
        return [name] + [("—" if (v := get(m)) in (None, "", []) else str(v)) for m in cmp.machines]

    rows = [
        row("Run", lambda m: f"{m.run_id} ({m.meta.get('status', '?')})"),
        row("Node", lambda m: m.meta.get("node")),
        row("Hostname", lambda m: m.host.get("hostname")),
        row("CPU", lambda m: m.host.get("cpu")),
        row("Cores", lambda m: m.host.get("cores")),
        row("Architecture", lambda m: m.host.get("machine")),
        row("int8 dot product", lambda m: int8_isa(m.host)),
        row("ISA flags", lambda m: ", ".join(m.host.get("isa_flags") or [])),
        row("GPU", lambda m: ", ".join(gpu_names(m.host)) or "none recorded"),
        row("OS", lambda m: m.host.get("os")),
        row("Quantized engine", lambda m: m.meta.get("engine")),
        row("Threads", lambda m: m.meta.get("threads")),
        row("torch", lambda m: (m.meta.get("versions") or {}).get("torch")),
    ]
    # Other libraries only where the machines differ: the versions that can explain a gap.
    packages = dict.fromkeys(k for m in cmp.machines for k in (m.meta.get("versions") or {}))
    for pkg in packages:
        values = {(m.meta.get("versions") or {}).get(pkg) for m in cmp.machines}
        if pkg != "torch" and len(values) > 1:
            rows.append(row(pkg, lambda m, p=pkg: (m.meta.get("versions") or {}).get(p)))
    return ["", *(m.label for m in cmp.machines)], rows


def fingerprint_lines(cmp: MachineComparison) -> list[str]:
    """The machines table (markdown)."""
    headers, rows = fingerprint_rows(cmp)
    return [*md_table(headers, rows), ""]
