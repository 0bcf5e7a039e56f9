"""Choosing what to ship: fastest and smallest variants that keep fidelity."""

from __future__ import annotations

from quantbench.best import recommend
from quantbench.results import CellResult, Fidelity, LatencyPoint, Speedup, Stats


def _pt(b, s, median, speedup=None):
    return LatencyPoint(
        batch_size=b, input_size=s, sweep="input_size", unit="ms",
        stats=Stats(mean=median, std=0.0, median=median, p90=median, p99=median, min=median,
                    n=10, ci_low=median, ci_high=median, verdict="stable"),
        samples=[median] * 10,
        speedup=Speedup(speedup, speedup * 0.95, speedup * 1.05, 10) if speedup else None,
    )  # fmt: skip


def _cell(recipe, size, cos, top1, speedup, status="ok"):
    return CellResult(
        model="m", recipe=recipe, status=status, family="vision", size_bytes=size,
        fidelity=Fidelity(cos, 0.1, top1),
        latency=[_pt(1, 224, 10.0 / (speedup or 1.0), speedup), _pt(1, 64, 1.0, speedup)],
        error=None if status == "ok" else "no kernel",
    )  # fmt: skip


def test_fastest_and_smallest_keep_fidelity():
    results = [
        _cell("fp32", 400, 1.0, 1.0, None),
        _cell("a-fast-but-wrong", 100, 0.95, 1.0, 5.0),  # loses fidelity: excluded
        _cell("b-fast", 200, 0.999, 1.0, 3.0),
        _cell("c-small", 90, 0.995, 0.995, 2.0),
        _cell("d-top1-bad", 80, 0.999, 0.90, 4.0),
        _cell("e-broken", None, None, None, None, status="unsupported"),
    ]
    rec = recommend(results)["m"]
    assert rec.reference == (1, 224)
    assert rec.fastest.recipe == "b-fast" and rec.fastest.speedup == 3.0
    assert rec.smallest.recipe == "c-small" and rec.smallest.size_ratio == 90 / 400
    why = {c.recipe: c.why_not for c in rec.candidates}
    assert "cosine 0.9500" in why["a-fast-but-wrong"]
    assert "top-1 agreement 90.0%" in why["d-top1-bad"]
    assert why["e-broken"].startswith("unsupported")
    assert "slower" in why["c-small"] or why["c-small"] == ""
    assert "slower (1.00x vs 3.00x)" in why["fp32"]


def test_thresholds_are_configurable():
    results = [_cell("fp32", 400, 1.0, 1.0, None), _cell("q", 100, 0.95, 1.0, 2.0)]
    assert recommend(results)["m"].fastest.recipe == "fp32"
    assert recommend(results, min_cosine=0.9)["m"].fastest.recipe == "q"


def test_reference_size_configurable():
    results = [_cell("fp32", 400, 1.0, 1.0, None), _cell("q", 100, 0.999, 1.0, 2.0)]
    assert recommend(results, ref_sizes={"vision": 64})["m"].reference == (1, 64)
