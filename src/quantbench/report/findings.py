"""What the numbers say: compression, speedups, the "why slow" findings and achieved compute.

Analysis only: each function reads result records and returns structured findings (which
cell, which points, which causes apply); ``report.sections.discussion`` turns them into
text. Nothing here formats a sentence, so a finding can be tested or reused on its own.

Example::

    >>> from quantbench.report.findings import speedups
    >>> speedups([], {"vision": 224, "text": 128}).rows
    []
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from quantbench.fastest import FASTER, TIED, SpeedVerdict, decide
from quantbench.report.data import (
    BASELINE,
    SpeedupValue,
    bench_ratio,
    find_cell,
    has_int8_isa,
    host_microbench,
    model_family,
    ok_cells,
    point_gflops,
    point_gflops_per_s,
    point_speedup,
    sort_cells,
    to_ms,
)
from quantbench.report.fmt import finite
from quantbench.report.limits import ProfileEvidence as ProfileEvidence
from quantbench.report.limits import machine_rates, profile_evidence
from quantbench.results import CellResult, LatencyPoint
from quantbench.shapes import ref_sizes, reference_point

FIDELITY_MIN = 0.99  # cosine / top-1 agreement below this gets a warning
SMALL_MS = 5.0  # below this median, fixed quantize/dequantize costs weigh heavily
FEW_INT8_FRACTION = 0.5  # under this share of int8 parameters, "few modules quantized"
BARELY_FASTER = 1.2  # reference-shape speedup under this counts as "barely faster"
MATMUL_BOUND_FRACTION = 0.5  # fp32 at under this share of the machine's matmul rate: not GEMM-bound

Sizes = Mapping[str, int]  # reference input size per family (see quantbench.shapes)
PointSpeedup = tuple[CellResult, LatencyPoint, SpeedupValue]


# ----------------------------------------------------------------------------- compression


def compression(results: list[CellResult]) -> dict[str, dict[str, list[tuple[str, float]]]]:
    """family -> recipe -> [(model, quantized/original)]."""
    out: dict[str, dict[str, list[tuple[str, float]]]] = {}
    cells = ok_cells(results)
    for c in sort_cells(cells):
        if c.recipe == BASELINE or c.size_bytes is None:
            continue
        base = find_cell(cells, c.model, BASELINE)
        if base is None or not base.size_bytes:
            continue
        fam = c.family or model_family(results, c.model) or "other"
        out.setdefault(fam, {}).setdefault(c.recipe, []).append(
            (c.model, c.size_bytes / base.size_bytes)
        )
    return out


def ordered_families(fams: Iterable[str]) -> list[str]:
    """vision, text, then the others alphabetically."""
    fams = list(fams)
    return [f for f in ("vision", "text") if f in fams] + sorted(
        f for f in fams if f not in ("vision", "text")
    )


# ----------------------------------------------------------------------------- speedups


@dataclass
class SpeedupRow:
    """One variant: its speedup at the reference shape and its best and worst shapes."""

    cell: CellResult
    ref: LatencyPoint | None
    ref_speedup: SpeedupValue | None
    best: tuple[LatencyPoint, SpeedupValue] | None
    worst: tuple[LatencyPoint, SpeedupValue] | None


@dataclass
class Speedups:
    """Every quantized variant's speedups; ``points`` holds each (cell, point, speedup)."""

    rows: list[SpeedupRow] = field(default_factory=list)
    points: list[PointSpeedup] = field(default_factory=list)

    @property
    def best(self) -> PointSpeedup | None:
        return max(self.points, key=lambda t: t[2].median, default=None)

    @property
    def worst(self) -> PointSpeedup | None:
        return min(self.points, key=lambda t: t[2].median, default=None)


def cell_speedups(
    cell: CellResult, base: CellResult | None
) -> list[tuple[LatencyPoint, SpeedupValue]]:
    """Each point of ``cell`` with its speedup vs ``base`` (points without one are left out)."""
    out = []
    for p in cell.latency:
        s = point_speedup(p, base)
        if s is not None:
            out.append((p, s))
    return out


def speedups(cells: list[CellResult], sizes: Sizes) -> Speedups:
    """Speedup vs fp32 of every timed quantized variant, at its reference shape and overall."""
    out = Speedups()
    for c in sort_cells(cells):
        if c.recipe == BASELINE or not c.latency:
            continue
        base = find_cell(cells, c.model, BASELINE)
        sps = cell_speedups(c, base)
        out.points += [(c, p, s) for p, s in sps]
        ref = reference_point(c, sizes)
        ref_s = point_speedup(ref, base) if ref is not None else None
        best = max(sps, key=lambda ps: ps[1].median, default=None)
        worst = min(sps, key=lambda ps: ps[1].median, default=None)
        out.rows.append(SpeedupRow(c, ref, ref_s, best, worst))
    return out


# ----------------------------------------------------------------------------- causes


@dataclass
class FewModules:
    """Too little was quantized to gain from (``nothing``: not a single module)."""

    quantized: dict[str, int]
    floats: dict[str, int]
    fraction: float | None
    nothing: bool = False


def few_modules(cell: CellResult) -> FewModules | None:
    """The cell quantized nothing, or under FEW_INT8_FRACTION of its parameters."""
    quantized = sum(cell.quantized_modules.values())
    floats = sum(cell.float_modules.values())
    found = FewModules(cell.quantized_modules, cell.float_modules, cell.int8_param_fraction)
    if quantized == 0:
        found.nothing = True
        return found
    frac = cell.int8_param_fraction
    few = (frac is not None and frac < FEW_INT8_FRACTION) or (
        frac is None and quantized <= 2 and floats > 5 * quantized
    )
    return found if few else None


@dataclass
class ComputeEvidence:
    """Achieved GFLOP/s of fp32 and of a variant at one shape, against the machine's rates."""

    recipe: str
    point: LatencyPoint
    family: str | None
    fp32_rate: float | None  # fp32 at the same shape
    fp32_peak: float | None  # the machine's fp32 matmul peak, GFLOP/s (report.limits.machine_rates)
    rate: float | None  # the variant, fp32-equivalent
    int8_peak: float | None  # its int8 matmul peak, GOP/s
    bench_ratio: float | None  # int8:fp32 of those peaks
    source: str = "microbench"  # "ceilings" (measured peaks) or an old run's micro-benchmark

    @property
    def fp32_share(self) -> float | None:
        if self.fp32_rate is None or self.fp32_peak is None:
            return None
        return self.fp32_rate / self.fp32_peak

    @property
    def matmul_bound(self) -> bool:
        share = self.fp32_share
        return share is not None and share >= MATMUL_BOUND_FRACTION

    @property
    def slow_int8(self) -> bool:
        """The machine's int8 Linear is barely (or not) faster than fp32."""
        return self.bench_ratio is not None and self.bench_ratio < BARELY_FASTER


def bench_rate(bench: dict[str, Any] | None, key: str) -> float | None:
    """A positive finite rate of the micro-benchmark, else None."""
    v = (bench or {}).get(key)
    return float(v) if finite(v) and not isinstance(v, bool) and v > 0 else None


def same_shape(cell: CellResult | None, point: LatencyPoint) -> LatencyPoint | None:
    """``cell``'s point at ``point``'s (batch, input size), when it is ok and measured it."""
    if cell is None or cell.status != "ok":
        return None
    for p in cell.latency:
        if (p.batch_size, p.input_size) == (point.batch_size, point.input_size):
            return p
    return None


def compute_evidence(
    cell: CellResult,
    point: LatencyPoint,
    base: CellResult | None,
    bench: dict[str, Any] | None,
) -> ComputeEvidence | None:
    """Achieved GFLOP/s of fp32 and of the variant at ``point``; None when neither is known."""
    base_point = same_shape(base, point)
    fp32_rate = point_gflops_per_s(base_point) if base_point is not None else None
    rate = point_gflops_per_s(point)
    if fp32_rate is None and rate is None:
        return None
    return ComputeEvidence(
        recipe=cell.recipe,
        point=point,
        family=cell.family,
        fp32_rate=fp32_rate,
        fp32_peak=bench_rate(bench, "fp32_gflops"),
        rate=rate,
        int8_peak=bench_rate(bench, "int8_gops"),
        bench_ratio=bench_ratio(bench),
        source=str((bench or {}).get("source") or "microbench"),
    )


def winner_at(cells: list[CellResult], model: str, point: LatencyPoint) -> SpeedVerdict | None:
    """The variant(s) significantly faster than fp32 for ``model`` at ``point``'s shape, as
    :func:`quantbench.fastest.decide` tells them (a median above 1 is not enough), or
    None when the timings cannot tell."""
    timed = []
    for c in cells:
        if c.model != model or c.recipe == BASELINE:
            continue
        p = same_shape(c, point)
        if p is not None and p.speedup is not None and p.speedup.median is not None:
            timed.append((c.recipe, p.speedup.median, p))
    verdict = decide(timed)
    return verdict if verdict.verdict in (FASTER, TIED) else None


# ----------------------------------------------------------------------------- slow cases


@dataclass
class SlowCase:
    """A variant slower than fp32 at some shapes, with the causes its data points to."""

    cell: CellResult
    slow: list[tuple[LatencyPoint, SpeedupValue]]  # slowest first
    n_total: int  # shapes with a speedup
    n_significant: int  # shapes whose CI lies entirely below 1
    few: FewModules | None
    small: list[LatencyPoint]  # slow shapes whose pass is under SMALL_MS
    missing_isa_flags: list[str] | None  # the host's flags, when it lacks an int8 ISA
    noisy: int  # slow points marked noisy
    evidence: ComputeEvidence | None  # at the slowest shape
    winner: SpeedVerdict | None  # the significantly fastest variant(s) at the slowest shape
    profile: ProfileEvidence | None = None  # its profile and roofline at the reference shape

    @property
    def has_reason(self) -> bool:
        return bool(self.few or self.small or self.missing_isa_flags is not None or self.noisy)


def slow_cases(
    run: dict[str, Any], cells: list[CellResult], found: Speedups, sizes: Sizes | None = None
) -> list[SlowCase]:
    """Every variant that is slower than fp32 at one shape or more (``sizes``: the
    reference sizes its profile is read at)."""
    sizes = sizes if sizes is not None else ref_sizes(run.get("spec"))
    host = run.get("host") or {}
    isa = has_int8_isa(host)
    bench = machine_rates(run)
    out: list[SlowCase] = []
    for c in sort_cells(cells):
        slow = [(p, s) for cc, p, s in found.points if cc is c and s.median < 1.0]
        if not slow:
            continue
        ordered = sorted(slow, key=lambda ps: ps[1].median)
        base = find_cell(cells, c.model, BASELINE)
        out.append(
            SlowCase(
                cell=c,
                slow=ordered,
                n_total=sum(1 for cc, _, _ in found.points if cc is c),
                n_significant=sum(1 for _, s in slow if s.ci_high is not None and s.ci_high < 1.0),
                few=few_modules(c),
                small=[p for p, _ in ordered if to_ms(p.median, p.unit) < SMALL_MS],
                missing_isa_flags=[str(f) for f in host.get("isa_flags") or []]
                if isa is False
                else None,
                noisy=sum(1 for p, _ in slow if p.verdict == "noisy"),
                evidence=compute_evidence(c, ordered[0][0], base, bench),
                winner=winner_at(cells, c.model, ordered[0][0]),
                profile=profile_evidence(run, cells, c, sizes),
            )
        )
    return out


@dataclass
class BarelyFaster:
    """A variant at least as fast as fp32 but under BARELY_FASTER at the reference shape."""

    cell: CellResult
    ref: LatencyPoint
    speedup: SpeedupValue
    few: FewModules | None
    evidence: ComputeEvidence | None
    profile: ProfileEvidence | None = None


def barely_faster(
    run: dict[str, Any], cells: list[CellResult], skip: set[int], sizes: Sizes
) -> list[BarelyFaster]:
    """Variants under BARELY_FASTER at the reference shape (``skip``: ids of cells already
    discussed as slower)."""
    bench = machine_rates(run)
    out = []
    for c in sort_cells(cells):
        if c.recipe == BASELINE or not c.latency or id(c) in skip:
            continue
        base = find_cell(cells, c.model, BASELINE)
        ref = reference_point(c, sizes)
        s = point_speedup(ref, base) if ref is not None else None
        if ref is None or s is None or not 1.0 <= s.median < BARELY_FASTER:
            continue
        out.append(BarelyFaster(c, ref, s, few_modules(c), compute_evidence(c, ref, base, bench),
                                profile_evidence(run, cells, c, sizes)))  # fmt: skip
    return out


# ----------------------------------------------------------------------------- compute


@dataclass
class ComputeRow:
    """A cell's achieved rate at its reference shape, and the machine rate it compares to."""

    cell: CellResult
    ref: LatencyPoint
    gflop: float | None
    rate: float
    peak: float | None
    peak_name: str  # "fp32 Linear" or "int8 Linear"


@dataclass
class AchievedCompute:
    """The micro-benchmark's ceiling and each cell's achieved rate at its reference shape."""

    bench: dict[str, Any] | None
    fp32_peak: float | None
    int8_peak: float | None
    ratio: float | None
    rows: list[ComputeRow]
    above: list[tuple[CellResult, SpeedupValue, LatencyPoint]]  # above the ceiling
    any_variant_timed: bool


def achieved_compute(
    run: dict[str, Any], cells: list[CellResult], sizes: Sizes
) -> AchievedCompute | None:
    """None when there is neither a micro-benchmark nor a recorded rate."""
    bench = host_microbench(run)
    fp32_peak, int8_peak = bench_rate(bench, "fp32_gflops"), bench_rate(bench, "int8_gops")
    ratio = bench_ratio(bench)
    rows = []
    above = []
    for c in sort_cells(cells):
        ref = reference_point(c, sizes)
        if ref is None:
            continue
        rate = point_gflops_per_s(ref)
        base = find_cell(cells, c.model, BASELINE)
        s = point_speedup(ref, base) if c.recipe != BASELINE else None
        if s is not None and ratio is not None and ratio > 0 and s.median > ratio:
            above.append((c, s, ref))
        if rate is None:
            continue
        peak, what = (
            (fp32_peak, "fp32 Linear") if c.recipe == BASELINE else (int8_peak, "int8 Linear")
        )
        rows.append(ComputeRow(c, ref, point_gflops(ref), rate, peak, what))
    if not rows and bench is None:
        return None
    timed = any(c.recipe != BASELINE and c.latency for c in cells)
    return AchievedCompute(bench, fp32_peak, int8_peak, ratio, rows, above, timed)


# ----------------------------------------------------------------------------- fidelity


@dataclass
class FidelityIssue:
    """Where a variant's outputs drift from fp32's beyond FIDELITY_MIN."""

    cell: CellResult
    undefined_cosine: bool  # NaN: degenerate (e.g. all-zero) outputs
    low_cosine: float | None
    low_top1: float | None


def fidelity_issue(cell: CellResult) -> FidelityIssue | None:
    """The cell's fidelity problems; None when it has none (or no fidelity)."""
    f = cell.fidelity
    if f is None:
        return None
    nan = isinstance(f.cosine, float) and f.cosine != f.cosine
    low_cos = f.cosine if not nan and f.cosine is not None and f.cosine < FIDELITY_MIN else None
    top1 = f.top1_agreement
    low_top1 = top1 if top1 is not None and top1 < FIDELITY_MIN else None
    if not nan and low_cos is None and low_top1 is None:
        return None
    return FidelityIssue(cell, nan, low_cos, low_top1)
