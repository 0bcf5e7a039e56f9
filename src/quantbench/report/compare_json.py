"""``quantbench compare --format json`` (and ``CompareResult.to_dict()``): the comparison
as data for CI, and ``-q``'s lines (verdicts and gate results only).

The JSON is strict (``quantbench.strictjson``: NaN as null). Layout::

    {"baseline": ID, "runs": [{"id", "machine", "device", "started_at", "status"}, ...],
     "warnings": [...], "points": [{"run", "base_run", "model", "recipe", "batch_size",
     "input_size", "base_ms", "ms", "change_pct", "verdict", "significant", "p_value",
     "n_base", "n", "base_ci_ms", "ci_ms", "values": {metric: [base, new]}}, ...],
     "gates": {"checked", "failed", "failures": [...], "notes", "summary"},
     "written": "<out>/compare.md"}
"""

from __future__ import annotations

import dataclasses
from typing import Any


def _run(meta: dict[str, Any]) -> dict[str, Any]:
    from quantbench.hostlabel import machine_label

    device = meta.get("device") or (meta.get("spec") or {}).get("device")
    return {
        "id": meta.get("id"), "machine": machine_label(meta), "device": device,
        "started_at": meta.get("started_at"), "status": meta.get("status"),
    }  # fmt: skip


def point_dict(p: Any) -> dict[str, Any]:
    """One compared point as data."""
    sig = p.significance
    return {
        "run": p.run, "base_run": p.base_run, "model": p.model, "recipe": p.recipe,
        "batch_size": p.batch_size, "input_size": p.input_size, "base_ms": p.base_ms,
        "ms": p.ms, "change_pct": p.change_pct, "verdict": p.verdict,
        "significant": p.significant, "p_value": sig.p_value if sig else None,
        "n_base": sig.n_old if sig else None, "n": sig.n_new if sig else None,
        "base_ci_ms": list(p.base_ci) if p.base_ci else None,
        "ci_ms": list(p.ci) if p.ci else None,
        "values": {k: list(v) for k, v in p.values.items()},
    }  # fmt: skip


def comparison_dict(res: Any) -> dict[str, Any]:
    """A :class:`~quantbench.report.compare.CompareResult` as data."""
    gates = res.gates
    lines = gates.lines()
    return {
        "baseline": res.runs[0].get("id") if res.runs else None,
        "runs": [_run(m) for m in res.runs],
        "warnings": list(res.warnings),
        "points": [point_dict(p) for p in res.points],
        "gates": {
            "checked": list(gates.checked),
            "failed": gates.failed,
            "failures": [dataclasses.asdict(f) for f in gates.failures],
            "notes": list(gates.notes),
            "summary": lines[-1] if lines else None,
        },
        "written": str(res.out_dir / "compare.md"),
    }


def quiet_lines(res: Any) -> list[str]:
    """``compare -q``: one verdict line per compared point, then the gates' lines."""
    lines = [
        f"{p.run} vs {p.base_run}: {p.model} · {p.recipe} · {p.batch_size} × {p.input_size}: "
        f"{p.change_pct:+.1f}% ({p.base_ms:.3f} → {p.ms:.3f} ms): {p.verdict}"
        for p in res.points
    ]
    return lines + res.gates.lines()
