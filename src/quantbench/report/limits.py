"""How close each variant comes to the machine's limit, and where its time goes: the
analysis behind the report's "How close to the limit" section, its roofline and time
figures, and the profile the "why slower" findings cite.

Records only: the run's ceilings (``run.host.ceilings``, measured by
``quantbench.measure.ceilings``), each cell's ``details.roofline`` work and
``details.profile`` breakdowns (``runner.limits``), and its reference point's times.
Nothing here formats a sentence.

Example::

    >>> limits({"host": {}}, [], {}) is None
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from quantbench.measure.ceilings import Ceilings
from quantbench.measure.profile import PROFILE_TOLERANCE, Breakdown
from quantbench.measure.roofline import RooflinePoint, Work, roofline
from quantbench.report.data import BASELINE, find_cell, sort_cells, to_ms
from quantbench.results import CellResult, LatencyPoint
from quantbench.shapes import reference_point

# A variant above its ceiling by more than this fraction is flagged: the ceilings are
# best-of measurements, the achieved rate a median; a few percent between runs of the
# same GEMM is the ceilings' own spread on a quiet machine.
CEILING_NOISE = 0.10
# The kinds a quantized variant adds around its int8 matmuls.
OVERHEAD_KINDS = ("qdq", "reorder")


def run_ceilings(run: Mapping[str, Any] | None) -> Ceilings | None:
    """The ceilings a run recorded with its machine fingerprint, or None."""
    found = ((run or {}).get("host") or {}).get("ceilings")
    if not isinstance(found, dict) or "error" in found:
        return None
    try:
        return Ceilings.from_dict(found)
    except (ValueError, TypeError):
        return None


def ceilings_error(run: Mapping[str, Any] | None) -> str | None:
    """Why the run has no ceilings, when measuring them failed."""
    found = ((run or {}).get("host") or {}).get("ceilings")
    return str(found["error"]) if isinstance(found, dict) and found.get("error") else None


def cell_work(cell: CellResult) -> Work | None:
    """The cell's recorded roofline work (at its reference shape), or None."""
    d = cell.details.get("roofline") if isinstance(cell.details, dict) else None
    if not isinstance(d, dict):
        return None
    try:
        return Work.from_dict(d)
    except TypeError:
        return None


def cell_breakdown(cell: CellResult, batch: int, size: int) -> Breakdown | None:
    """The cell's profile at (``batch``, ``size``), or None."""
    for d in cell.details.get("profile") or [] if isinstance(cell.details, dict) else []:
        if isinstance(d, dict) and (d.get("batch_size"), d.get("input_size")) == (batch, size):
            try:
                return Breakdown.from_dict(d)
            except TypeError:
                return None
    return None


def point_at(cell: CellResult, batch: int, size: int) -> LatencyPoint | None:
    """The cell's latency point at (``batch``, ``size``)."""
    return next((p for p in cell.latency
                 if (p.batch_size, p.input_size) == (batch, size)), None)  # fmt: skip


def _seconds(value: float, unit: str | None) -> float:
    return to_ms(value, unit) / 1e3


@dataclass
class LimitRow:
    """One variant at its reference shape: its roofline point (None without a ceiling
    for its precision) and its time by operator kind (None when not profiled)."""

    cell: CellResult
    point: LatencyPoint  # the timed point the work was counted at
    work: Work
    roof: RooflinePoint | None
    breakdown: Breakdown | None

    @property
    def above(self) -> bool:
        """Above its ceiling by more than CEILING_NOISE."""
        return self.roof is not None and self.roof.share > 1.0 + CEILING_NOISE

    @property
    def profile_ratio(self) -> float | None:
        """The profile's operator time over the fastest timed pass at the same shape
        (1.0: they agree; see ``measure.profile.PROFILE_TOLERANCE``)."""
        b = self.breakdown
        fastest = _seconds(self.point.min, self.point.unit) * 1e3
        return b.attributed_ms / fastest if b is not None and fastest > 0 else None

    @property
    def profile_agrees(self) -> bool | None:
        r = self.profile_ratio
        return None if r is None else abs(r - 1.0) <= PROFILE_TOLERANCE


@dataclass
class Limits:
    """The run's ceilings and each variant's row."""

    ceilings: Ceilings | None
    rows: list[LimitRow]
    error: str | None = None  # why the ceilings could not be measured

    @property
    def above(self) -> list[LimitRow]:
        return [r for r in self.rows if r.above]

    @property
    def profiled(self) -> list[LimitRow]:
        return [r for r in self.rows if r.breakdown is not None]


def limit_row(cell: CellResult, ceilings: Ceilings | None) -> LimitRow | None:
    """``cell``'s row, when it recorded work at a shape it was timed at."""
    work = cell_work(cell)
    if cell.status != "ok" or work is None:
        return None
    point = point_at(cell, work.batch_size, work.input_size)
    if point is None:
        return None
    seconds = _seconds(point.median, point.unit)
    roof = roofline(work, seconds, ceilings) if ceilings is not None else None
    return LimitRow(cell, point, work, roof,
                    cell_breakdown(cell, work.batch_size, work.input_size))  # fmt: skip


def limits(
    run: Mapping[str, Any], results: list[CellResult], sizes: Mapping[str, int]
) -> Limits | None:
    """Every variant's row at its reference shape; None when no cell recorded work (a
    run without latency, or from before the roofline)."""
    ceilings = run_ceilings(run)
    rows = []
    for c in sort_cells(results):
        row = limit_row(c, ceilings)
        if row is not None:
            rows.append(row)
    if not rows:
        return None
    return Limits(ceilings, rows, ceilings_error(run))


# ----------------------------------------------------------------------- for findings


def machine_rates(run: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The machine's fp32 and int8 matmul rates in the shape the findings read
    (``fp32_gflops``, ``int8_gops``, ``int8_fp32_ratio``): the measured peaks of the
    run's ceilings, else (a run from before them) its one-Linear micro-benchmark."""
    from quantbench.report.data import host_microbench

    c = run_ceilings(run)
    if c is None or c.peak("fp32") is None:
        return host_microbench(dict(run or {}))
    fp32, int8 = c.peak("fp32"), c.peak("int8")
    return {
        "fp32_gflops": fp32 / 1e9 if fp32 else None,
        "int8_gops": int8 / 1e9 if int8 else None,
        "int8_fp32_ratio": int8 / fp32 if fp32 and int8 else None,
        "threads": c.threads,
        "source": "ceilings",
    }


@dataclass
class ProfileEvidence:
    """A variant's profile against fp32's at the same shape: what the "why slower"
    findings cite."""

    point: LatencyPoint  # the shape profiled
    variant: Breakdown
    fp32: Breakdown | None
    roof: RooflinePoint | None  # the variant's, when it is at its reference shape
    fp32_roof: RooflinePoint | None

    @property
    def overhead_share(self) -> float:
        """Share of the variant's operator time in quantize/dequantize and reorders."""
        return self.variant.share(*OVERHEAD_KINDS)

    @property
    def matmul_speedup(self) -> float | None:
        """fp32's matmul/conv time over the variant's (> 1: the variant's are faster)."""
        mine = self.variant.kinds.get("matmul", 0.0)
        theirs = self.fp32.kinds.get("matmul", 0.0) if self.fp32 is not None else 0.0
        return theirs / mine if mine > 0 and theirs > 0 else None


def profile_evidence(
    run: Mapping[str, Any], cells: list[CellResult], cell: CellResult, sizes: Mapping[str, int]
) -> ProfileEvidence | None:
    """The variant's profile at its reference shape against fp32's, with both roofline
    points; None when the variant was not profiled there."""
    ref = reference_point(cell, sizes)
    if ref is None:
        return None
    mine = cell_breakdown(cell, ref.batch_size, ref.input_size)
    if mine is None:
        return None
    base = find_cell(cells, cell.model, BASELINE)
    theirs = (cell_breakdown(base, ref.batch_size, ref.input_size)
              if base is not None and base.status == "ok" else None)  # fmt: skip
    ceilings = run_ceilings(run)
    row = limit_row(cell, ceilings)
    base_row = limit_row(base, ceilings) if base is not None else None
    return ProfileEvidence(ref, mine, theirs, row.roof if row else None,
                           base_row.roof if base_row else None)  # fmt: skip
