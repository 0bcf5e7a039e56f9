"""Timing loop and statistics, with a fake clock: stopping rules, interleaving, stats."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from quantbench.measure.latency import (
    TimingPolicy,
    median_ci,
    paired_ratios,
    percentile,
    summarize,
    time_interleaved,
)


class FakeClock:
    """Each variant call advances time by its cost; the timer reads the clock."""

    def __init__(self) -> None:
        self.t = 0.0
        self.calls: list[str] = []

    def __call__(self) -> float:
        return self.t

    def cost(self, name: str, seconds: float):
        def fn():
            self.calls.append(name)
            self.t += seconds

        return fn


def test_warmup_excluded_and_min_runs():
    clk = FakeClock()
    out = time_interleaved(
        {"a": clk.cost("a", 0.001), "b": clk.cost("b", 0.002)},
        TimingPolicy(warmup=3, min_runs=10, min_time_s=0.0),
        clock=clk,
    )
    assert len(out["a"]) == 10 and len(out["b"]) == 10
    assert len(clk.calls) == 2 * 13  # 3 warm-up rounds not timed
    assert out["a"][0] == pytest.approx(1.0) and out["b"][0] == pytest.approx(2.0)


def test_rounds_interleave_and_rotate():
    clk = FakeClock()
    time_interleaved(
        {n: clk.cost(n, 0.001) for n in "abc"},
        TimingPolicy(warmup=0, max_warmup=0, min_runs=3),
        clock=clk,
    )
    assert "".join(clk.calls) == "abc" + "bca" + "cab"


def test_warmup_continues_until_settled():
    clk = FakeClock()
    costs = iter([0.5, 0.3, 0.2, 0.1, 0.1] + [0.1] * 100)

    def slow_start():
        clk.t += next(costs)

    out = time_interleaved({"a": slow_start}, TimingPolicy(warmup=2, min_runs=5), clock=clk)
    # warm-up ran 5 passes (until two in a row agreed), none of them timed
    assert out["a"] == pytest.approx([100.0] * 5)
    clk2 = FakeClock()
    costs2 = iter([float(i) for i in range(1, 100)])  # never settles: capped

    def drifting():
        clk2.t += next(costs2)

    out = time_interleaved(
        {"a": drifting}, TimingPolicy(warmup=2, max_warmup=4, min_runs=1), clock=clk2
    )
    assert out["a"] == [5000.0]


def test_min_time_extends_rounds():
    clk = FakeClock()
    out = time_interleaved(
        {"fast": clk.cost("fast", 1 / 64), "slow": clk.cost("slow", 1 / 8)},
        TimingPolicy(warmup=0, min_runs=10, min_time_s=1.0, max_time_s=100),
        clock=clk,
    )
    # the fast variant needs 64 passes to reach 1 s; rounds time both
    assert len(out["fast"]) == 64 and len(out["slow"]) == 64


def test_max_time_caps_but_never_below_min_runs():
    clk = FakeClock()
    out = time_interleaved(
        {"a": clk.cost("a", 0.5)},
        TimingPolicy(warmup=0, min_runs=10, min_time_s=100.0, max_time_s=6.0),
        clock=clk,
    )
    assert len(out["a"]) == 12  # 10 required, then rounds until 6 s elapsed
    clk2 = FakeClock()
    out = time_interleaved(
        {"a": clk2.cost("a", 2.0)},
        TimingPolicy(warmup=0, min_runs=10, min_time_s=100.0, max_time_s=1.0),
        clock=clk2,
    )
    assert len(out["a"]) == 10


def test_summary_matches_numpy():
    rng = np.random.default_rng(0)
    vals = list(rng.normal(10, 1, size=101))
    s = summarize(vals)
    assert s.mean == pytest.approx(np.mean(vals))
    assert s.std == pytest.approx(np.std(vals, ddof=1))
    assert s.median == pytest.approx(np.median(vals))
    assert s.p90 == pytest.approx(np.percentile(vals, 90))
    assert s.p99 == pytest.approx(np.percentile(vals, 99))
    assert s.min == min(vals) and s.n == 101
    assert s.ci_low <= s.median <= s.ci_high


def test_verdicts():
    assert (
        summarize([10.0, 10.1, 9.9, 10.0, 10.05, 9.95, 10.0, 10.02, 9.98, 10.0]).verdict == "stable"
    )
    assert summarize([10.0, 14.0, 8.0, 12.0, 9.0, 15.0, 7.0, 11.0, 13.0, 10.0]).verdict == "noisy"


def test_median_ci_order_statistics():
    vals = list(range(1, 11))  # n=10: the 2nd and 9th values (coverage ~98%)
    assert median_ci(vals) == (2, 9)
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)


def test_paired_ratios():
    assert paired_ratios([10, 20, 30], [5, 10, 10]) == [2.0, 2.0, 3.0]
    assert statistics.median(paired_ratios([10, 20, 30], [5, 10, 10])) == 2.0


def test_real_timing_is_positive():
    out = time_interleaved({"a": lambda: sum(range(100))}, TimingPolicy(min_runs=10))
    assert len(out["a"]) >= 10 and all(v > 0 for v in out["a"])
