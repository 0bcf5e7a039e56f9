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


# ------------------------------------------------- a winner only when the timings can tell


def _timed(model: str, runs: dict[str, list[float]], cos: float = 0.999) -> list[CellResult]:
    """Cells of ``model`` timed in the same interleaved rounds (``runs``: recipe -> its
    samples, fp32 first), each speedup taken as the runner takes it (paired, median CI)."""
    import statistics

    from quantbench.measure.latency import median_ci, paired_ratios, summarize

    base = runs["fp32"]
    cells = []
    for recipe, samples in runs.items():
        ratios = sorted(paired_ratios(base, samples))
        lo, hi = median_ci(ratios)
        point = LatencyPoint(
            batch_size=1, input_size=224, sweep="input_size", unit="ms",
            stats=summarize(samples), samples=samples,
            speedup=Speedup(statistics.median(ratios), lo, hi, len(ratios)),
        )  # fmt: skip
        cells.append(CellResult(model=model, recipe=recipe, family="vision",
                                size_bytes=400 if recipe == "fp32" else 100,
                                fidelity=Fidelity(1.0 if recipe == "fp32" else cos, 0.01, 1.0),
                                latency=[point]))  # fmt: skip
    return cells


def _around(center: float, spread: float, n: int = 30, seed: int = 0) -> list[float]:
    import random

    rng = random.Random(seed)
    return [center * (1 + spread * (2 * rng.random() - 1)) for _ in range(n)]


def _line(cells: list[CellResult]) -> str:
    from quantbench.best import as_dict, summary_lines

    lines = summary_lines({"measure": ["fidelity"]}, as_dict(recommend(cells)), cells)
    return lines[0]


def test_a_clear_winner_is_named_fastest_with_its_interval():
    cells = _timed("m", {"fp32": _around(10, 0.01), "fast": _around(5, 0.01, seed=1),
                         "slower": _around(8, 0.01, seed=2)})  # fmt: skip
    rec = recommend(cells)["m"]
    assert rec.speed.verdict == "faster" and rec.fastest.recipe == "fast" and not rec.speed.tied
    lo, hi = rec.speed.speedup_ci
    assert 1 < lo <= rec.speed.speedup <= hi
    assert _line(cells).startswith(f"m: fastest fast {rec.speed.speedup:.2f}x [{lo:.2f}, {hi:.2f}]")
    assert "slower (" in {c.recipe: c.why_not for c in rec.candidates}["slower"]


def test_a_noisy_tie_names_both():
    """Two variants both surely faster than fp32, but not told apart from each other."""
    cells = _timed("m", {"fp32": _around(10, 0.02), "a": _around(5, 0.3, seed=1),
                         "b": _around(5.1, 0.3, seed=2)})  # fmt: skip
    rec = recommend(cells)["m"]
    assert rec.speed.verdict == "tied" and {rec.speed.recipe, *rec.speed.tied} == {"a", "b"}
    line = _line(cells)
    assert line.startswith("m: fastest: tied, ") and " a " in line + " " and " and " in line
    other = rec.speed.tied[0]
    assert "tied with" in {c.recipe: c.why_not for c in rec.candidates}[other]


def test_a_speedup_whose_interval_includes_1_is_no_winner():
    """The issue's "15.76x [0.35, 46.98]": a high median on a busy machine is not a win."""
    # most rounds 16x faster, the rest 3x slower (the machine busy in those rounds)
    noisy = [x * (0.06 if i % 15 < 8 else 3.0) for i, x in enumerate(_around(1.0, 0.05, seed=3))]
    cells = _timed("m", {"fp32": _around(1.0, 0.05), "dynamic-int8": noisy})
    rec = recommend(cells)["m"]
    sp = rec.speed
    assert sp.verdict == "no significant speedup" and sp.recipe == "dynamic-int8"
    assert sp.speedup > 10 and sp.speedup_ci[0] < 1 < sp.speedup_ci[1]
    assert rec.fastest.recipe == "fp32"  # nothing is surely faster: fp32 stays the pick
    line = _line(cells)
    assert "no significant speedup at this shape (machine busy or differences too small)" in line
    assert "fastest dynamic-int8" not in line
    why = {c.recipe: c.why_not for c in rec.candidates}["dynamic-int8"]
    assert why.startswith("not significantly faster than fp32")


def test_too_few_rounds_are_no_winner():
    cells = _timed("m", {"fp32": _around(10, 0.01, n=4), "q": _around(2, 0.01, n=4, seed=1)})
    assert recommend(cells)["m"].speed.verdict == "no significant speedup"
