"""``quantbench compare``: stored runs side by side, written as compare.md and its figures.

Two kinds: against a baseline (:func:`run_compare`: the first run is the baseline, the
records and gates are ``quantbench.compare``'s) and across machines
(:func:`run_compare_machines`: a column per machine, ``quantbench.machines``' records).
Both read the store only, and write into an output directory that is free or already
this comparison's (``outdir.claim_out_dir``); every file appears whole.

Example::

    res = run_compare(["r1", "r2"], store="q.db", fail_if_slower=5)
    res.gates.failed  # what should make CI fail
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NamedTuple

from quantbench.compare import Comparison, GateReport, Point, check_threshold, compare, gate_report
from quantbench.machines import MachineComparison


class CompareResult(NamedTuple):
    text: str  # compare.md, as printed
    out_dir: Path
    points: list[Point]
    gates: GateReport
    runs: list[dict[str, Any]]  # the runs' records, the baseline first
    warnings: list[str]  # how the runs differ besides the code (machine, settings)

    def to_dict(self) -> dict[str, Any]:
        """What ``compare --format json`` prints (strict JSON: ``strictjson.dumps``)."""
        from quantbench.report.compare_json import comparison_dict

        return comparison_dict(self)


def run_compare(
    run_ids: list[str],
    store: str | None = None,
    out: str | None = None,
    fail_if_slower: float | str | None = None,
    fail_if_less_accurate: float | str | None = None,
    fail_if_larger: float | str | None = None,
) -> CompareResult:
    """Load the runs (``run_ids``: ids, id prefixes, run directories or results.json
    files; the store only read), compare, evaluate the gates, write compare.md and the
    plots to ``out`` (atomically: a reader never sees half a file).
    ``result.gates.failed`` is what should make CI fail. Thresholds may be given as text
    (the CLI passes its arguments through, so bad ones fail here, exit 2); a gate with
    nothing to check fails here too, before anything is written."""
    from quantbench.outdir import claim_out_dir
    from quantbench.report import render_compare

    thresholds = {  # checked before the store or the disk is touched
        "slower_pct": check_threshold("slower_pct", fail_if_slower),
        "less_accurate_pp": check_threshold("less_accurate_pp", fail_if_less_accurate),
        "larger_pct": check_threshold("larger_pct", fail_if_larger),
    }
    from quantbench.compareruns import differences, resolve

    runs = resolve(list(run_ids), store)
    ids = [str(m["id"]) for m, _ in runs]
    points = compare(runs)
    report = gate_report(points, **thresholds)
    warnings = differences(runs)
    name = re.sub(r"[^\w.-]+", "_", "compare-" + "-vs-".join(ids))
    out_dir = Path(out) if out else Path("quantbench-runs") / name
    metas = [m for m, _ in runs]
    with claim_out_dir(out_dir, "compare", " vs ".join(ids)):  # free, or its own
        text = render_compare(out_dir, Comparison(metas, points, report, warnings))
    return CompareResult(text, out_dir, points, report, metas, warnings)


class MachinesResult(NamedTuple):
    text: str  # compare.md, as printed
    out_dir: Path
    comparison: MachineComparison
    figures: dict[str, Path]  # report.figures.sweep_figure_key -> written file


def run_compare_machines(
    run_ids: list[str] | None = None,
    sweep_id: str | None = None,
    store: str | None = None,
    out: str | None = None,
) -> MachinesResult:
    """Load a sweep (or runs) from the store (read only), write compare.md (the sections of
    ``report --sweep``) and one figure per model to ``out`` (default ``quantbench-runs/compare-sweep-ID`` or
    ``compare-machines-RUN-...``)."""
    from quantbench.machines import load
    from quantbench.outdir import claim_out_dir
    from quantbench.report import render_machines

    cmp = load(run_ids, sweep_id, store)
    name = (
        f"compare-sweep-{sweep_id}" if sweep_id else "compare-machines-" + "-".join(run_ids or [])
    )
    out_dir = Path(out) if out else Path("quantbench-runs") / re.sub(r"[^\w.-]+", "_", name)
    ident = f"sweep {sweep_id}" if sweep_id else "machines " + ", ".join(run_ids or [])
    with claim_out_dir(out_dir, "compare", ident):  # free, or this comparison's own
        text, written = render_machines(out_dir, cmp, f"quantbench compare: machines ({cmp.title})")
    return MachinesResult(text, out_dir, cmp, written)
