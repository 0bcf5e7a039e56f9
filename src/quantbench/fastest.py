"""Which variant is fastest at the reference shape, and whether the data can tell.

A median speedup is not a winner: on a busy machine "15.76x [0.35, 46.98]" is noise. A
variant is called *fastest* only when it is significantly faster than fp32 (the lower
end of its paired speedup's ~95% CI above 1, with at least
:data:`~quantbench.measure.significance.MIN_SAMPLES` rounds) and than the runner-up;
when the runner-up cannot be told apart the two (or more) are *tied*; when no variant
beats fp32 significantly the verdict is "no significant speedup".

"Significantly faster than the runner-up" is tested the way the speedup itself is taken:
the variants were timed in interleaved rounds, so the per-round ratios runner-up/leader
are paired and their median's CI (``measure.latency.median_ci``) must lie above 1. When
the rounds cannot be paired (samples of unequal length), the Mann-Whitney U test on both
sets of raw samples decides (``measure.significance``); without raw samples, the two
speedup CIs must not overlap.

Example::

    >>> from quantbench.fastest import speed_text
    >>> speed_text({"verdict": "no significant speedup", "recipe": "dynamic-int8",
    ...             "speedup": 15.76, "speedup_ci": [0.35, 46.98], "tied": []})
    'no significant speedup at this shape (machine busy or differences too small); best seen: dynamic-int8 15.76x [0.35, 46.98]'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from quantbench.measure.significance import MIN_SAMPLES

FASTER = "faster"  # one variant significantly faster than fp32 and than the runner-up
TIED = "tied"  # significantly faster than fp32, but not told apart from the runner-up(s)
NO_SPEEDUP = "no significant speedup"
NOT_TIMED = "not timed"
NO_SPEEDUP_TEXT = "no significant speedup at this shape (machine busy or differences too small)"


@dataclass
class SpeedVerdict:
    """What the timings say about speed at the reference shape. ``recipe``: the variant
    with the highest median speedup (the leader; None when nothing was timed);
    ``tied``: the variants not significantly slower than it; ``judged``: False when the
    variants were ranked without any fidelity or accuracy bar."""

    verdict: str
    recipe: str | None = None
    speedup: float | None = None
    speedup_ci: tuple[float, float] | None = None
    tied: list[str] = field(default_factory=list)
    judged: bool = True


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def beats_fp32(point: Any) -> bool:
    """Whether a latency point's paired speedup vs fp32 is significantly above 1."""
    sp = getattr(point, "speedup", None)
    if sp is None or not _finite(sp.ci_low) or (sp.n or 0) < MIN_SAMPLES:
        return False
    return sp.ci_low > 1.0


def faster_than(a: Any, b: Any) -> bool:
    """Whether point ``a`` (one variant) is significantly faster than point ``b`` (another,
    the same shape of the same run); see the module's docstring for the test."""
    from quantbench.measure.latency import median_ci, paired_ratios

    sa, sb = list(a.samples or []), list(b.samples or [])
    if len(sa) == len(sb) >= MIN_SAMPLES:  # timed in the same interleaved rounds
        ratios = sorted(paired_ratios(sb, sa))
        if len(ratios) >= MIN_SAMPLES:
            lo, _ = median_ci(ratios)
            return lo > 1.0
    if min(len(sa), len(sb)) >= MIN_SAMPLES:
        from quantbench.measure.significance import compare_samples

        sig = compare_samples(sb, sa)  # old = b, new = a: a faster when the change is < 0
        return sig.significant and sig.change < 0
    spa, spb = getattr(a, "speedup", None), getattr(b, "speedup", None)
    if spa is None or spb is None or not (_finite(spa.ci_low) and _finite(spb.ci_high)):
        return False
    return spa.ci_low > spb.ci_high


def decide(timed: list[tuple[str, float, Any]], judged: bool = True) -> SpeedVerdict:
    """The verdict over ``timed``: (recipe, median speedup, latency point) of every variant
    in the running, fp32 among them (speedup 1.0) or not."""
    if not timed:
        return SpeedVerdict(NOT_TIMED, judged=judged)
    variants = sorted((t for t in timed if t[0] != "fp32"), key=lambda t: -t[1])
    if not variants:
        return SpeedVerdict(NO_SPEEDUP, judged=judged)
    recipe, speedup, point = variants[0]
    sp = getattr(point, "speedup", None)
    ci = (sp.ci_low, sp.ci_high) if sp is not None and _finite(sp.ci_low) else None
    out = SpeedVerdict(NO_SPEEDUP, recipe, speedup, ci, judged=judged)
    if not beats_fp32(point):
        return out
    out.tied = [r for r, _, p in variants[1:] if not faster_than(point, p)]
    out.verdict = TIED if out.tied else FASTER
    return out


def _num(x: Any) -> str:
    return f"{x:.2f}" if _finite(x) else "?"


def _with_ci(recipe: str, speedup: Any, ci: Any) -> str:
    text = f"{recipe} {_num(speedup)}x"
    if ci and len(ci) == 2:
        text += f" [{_num(ci[0])}, {_num(ci[1])}]"
    return text


def speed_text(speed: dict[str, Any], speedups: dict[str, Any] | None = None) -> str | None:
    """The speed part of a model's summary line (``speed`` in its dict form); ``speedups``
    maps the tied recipes to (speedup, CI) for their numbers. None: nothing was timed."""
    verdict = speed.get("verdict")
    recipe = speed.get("recipe")
    if verdict == FASTER and recipe:
        return "fastest " + _with_ci(recipe, speed.get("speedup"), speed.get("speedup_ci"))
    if verdict == TIED and recipe:
        others = [_with_ci(r, *(speedups or {}).get(r, (None, None))) for r in speed["tied"]]
        lead = _with_ci(recipe, speed.get("speedup"), speed.get("speedup_ci"))
        return f"fastest: tied, {' and '.join([lead, *others])} (not told apart)"
    if verdict == NO_SPEEDUP:
        seen = f"; best seen: {_with_ci(recipe, speed.get('speedup'), speed.get('speedup_ci'))}"
        return NO_SPEEDUP_TEXT + (seen if recipe else "")
    return None
