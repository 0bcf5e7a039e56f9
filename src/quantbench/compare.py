"""Compare stored runs: the cells they share, side by side.

The first run is the baseline. For every (model, recipe, batch size, input size) point
that a later run also measured: both latency medians and the change, whether the change
is significant (Mann-Whitney U on both runs' raw samples, so timing noise is not taken
for a regression), both paired speedups vs fp32 (each taken inside its own run, so
machine drift cancels), and each metric the metrics table marks for comparison
(``quantbench.measure.metrics``: speedup, size, task metric).

This module makes the records (:class:`Point`, :class:`GateReport`); compare.md and its
figures are the report's (``quantbench.report.compare``, which also runs the command).

A change that is not significant is not "no change": when it is large (at least
:data:`LARGE_CHANGE_PCT`) or either run's samples are noisy, the verdict is
"inconclusive: too noisy to tell (n, CI)".

Gates, for CI (:func:`gates`; every gate is evaluated and reported, exit status 1 when
any fails): ``--fail-if-slower PCT`` fails on a *significant* latency increase beyond PCT
percent, ``--fail-if-less-accurate PP`` on an accuracy drop of more than PP percentage
points, ``--fail-if-larger PCT`` on a size increase beyond PCT percent. A gate with
nothing to check in a compared pair (no accuracy, no size, no point with enough samples
to test) is an error (exit 2), never a pass.

Example::

    >>> from quantbench.compare import pct_change
    >>> round(pct_change(10.0, 11.0), 1)
    10.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from quantbench.errors import QuantbenchError
from quantbench.measure import metrics
from quantbench.measure.significance import MIN_SAMPLES, Significance, compare_samples
from quantbench.results import CellResult

_EPS = 1e-9  # a change exactly at the threshold is not beyond it, whatever float rounding
# A change at least this large (percent) that is not significant is "inconclusive", never
# read as no change.
LARGE_CHANGE_PCT = 5.0


@dataclass
class Point:
    run: str
    model: str
    recipe: str
    batch_size: int
    input_size: int
    base_ms: float
    ms: float
    change_pct: float  # latency change vs the baseline run, percent (+ = slower)
    # metric name -> (the baseline run's value, this run's), for every metric the metrics
    # table compares (quantbench.measure.metrics.shown("compare"))
    values: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    # Mann-Whitney U on both runs' raw samples at this point (None: not computed)
    significance: Significance | None = None
    base_run: str = ""
    # Each run's ~95% CI of the median (ms), and whether either run's samples were noisy
    base_ci: tuple[float, float] | None = None
    ci: tuple[float, float] | None = None
    noisy: bool = False

    def pair(self, name: str) -> tuple[Any, Any]:
        """(baseline, this run) of metric ``name``; (None, None) when not compared."""
        return self.values.get(name, (None, None))

    base_speedup = property(lambda self: self.pair("speedup")[0])
    speedup = property(lambda self: self.pair("speedup")[1])
    base_size = property(lambda self: self.pair("size_bytes")[0])
    size = property(lambda self: self.pair("size_bytes")[1])
    base_metric = property(lambda self: self.pair("metric_value")[0])
    metric = property(lambda self: self.pair("metric_value")[1])

    @property
    def verdict(self) -> str:
        """The verdict: significant, not significant, inconclusive (a large or noisy
        change the samples cannot settle), or too few samples (N vs M)."""
        sig = self.significance
        if sig is None:
            return "too few samples"
        if sig.p_value is None:
            return f"too few samples ({sig.n_old} vs {sig.n_new})"
        if not sig.significant and (abs(self.change_pct) >= LARGE_CHANGE_PCT or self.noisy):
            return f"inconclusive: too noisy to tell ({self._noise_text()})"
        return sig.verdict

    def _noise_text(self) -> str:
        sig = self.significance
        n = f"n {sig.n_old} vs {sig.n_new}" if sig else "n ?"
        if self.base_ci is None or self.ci is None:
            return n

        def ci(c: tuple[float, float]) -> str:
            return f"{metrics.fmt_sig(c[0])}–{metrics.fmt_sig(c[1])}"

        return f"{n}, CI {ci(self.base_ci)} vs {ci(self.ci)} ms"

    @property
    def testable(self) -> bool:
        """Whether both runs had enough raw samples here to test the change."""
        return self.significance is not None and self.significance.p_value is not None

    @property
    def significant(self) -> bool:
        return self.significance is not None and self.significance.significant

    @property
    def p_text(self) -> str:
        return "—" if self.significance is None else self.significance.p_text


def pct_change(base: float, new: float) -> float:
    return (new / base - 1.0) * 100.0


def _points(cells: list[CellResult]) -> dict[tuple, tuple[CellResult, Any]]:
    out = {}
    for c in cells:
        if c.status != "ok":
            continue
        for p in c.latency:
            out[(c.model, c.recipe, p.batch_size, p.input_size)] = (c, p)
    return out


def compare(runs: list[tuple[dict[str, Any], list[CellResult]]]) -> list[Point]:
    """Points shared by the first run and each later one; raises when none are shared."""
    if len(runs) < 2:
        raise QuantbenchError("compare needs at least two runs")
    base_meta, base_cells = runs[0]
    base = _points(base_cells)
    out: list[Point] = []
    for meta, cells in runs[1:]:
        other = _points(cells)
        shared = sorted(base.keys() & other.keys())
        if not shared:
            raise QuantbenchError(
                f"runs {base_meta['id']} and {meta['id']} share no measured cells "
                "(no model, recipe, batch size and input size in common)"
            )
        for key in shared:
            (bc, bp), (c, p) = base[key], other[key]
            base_ms, ms = _MEDIAN.get(bc, bp), _MEDIAN.get(c, p)
            out.append(Point(
                run=meta["id"], model=key[0], recipe=key[1], batch_size=key[2],
                input_size=key[3], base_ms=base_ms, ms=ms, change_pct=pct_change(base_ms, ms),
                values={m.name: (m.get(bc, bp), m.get(c, p)) for m in metrics.shown("compare")},
                significance=compare_samples(bp.samples, p.samples),
                base_run=base_meta["id"], base_ci=_ci_ms(bp), ci=_ci_ms(p),
                noisy="noisy" in (bp.verdict, p.verdict),
            ))  # fmt: skip
    return out


def _ci_ms(point: Any) -> tuple[float, float] | None:
    lo, hi = metrics.number(point.ci_low), metrics.number(point.ci_high)
    if lo is None or hi is None:
        return None
    return metrics.to_ms(lo, point.unit), metrics.to_ms(hi, point.unit)


_MEDIAN = metrics.metric("median")  # the latency compared, point by point (in ms)


def regressions(points: list[Point], pct: float) -> list[Point]:
    """Points slower than the baseline by more than ``pct`` percent, by median alone."""
    return [p for p in points if p.change_pct > pct]


GATE_FLAGS = {
    "slower_pct": "--fail-if-slower",
    "less_accurate_pp": "--fail-if-less-accurate",
    "larger_pct": "--fail-if-larger",
}


def check_threshold(name: str, value: float | str | None) -> float | None:
    """A gate threshold as a float (None: gate not asked for). Refuses, as a one-line
    QuantbenchError (exit 2), text that is not a number and a number that is negative, NaN
    or infinite. ``name`` is a key of :data:`GATE_FLAGS` or the flag itself."""
    if value is None:
        return None
    flag = GATE_FLAGS.get(name, name).lstrip("-")
    unit = "percentage points" if "accurate" in flag else "a percentage"
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        shown = format(value, "g") if isinstance(value, float) else repr(value)
        raise QuantbenchError(f"{flag} must be {unit} >= 0, got {shown}")
    return number


@dataclass(frozen=True)
class Failure:
    """One offending (model, recipe[, shape]) of one gate, in one compared run."""

    gate: str  # "--fail-if-slower", "--fail-if-less-accurate" or "--fail-if-larger"
    threshold: float
    run: str
    base_run: str
    model: str
    recipe: str
    shape: tuple[int, int] | None  # (batch size, input size) for latency; None otherwise
    detail: str

    def where(self) -> str:
        shape = f" · {self.shape[0]} × {self.shape[1]}" if self.shape else ""
        return f"{self.model} · {self.recipe}{shape} ({self.run} vs {self.base_run})"

    def line(self) -> str:
        return f"FAILED {self.gate} {self.threshold:g}: {self.where()}: {self.detail}"


@dataclass
class GateReport:
    """What the gates found: failures (exit 1) and notes (why something did not fail,
    or that a gate had nothing to check)."""

    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # "--fail-if-slower 10", ...

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    def lines(self) -> list[str]:
        """One line per failure and per note, then a one-line summary."""
        if not self.checked:
            return []
        out = [f.line() for f in self.failures] + list(self.notes)
        gates_ = ", ".join(self.checked)
        out.append(
            f"{len(self.failures)} gate failure(s) ({gates_})." if self.failures
            else f"All gates passed ({gates_})."
        )  # fmt: skip
        return out


def _per_cell(points: list[Point]) -> list[Point]:
    """One point per (run, model, recipe): size and accuracy belong to the cell."""
    seen: dict[tuple[str, str, str], Point] = {}
    for p in points:
        seen.setdefault((p.run, p.model, p.recipe), p)
    return list(seen.values())


def gate_report(
    points: list[Point],
    slower_pct: float | None = None,
    less_accurate_pp: float | None = None,
    larger_pct: float | None = None,
) -> GateReport:
    """Evaluate every requested gate (None: not requested) on the compared points.

    - slower: a point fails when its median is more than ``slower_pct`` percent above the
      baseline's *and* the change is significant; a slowdown that is not (or cannot be
      tested) is noted as not failed, since timing noise alone must not fail CI.
    - less accurate: a cell fails when ``accuracy.value`` (a fraction) dropped by more
      than ``less_accurate_pp`` percentage points; cells without accuracy in both runs
      are skipped.
    - larger: a cell fails when ``size_bytes`` grew by more than ``larger_pct`` percent.

    A requested gate with nothing to check in some compared pair (no point testable, no
    cell with accuracy or size in both) raises a one-line QuantbenchError (exit 2): a
    gate that checked nothing must not read as passed."""
    slower_pct = check_threshold("slower_pct", slower_pct)
    less_accurate_pp = check_threshold("less_accurate_pp", less_accurate_pp)
    larger_pct = check_threshold("larger_pct", larger_pct)
    rep = GateReport()
    empty: list[str] = []  # "gate: nothing to check in base and run (why)"
    if slower_pct is not None:
        _gate_slower(points, slower_pct, rep, empty)
    if less_accurate_pp is not None:
        _gate_less_accurate(points, less_accurate_pp, rep, empty)
    if larger_pct is not None:
        _gate_larger(points, larger_pct, rep, empty)
    if empty:  # a gate that checks nothing would pass CI silently
        raise QuantbenchError(
            f"{'; '.join(empty)}: nothing to check, so the gate cannot pass or fail "
            "(measure it in both runs, or drop the gate)"
        )
    return rep


def _base_of(points: list[Point], run: str) -> str:
    return next(p.base_run for p in points if p.run == run)


def _gate_slower(points: list[Point], pct: float, rep: GateReport, empty: list[str]) -> None:
    gate = GATE_FLAGS["slower_pct"]
    rep.checked.append(f"{gate} {pct:g}")
    for run in dict.fromkeys(p.run for p in points):
        if not any(p.testable for p in points if p.run == run):
            empty.append(f"{gate} {pct:g}: no shared point of {_base_of(points, run)} and "
                         f"{run} has enough raw samples to test a change "
                         f"({MIN_SAMPLES} a side)")  # fmt: skip
    for p in points:
        if p.change_pct - pct <= _EPS:
            continue
        detail = f"{p.change_pct:+.1f}% ({p.base_ms:.3f} → {p.ms:.3f} ms), {p.verdict}"
        if p.significance is not None and p.significance.p_value is not None:
            t = p.p_text
            detail += f", p{t}" if t.startswith("<") else f", p={t}"
        f = Failure(gate, pct, p.run, p.base_run, p.model, p.recipe,
                    (p.batch_size, p.input_size), detail)  # fmt: skip
        if p.significant:
            rep.failures.append(f)
        else:
            rep.notes.append(f"{gate} {pct:g}: {f.where()}: {detail}, not failed")


def _gate_less_accurate(points: list[Point], pp: float, rep: GateReport, empty: list[str]) -> None:
    gate = GATE_FLAGS["less_accurate_pp"]
    rep.checked.append(f"{gate} {pp:g}")
    cells = _per_cell(points)
    for run in dict.fromkeys(p.run for p in points):
        both = [p for p in cells if p.run == run
                and p.base_metric is not None and p.metric is not None]  # fmt: skip
        if not both:
            empty.append(f"{gate} {pp:g}: no shared cell has accuracy in "
                         f"both {_base_of(points, run)} and {run}")  # fmt: skip
        for p in both:
            assert p.base_metric is not None and p.metric is not None
            drop = (p.base_metric - p.metric) * 100.0
            if drop - pp > _EPS:
                rep.failures.append(Failure(
                    gate, pp, p.run, p.base_run, p.model, p.recipe, None,
                    f"accuracy {p.base_metric:.4f} → {p.metric:.4f} (-{drop:.2f} points)",
                ))  # fmt: skip


def _gate_larger(points: list[Point], pct: float, rep: GateReport, empty: list[str]) -> None:
    gate = GATE_FLAGS["larger_pct"]
    rep.checked.append(f"{gate} {pct:g}")
    cells = _per_cell(points)
    for run in dict.fromkeys(p.run for p in points):
        both = [p for p in cells if p.run == run and p.base_size and p.size is not None]
        if not both:
            empty.append(f"{gate} {pct:g}: no shared cell has a size in both "
                         f"{_base_of(points, run)} and {run}")  # fmt: skip
        for p in both:
            assert p.base_size and p.size is not None
            grew = pct_change(p.base_size, p.size)
            if grew - pct > _EPS:
                rep.failures.append(Failure(
                    gate, pct, p.run, p.base_run, p.model, p.recipe, None,
                    f"size {p.base_size:,} → {p.size:,} bytes ({grew:+.1f}%)",
                ))  # fmt: skip


def gates(
    points: list[Point],
    slower_pct: float | None = None,
    less_accurate_pp: float | None = None,
    larger_pct: float | None = None,
) -> list[Failure]:
    """The failures of every requested gate (empty: all passed); see :func:`gate_report`."""
    return gate_report(points, slower_pct, less_accurate_pp, larger_pct).failures


@dataclass
class Comparison:
    """What ``quantbench compare`` found: the runs' metadata (the baseline first), the
    points they share and what the gates said (compare.md is written from it)."""

    runs: list[dict[str, Any]]
    points: list[Point]
    gates: GateReport | None = None
    warnings: list[str] = field(default_factory=list)  # runs that differ (compareruns)
