"""Which variant to ship: the fastest and the smallest that keep fidelity, per model.

Reads results only (never measures). A variant *keeps fidelity* when its task metric on
real data stays within the accuracy bar (when a dataset was given), else when its outputs
stay close to fp32 on the same inputs: cosine >= ``min_cosine`` and, for classifiers,
top-1 agreement >= ``min_top1``. Speed is the paired speedup vs fp32 at the reference shape
(``quantbench.shapes.reference_point`` of fp32's cell, the shape the report quotes), and a
variant is *fastest* only when the timings can tell (``quantbench.fastest``: significantly
faster than fp32 and than the runner-up, else tied; otherwise fp32 stays the pick for
speed and ``speed.verdict`` says "no significant speedup").

Example::

    >>> from quantbench.best import recommend
    >>> recs = recommend(results)                      # doctest: +SKIP
    >>> recs["resnet18"].fastest.recipe                # doctest: +SKIP
    'static-int8'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from quantbench import shapes
from quantbench.fastest import FASTER, NO_SPEEDUP, TIED, SpeedVerdict, decide
from quantbench.results import CellResult

DEFAULT_MIN_COSINE = 0.99
DEFAULT_MIN_TOP1 = 0.99


@dataclass
class Candidate:
    recipe: str
    speedup: float | None
    speedup_ci: tuple[float, float] | None
    median_ms: float | None
    size_bytes: int | None
    size_ratio: float | None
    cosine: float | None
    top1: float | None
    keeps_fidelity: bool
    why_not: str = ""
    accuracy: float | None = None  # the task metric on real data, when measured
    accuracy_relative: float | None = None  # ... as a fraction of fp32's
    metric: str | None = None
    # the paired speedup against its own runtime in float (et-int8 vs et-fp32), where
    # that was measured: how much of ``speedup`` quantization bought, not the runtime
    runtime_baseline: str | None = None
    runtime_speedup: float | None = None
    contended: bool = False  # its point was timed while other work held the cores
    wait_share: float | None = None  # ... the share of thread time spent waiting for a core


@dataclass
class Recommendation:
    model: str
    reference: tuple[int, int] | None  # (batch, input size)
    fastest: Candidate | None  # the pick for speed: fp32 when no variant is surely faster
    smallest: Candidate | None
    candidates: list[Candidate] = field(default_factory=list)
    speed: SpeedVerdict | None = None  # how sure the speed ranking is (quantbench.fastest)
    # Lines that qualify this recommendation (a busy machine, contended timings, ...):
    # printed next to it in the terminal and at the top of the report.
    caveats: list[str] = field(default_factory=list)


def bar_text(max_drop: float) -> str:
    """The accuracy bar as a percentage of fp32: 0.01 -> '99%', 0.002 -> '99.8%'.

    >>> bar_text(0.002)
    '99.8%'
    """
    return f"{(1 - max_drop) * 100:.2f}".rstrip("0").rstrip(".") + "%"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def keeps_fidelity(cell: CellResult, min_cosine: float, min_top1: float) -> tuple[bool, str]:
    """Measured on real data (``cell.accuracy``), the accuracy bar decides; otherwise the
    outputs' agreement with fp32 on synthetic inputs does. A cell that failed, whose
    outputs were not finite, or whose numbers are not (NaN read from an old store) never
    keeps fidelity: every test below is written so that NaN fails it."""
    if cell.status != "ok":
        return False, f"{cell.status}: {cell.error or ''}".strip()
    f = cell.fidelity
    if f is not None and f.nonfinite is not None:
        return False, f.note or f"outputs not finite ({f.nonfinite})"
    if cell.recipe == "fp32":
        return True, ""
    a = cell.accuracy
    if a and a.passes is not None:
        if a.passes and _finite(a.value) and _finite(a.relative):
            return True, ""
        rel = f"{a.relative:.1%}" if _finite(a.relative) else "not a number"
        return False, f"{a.metric} {rel} of fp32 < {bar_text(a.max_drop or 0.01)}"
    if f is None or f.cosine is None:
        return False, "fidelity not measured"
    if not (_finite(f.cosine) and f.cosine >= min_cosine):
        return False, f"cosine {f.cosine:.4f} < {min_cosine}"
    top1 = f.top1_agreement
    if top1 is not None and not (_finite(top1) and top1 >= min_top1):
        return False, f"top-1 agreement {top1:.1%} < {min_top1:.0%}"
    return True, ""


def recommend(
    results: list[CellResult],
    ref_sizes: dict[str, int] | None = None,
    min_cosine: float = DEFAULT_MIN_COSINE,
    min_top1: float = DEFAULT_MIN_TOP1,
) -> dict[str, Recommendation]:
    """Per model: fastest and smallest variants that keep fidelity, and why others lost.

    ``ref_sizes`` maps family ("vision"/"text") to the reference input size (default the
    lab's, ``shapes.LAB_REF_SIZES``: 224 px and 128 tokens).
    """
    sizes = {**shapes.LAB_REF_SIZES, **{k: v for k, v in (ref_sizes or {}).items() if v}}
    by_model: dict[str, list[CellResult]] = {}
    for c in results:
        by_model.setdefault(c.model, []).append(c)
    out: dict[str, Recommendation] = {}
    for model, cells in by_model.items():
        base = next((c for c in cells if c.recipe == "fp32" and c.status == "ok"), None)
        ref_pt = shapes.reference_point(base, sizes) if base else None
        shape = (ref_pt.batch_size, ref_pt.input_size) if ref_pt else None
        cands: list[Candidate] = []
        points: dict[str, Any] = {}  # recipe -> its point at the reference shape
        for c in cells:
            if c.status != "ok":
                cands.append(Candidate(c.recipe, None, None, None, None, None, None, None, False,
                                       why_not=f"{c.status}: {c.error or ''}".strip()))  # fmt: skip
                continue
            ok, why = keeps_fidelity(c, min_cosine, min_top1)
            pt = next(
                (p for p in c.latency if shape and (p.batch_size, p.input_size) == shape), None
            )
            sp = pt.speedup if pt and pt.speedup and _finite(pt.speedup.median) else None
            if pt is not None:
                points[c.recipe] = pt
            ratio = (
                c.size_bytes / base.size_bytes
                if base and base.size_bytes and c.size_bytes is not None
                else None
            )
            cands.append(Candidate(
                recipe=c.recipe,
                speedup=sp.median if sp else (1.0 if c.recipe == "fp32" and pt else None),
                speedup_ci=(sp.ci_low, sp.ci_high) if sp else None,
                median_ms=pt.median if pt else None,
                size_bytes=c.size_bytes,
                size_ratio=ratio,
                cosine=c.fidelity.cosine if c.fidelity else None,
                top1=c.fidelity.top1_agreement if c.fidelity else None,
                keeps_fidelity=ok,
                why_not=why,
                accuracy=c.accuracy.value if c.accuracy else None,
                accuracy_relative=c.accuracy.relative if c.accuracy else None,
                metric=c.accuracy.metric if c.accuracy else None,
                **_runtime(c, pt),
                **_contention_of(pt),
            ))  # fmt: skip
        speed, fastest = _speed(cands, points)
        keep = [c for c in cands if c.keeps_fidelity]
        sized = [c for c in keep if c.size_bytes is not None]
        smallest = min(sized, key=lambda c: c.size_bytes) if sized else None
        _why_not(cands, fastest, smallest, speed)
        out[model] = Recommendation(model, shape, fastest, smallest, cands, speed,
                                    caveats=contention_caveats(cands))  # fmt: skip
    return out


def _runtime(cell: CellResult, point: Any) -> dict[str, Any]:
    """The cell's runtime baseline and its paired speedup over it at ``point``."""
    rt = point.runtime_speedup if point is not None else None
    if rt is None or not _finite(rt.median):
        return {}
    return {"runtime_baseline": cell.details.get("runtime_baseline"), "runtime_speedup": rt.median}


def speedup_text(c: dict[str, Any]) -> str:
    """A candidate's speedup (:func:`as_dict` form): ``1.56x``, with its own runtime's
    where measured: ``1.56x; 2.57x vs et-fp32``."""
    text = f"{c['speedup']:.2f}x"
    if c.get("runtime_speedup") is not None and c.get("runtime_baseline"):
        text += f"; {c['runtime_speedup']:.2f}x vs {c['runtime_baseline']}"
    return text


def _contention_of(point: Any) -> dict[str, Any]:
    c = (getattr(point, "contention", None) or {}) if point is not None else {}
    return {"contended": c.get("verdict") == "contended", "wait_share": c.get("wait_share")}


def contention_caveats(cands: list[Candidate]) -> list[str]:
    """The caveat of a model whose speedups at the reference shape were timed while other
    work held the cores (its points' verdict, ``quantbench.measure.contention``)."""
    hit = [c for c in cands if c.contended and c.speedup is not None]
    if not hit:
        return []
    waits = [c.wait_share for c in hit if isinstance(c.wait_share, (int, float))]
    why = f" (its threads waited for a core {max(waits):.0%} of their time)" if waits else ""
    return [
        f"contended: speedups measured while other work held the cores{why}; rerun on a "
        "quiet machine (quantbench doctor lists what else runs)"
    ]


def _speed(cands: list[Candidate], points: dict[str, Any]) -> tuple[SpeedVerdict, Candidate | None]:
    """The speed verdict (over the variants that keep fidelity; over every timed one when
    none was judged at all) and the pick for speed among those that keep fidelity."""

    def timed(pool: list[Candidate]) -> list[tuple[str, float, Any]]:
        return [(c.recipe, c.speedup, points[c.recipe]) for c in pool
                if c.speedup is not None and c.recipe in points]  # fmt: skip

    keep = [c for c in cands if c.keeps_fidelity]
    verdict = decide(timed(keep))
    by_recipe = {c.recipe: c for c in keep}
    if verdict.verdict in (FASTER, TIED):
        fastest = by_recipe[verdict.recipe or ""]
    else:  # nothing surely faster: fp32 (when it was timed) stays the pick
        fastest = next((c for c in keep if c.recipe == "fp32" and c.speedup is not None), None)
    judged = any(c.why_not != "fidelity not measured" for c in cands
                 if c.recipe != "fp32" and c.speedup is not None)  # fmt: skip
    if not judged:
        verdict = decide(timed([c for c in cands if c.speedup is not None]), judged=False)
    return verdict, fastest


def _why_not(
    cands: list[Candidate], fastest: Candidate | None, smallest: Candidate | None,
    speed: SpeedVerdict,
) -> None:  # fmt: skip
    """Why each candidate that keeps fidelity lost (tied, not surely faster, slower, larger)."""
    for c in cands:
        if c.why_not or c is fastest:
            continue
        reasons = []
        if speed.judged and c.recipe in speed.tied:
            reasons.append(f"tied with {speed.recipe} (not told apart)")
        elif speed.judged and c.recipe == speed.recipe and speed.verdict == NO_SPEEDUP:
            ci = f" [{c.speedup_ci[0]:.2f}, {c.speedup_ci[1]:.2f}]" if c.speedup_ci else ""
            reasons.append(f"not significantly faster than fp32 ({c.speedup:.2f}x{ci})")
        elif fastest and c.speedup is not None:
            reasons.append(f"slower ({c.speedup:.2f}x vs {fastest.speedup:.2f}x)")
        if smallest and c is not smallest and c.size_bytes is not None:
            reasons.append(
                f"larger ({c.size_bytes / 2**20:.1f} vs {smallest.size_bytes / 2**20:.1f} MiB)"
            )
        c.why_not = "; ".join(reasons) if c is not smallest else (reasons[0] if reasons else "")


def as_dict(recs: dict[str, Recommendation]) -> dict[str, Any]:
    """JSON-friendly form, for results.json and the CLI."""
    import dataclasses

    return {m: dataclasses.asdict(r) for m, r in recs.items()}


def summary_lines(spec: dict[str, Any], recs: dict[str, Any] | None, cells: list) -> list[str]:
    """Per model, the line a run ends with (``recs`` in :func:`as_dict` form), then its
    caveats. Only a bar that was measured is claimed: without fidelity or accuracy the
    variants are ranked by size and speed alone, and the line says they were not judged.
    Speed is named as the timings allow (``quantbench.fastest``): fastest, tied, or no
    significant speedup."""
    from quantbench.fastest import speed_text

    lines = []
    for model, rec in (recs or {}).items():
        scored = any(c.accuracy for c in cells if c.model == model)
        cands = rec.get("candidates") or []
        if "fidelity" in (spec.get("measure") or []) or scored:
            small = rec.get("smallest")
            bar = "keeping accuracy" if scored else "keeping fidelity"
        else:  # nothing judged: the candidates themselves, fp32 aside
            sized = [c for c in cands if c["recipe"] != "fp32" and c.get("size_ratio") is not None]
            small = min(sized, key=lambda c: c["size_ratio"]) if sized else None
            bar = "fidelity not measured: not judged"
        parts = []
        if small and small["size_ratio"] is not None:
            parts.append(f"smallest {small['recipe']} ({small['size_ratio']:.2f} of fp32)")
        speed = rec.get("speed")
        numbers = {c["recipe"]: (c.get("speedup"), c.get("speedup_ci")) for c in cands}
        fast = speed_text(speed, numbers) if speed else None
        quick = rec.get("fastest") or {}
        if fast and quick.get("runtime_speedup") is not None and quick.get("runtime_baseline"):
            # quantization's share apart from the runtime's: et-int8 vs et-fp32
            fast += f"; {quick['recipe']} {quick['runtime_speedup']:.2f}x vs {quick['runtime_baseline']}"
        if fast:
            parts.insert(0, fast)
        if parts:
            lines.append(f"{model}: {', '.join(parts)} ({bar})")
        lines += [f"  caveat: {c}" for c in rec.get("caveats") or []]
    return lines
