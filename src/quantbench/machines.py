"""Compare machines: the runs of one sweep (or any stored runs) side by side, one column
per machine.

A sweep across machines stores one ordinary run per machine, all with the same
``sweep_id`` (``quantbench.store.Store.sweep_runs``). Here each run is a *machine*: per
model, a table with a row per recipe and a column per machine, each cell holding the
speedup vs fp32 *on that machine* (paired, taken inside the run, so no two machines'
clocks are ever divided), the median latency and the artifact size, all at the run's
own reference point (``quantbench.shapes.reference_point``); then each machine's
fingerprint (CPU, cores, int8 ISA, GPU, torch). This is not the baseline-vs-new diff of
``quantbench.compare``: no machine is a baseline and there are no gates.

This module makes the records (:class:`MachineComparison`); what a cell shows besides the
speedup is the metrics table's ``"machines"`` metrics (``quantbench.measure.metrics``).
The tables and figures are the report's (``report.sections.machines``,
``report.plots_sweep``), and ``quantbench.report.compare`` runs the command.

Example::

    >>> short_cpu("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz")
    'Xeon Platinum 8375C'
    >>> short_cpu("AMD EPYC 7B13 64-Core Processor")
    'EPYC 7B13'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quantbench.errors import QuantbenchError
from quantbench.hostlabel import gpu_names, machine_label, short_cpu, short_gpu  # noqa: F401
from quantbench.measure import metrics
from quantbench.results import (
    BASELINE,
    CellResult,
    find_cell,
    model_family,
    model_order,
    recipe_order,
)
from quantbench.shapes import ref_sizes, reference_point

# int8 dot-product instructions, best first, as /proc/cpuinfo names them.
INT8_ISA = (
    ("amx_int8", "AMX-INT8"),
    ("avx512_vnni", "AVX512-VNNI"),
    ("avx_vnni", "AVX-VNNI"),
    ("i8mm", "Arm I8MM"),
    ("asimddp", "Arm dot product"),
)


@dataclass
class Machine:
    """One run of the comparison, seen as the machine it ran on."""

    run_id: str
    label: str
    meta: dict[str, Any]
    cells: list[CellResult]

    @property
    def host(self) -> dict[str, Any]:
        return self.meta.get("host") or {}


@dataclass
class Entry:
    """One (recipe, machine) cell of a model's table, at the machine's reference point:
    the speedup, then ``values`` of the metrics table's ``"machines"`` metrics."""

    status: str
    speedup: float | None = None  # vs fp32 on the same machine
    paired: bool = True  # False: a ratio of two medians (no paired rounds stored)
    ci: tuple[float, float] | None = None  # the paired speedup's confidence interval
    shape: tuple[int, int] | None = None  # (batch size, input size)
    reason: str | None = None  # why a cell that is not ok is not
    values: dict[str, Any] = field(default_factory=dict)  # metric name -> value

    @property
    def ms(self) -> float | None:
        """The median latency (ms)."""
        return self.values.get("median")

    @property
    def size_bytes(self) -> int | None:
        return self.values.get("size_bytes")


@dataclass
class ModelTable:
    """A model across machines: ``entries[(recipe, run_id)]`` (absent: not run there)."""

    model: str
    family: str | None
    recipes: list[str]
    entries: dict[tuple[str, str], Entry] = field(default_factory=dict)


@dataclass
class MachineComparison:
    """Machines (runs) and, per model, their table; ``sweep_id`` when they are a sweep."""

    machines: list[Machine]
    tables: list[ModelTable]
    sweep_id: str | None = None

    @property
    def title(self) -> str:
        if self.sweep_id:
            return f"sweep {self.sweep_id}"
        return "runs " + ", ".join(m.run_id for m in self.machines)


def int8_isa(host: dict[str, Any]) -> str:
    """The int8 dot-product instructions a CPU has, or what it has instead."""
    flags = host.get("isa_flags")
    if flags is None:
        return "not recorded"
    have = {str(f).lower() for f in flags}
    found = [label for flag, label in INT8_ISA if flag in have]
    if found:
        return ", ".join(found)
    for flag, label in (("avx512f", "AVX512"), ("avx2", "AVX2"), ("asimd", "NEON")):
        if flag in have:
            return f"none ({label} only)"
    return "none"


def _entry(cells: list[CellResult], cell: CellResult, sizes: dict[str, int]) -> Entry:
    ref = reference_point(cell, sizes) if cell.status == "ok" else None
    values = {m.name: m.get(cell, ref) for m in metrics.shown("machines")}
    if cell.status != "ok":
        reason = (cell.error or "").strip().splitlines()
        return Entry(str(cell.status), reason=reason[0] if reason else None, values=values)
    entry = Entry("ok", values=values)
    if ref is None:
        return entry
    entry.shape = (ref.batch_size, ref.input_size)
    sp = metrics.point_speedup(ref, find_cell(cells, cell.model, BASELINE))
    if sp is not None:
        entry.speedup, entry.paired = sp.median, sp.paired
        if sp.ci_low is not None and sp.ci_high is not None:
            entry.ci = (sp.ci_low, sp.ci_high)
    return entry


def _labels(metas: list[dict[str, Any]]) -> list[str]:
    labels = [machine_label(m) for m in metas]
    return [f"{lab} ({m['id']})" if labels.count(lab) > 1 else lab
            for lab, m in zip(labels, metas, strict=True)]  # fmt: skip


def build(
    runs: list[tuple[dict[str, Any], list[CellResult]]], sweep_id: str | None = None
) -> MachineComparison:
    """The comparison of ``runs`` (metadata, cells), each a machine, in the order given."""
    if not runs:
        raise QuantbenchError("no runs to compare")
    metas = [m for m, _ in runs]
    machines = [Machine(m["id"], lab, m, list(cells))
                for (m, cells), lab in zip(runs, _labels(metas), strict=True)]  # fmt: skip
    everything = [c for m in machines for c in m.cells]
    tables = []
    for model in model_order(everything):
        mine = [c for c in everything if c.model == model]
        table = ModelTable(model, model_family(mine, model), recipe_order(mine))
        for m in machines:
            sizes = ref_sizes(m.meta.get("spec") if isinstance(m.meta.get("spec"), dict) else {})
            for recipe in table.recipes:
                cell = find_cell(m.cells, model, recipe)
                if cell is not None:
                    table.entries[(recipe, m.run_id)] = _entry(m.cells, cell, sizes)
        tables.append(table)
    return MachineComparison(machines, tables, sweep_id)


def load(
    run_ids: list[str] | None = None, sweep_id: str | None = None, store: str | None = None
) -> MachineComparison:
    """The comparison of a sweep's runs, read from the store, or of the runs given (ids,
    id prefixes, run directories or results.json files, as ``compare`` takes them)."""
    from quantbench.compareruns import resolve
    from quantbench.store import open_store

    if bool(run_ids) == bool(sweep_id):
        raise QuantbenchError("compare machines: give run ids or a sweep id, not both")
    if run_ids:
        by_id = {r[0]["id"]: r for r in resolve(run_ids, store)}  # one run named twice: once
        return build(list(by_id.values()), None)
    st = open_store(store, create=False)
    try:
        runs = [st.load_run(m["id"]) for m in st.sweep_runs(sweep_id)]
    finally:
        st.close()
    return build(runs, sweep_id)
