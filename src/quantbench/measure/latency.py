"""Latency: interleaved timing of variants, raw samples kept, statistics derived.

Variants of one model at one shape are timed in rounds (A B C, B C A, C A B, ...) so
that machine drift hits all of them alike; the paired speedup is the median of the
per-round ratios, not a ratio of two medians taken at different moments.

Example::

    >>> from quantbench.measure.latency import TimingPolicy, time_interleaved, summarize
    >>> samples = time_interleaved({"a": lambda: sum(range(1000))}, TimingPolicy(min_runs=10))
    >>> summarize(samples["a"]).n >= 10
    True
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from quantbench.results import Stats  # noqa: F401 - the record summarize() returns

# Spread above which a cell is flagged noisy (pyperf warns at std >= 10% of the mean).
NOISY_REL_STD = 0.10
NOISY_REL_CI = 0.10


@dataclass(frozen=True)
class TimingPolicy:
    """When to stop timing: at least ``min_runs`` rounds and ``min_time_s`` per variant,
    but no more than ``max_time_s`` of extra rounds once ``min_runs`` is reached.

    Warm-up: at least ``warmup`` rounds, then more (up to ``max_warmup`` rounds and
    ``max_warmup_s`` seconds) until every variant's last two warm-up passes agree within
    ``settle_rel`` (caches, allocators, lazy initialisation and compiled code settled)."""

    warmup: int = 2
    max_warmup: int = 20
    max_warmup_s: float = 10.0  # extra (settling) warm-up stops after this much time
    settle_rel: float = 0.10
    min_runs: int = 10
    min_time_s: float = 0.0
    max_time_s: float = 30.0


def percentile(sorted_vals: list[float], q: float) -> float:
    """Linear-interpolated percentile of already sorted values (numpy's default)."""
    if not sorted_vals:
        return math.nan
    pos = (len(sorted_vals) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def median_ci(sorted_vals: list[float], z: float = 1.96) -> tuple[float, float]:
    """Distribution-free ~95% confidence interval of the median (binomial order statistics)."""
    n = len(sorted_vals)
    if n == 0:
        return math.nan, math.nan
    half = z * math.sqrt(n) / 2.0
    lo = max(0, math.floor(n / 2.0 - half))
    hi = min(n - 1, math.ceil(n / 2.0 + half) - 1)
    return sorted_vals[lo], sorted_vals[hi]


def summarize(samples: list[float]) -> Stats:
    """Statistics of raw samples; verdict ``noisy`` when std or CI width exceeds 10%."""
    s = sorted(samples)
    n = len(s)
    mean = statistics.fmean(s)
    std = statistics.stdev(s) if n > 1 else 0.0
    med = statistics.median(s)
    lo, hi = median_ci(s)
    noisy = (mean > 0 and std / mean >= NOISY_REL_STD) or (
        med > 0 and (hi - lo) / med > NOISY_REL_CI
    )
    return Stats(
        mean=mean, std=std, median=med, p90=percentile(s, 90), p99=percentile(s, 99), min=s[0],
        n=n, ci_low=lo, ci_high=hi, verdict="noisy" if noisy else "stable",
    )  # fmt: skip


def paired_ratios(baseline: list[float], variant: list[float]) -> list[float]:
    """Per-round speedups baseline/variant (rounds are aligned by index)."""
    return [b / v for b, v in zip(baseline, variant, strict=False) if v > 0]


def _settled(last_two: list[float], rel: float) -> bool:
    if len(last_two) < 2:
        return False
    a, b = last_two
    return abs(a - b) <= rel * max(a, b, 1e-12)


Timer = Callable[[Callable[[], Any]], float]


def cuda_timer() -> Timer:
    """Seconds one call takes on the GPU: ``torch.cuda.synchronize()`` (nothing queued
    before it is counted), a ``torch.cuda.Event(enable_timing=True)`` recorded before and
    after the call on the current stream, then the end event waited for and the elapsed
    time read. Kernels launch asynchronously, so a host clock around the call would
    measure launches, not the work. (A call that blocks the host, like an ONNX Runtime
    session, is bracketed by the two events all the same.)"""
    import torch

    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)

    def timed(fn: Callable[[], Any]) -> float:
        torch.cuda.synchronize()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0  # elapsed_time is in ms

    return timed


def timer_for(device: str) -> Timer | None:
    """The timer for ``device``: :func:`cuda_timer` on cuda; None (the host clock, as
    :func:`time_interleaved` does by default) on the CPU."""
    return cuda_timer() if device == "cuda" else None


def time_interleaved(
    variants: dict[str, Callable[[], Any]],
    policy: TimingPolicy,
    clock: Callable[[], float] = time.perf_counter,
    timer: Timer | None = None,
    watch: Any = None,
) -> dict[str, list[float]]:
    """Time each callable in interleaved rounds; return milliseconds per variant.

    Warm-up passes run first and are excluded. Each round times every variant once,
    starting from a rotating position so that no variant always runs first. Each call
    is timed by ``clock`` around it, or by ``timer(fn) -> seconds`` when given (CUDA
    events: :func:`cuda_timer`); ``clock`` still paces the warm-up and time budgets.
    ``watch`` (:class:`~quantbench.measure.contention.Watch`) reads CPU time and run-queue
    wait around each timed pass, outside its timed interval.
    """

    def host(fn: Callable[[], Any]) -> float:
        t0 = clock()
        fn()
        return clock() - t0

    timed = timer or host
    names = list(variants)
    last: dict[str, list[float]] = {n: [] for n in names}
    warm_start = clock()
    for i in range(max(policy.warmup, policy.max_warmup)):
        if i >= policy.warmup and (
            all(_settled(last[n], policy.settle_rel) for n in names)
            or clock() - warm_start >= policy.max_warmup_s
        ):
            break
        for name in names:
            last[name] = (last[name] + [timed(variants[name])])[-2:]
    samples: dict[str, list[float]] = {n: [] for n in names}
    totals = dict.fromkeys(names, 0.0)
    start = clock()
    rounds = 0
    while True:
        k = rounds % len(names)
        for name in names[k:] + names[:k]:
            if watch is not None:
                watch.before()
            dt = timed(variants[name])
            if watch is not None:
                watch.after()
            samples[name].append(dt * 1000.0)
            totals[name] += dt
        rounds += 1
        if rounds < policy.min_runs:
            continue
        if all(t >= policy.min_time_s for t in totals.values()):
            break
        if clock() - start >= policy.max_time_s:
            break
    return samples
