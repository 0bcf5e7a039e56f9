"""Warnings that qualify a whole run's numbers, one line each: shown next to the summary
in the terminal (``RunResult.summary``) and at the top of report.md, not only in the
environment section at the end.

Add a kind of caveat here, as one function of (run record, cells) -> line or None in
:data:`CHECKS`; every place that shows caveats follows.

Example::

    >>> busy({"host": {"load_avg": 3.5, "cores": 2}})
    'the machine was busy (load average 3.50 on 2 cores at the start): timings may be noisy; trust paired speedups more, and re-run on an idle machine to confirm a ranking'
    >>> busy({"host": {"load_avg": 0.2, "cores": 2}}) is None
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

BUSY_LOAD_PER_CORE = 0.5  # load average above this per core: the machine was busy


def busy(run: dict[str, Any], cells: list[Any] | None = None) -> str | None:
    """The busy-machine line when the 1-minute load average at the start exceeded
    :data:`BUSY_LOAD_PER_CORE` per core; None otherwise (or when not recorded).

    Where the run's timed points were watched for contention
    (``quantbench.measure.contention``), their verdicts speak instead (a model whose
    speedups rest on contended points gets its own caveat): the load average counts this
    run's own processes and whatever ran just before, and would call a quiet run busy."""
    if any(
        getattr(p, "contention", None)
        for c in cells or []
        for p in getattr(c, "latency", None) or []
    ):
        return None
    host = run.get("host") or {}
    load, cores = host.get("load_avg"), host.get("cores")
    numbers = [x for x in (load, cores) if isinstance(x, (int, float)) and not isinstance(x, bool)]
    if len(numbers) < 2 or not math.isfinite(load) or cores <= 0:
        return None
    if load <= BUSY_LOAD_PER_CORE * cores:
        return None
    return (
        f"the machine was busy (load average {load:.2f} on {cores} cores at the start): "
        "timings may be noisy; trust paired speedups more, and re-run on an idle machine "
        "to confirm a ranking"
    )


CHECKS: list[Callable[[dict[str, Any], list[Any]], str | None]] = [busy]


def run_caveats(run: Any, cells: list[Any]) -> list[str]:
    """Every caveat of a run (``run``: its record, a dict or a ``RunMeta``), in order."""
    record = run.to_dict() if hasattr(run, "to_dict") else dict(run or {})
    return [line for check in CHECKS if (line := check(record, cells))]
