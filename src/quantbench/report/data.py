"""Selection helpers shared by the plots and the markdown: which points go where.

Everything here reads result records only (no matplotlib, no torch), so it is cheap to
import and easy to test.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from quantbench.errors import QuantbenchError
from quantbench.results import CellResult, LatencyPoint
from quantbench.shapes import reference_input_size
from quantbench.variants import Variant, base_of

if TYPE_CHECKING:
    from quantbench.recipes import Recipe

BASELINE = "fp32"

# Fixed order for the recipes we know; anything else follows in order of appearance.
KNOWN_RECIPES = ("fp32", "dynamic-int8", "static-int8")

_UNIT_TO_MS = {"ms": 1.0, "s": 1e3, "sec": 1e3, "us": 1e-3, "µs": 1e-3, "μs": 1e-3, "ns": 1e-6}

# ISA flags that give int8 dot products a real edge over fp32 on x86.
INT8_ISA_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def to_ms(value: float, unit: str | None) -> float:
    """Convert a latency value recorded in ``unit`` to milliseconds (unknown units: ms)."""
    return value * _UNIT_TO_MS.get((unit or "ms").strip().lower(), 1.0)


def ok_cells(results: Iterable[CellResult]) -> list[CellResult]:
    """Cells that finished and therefore carry data."""
    return [r for r in results if r.status == "ok"]


def model_order(results: Iterable[CellResult]) -> list[str]:
    """Models in order of first appearance."""
    return list(dict.fromkeys(r.model for r in results))


def recipe_order(results: Iterable[CellResult]) -> list[str]:
    """Recipes: known ones in their fixed order, then the rest in order of appearance."""
    seen = list(dict.fromkeys(r.recipe for r in results))
    known = [r for r in KNOWN_RECIPES if r in seen]
    return known + [r for r in seen if r not in KNOWN_RECIPES]


def sort_cells(results: Iterable[CellResult]) -> list[CellResult]:
    """Cells ordered by model (appearance) then recipe (fixed order)."""
    results = list(results)
    models = {m: i for i, m in enumerate(model_order(results))}
    recipes = {r: i for i, r in enumerate(recipe_order(results))}
    return sorted(results, key=lambda r: (models[r.model], recipes[r.recipe]))


def find_cell(results: Iterable[CellResult], model: str, recipe: str) -> CellResult | None:
    """The first cell of (model, recipe), or None."""
    for r in results:
        if r.model == model and r.recipe == recipe:
            return r
    return None


def model_family(results: Iterable[CellResult], model: str) -> str | None:
    """A model's family, taken from any of its cells that records one."""
    for r in results:
        if r.model == model and r.family:
            return r.family
    return None


def input_sweep_points(cell: CellResult) -> list[LatencyPoint]:
    """Points of the input-size figure, at one batch size (the smallest one swept)."""
    pts = [p for p in cell.latency if p.sweep == "input_size"]
    if not pts:
        return []
    batch = min(p.batch_size for p in pts)
    return _dedupe(sorted((p for p in pts if p.batch_size == batch), key=lambda p: p.input_size))


def batch_sweep_points(cell: CellResult) -> list[LatencyPoint]:
    """Points of the batch-size figure.

    The runner records batch 1 at the reference input size once, in the input-size
    sweep; it is added here so that the batch line starts at 1. The size is the one the
    batch sweep itself used (not the spec's reference size, which it may not share).
    """
    pts = [p for p in cell.latency if p.sweep == "batch_size"]
    if not pts:
        return []
    ref = reference_input_size(cell)
    pts = [p for p in pts if p.input_size == ref]
    have = {p.batch_size for p in pts}
    for p in cell.latency:
        if p.sweep == "input_size" and p.input_size == ref and p.batch_size not in have:
            pts.append(p)
            have.add(p.batch_size)
    return _dedupe(sorted(pts, key=lambda p: p.batch_size))


def _dedupe(points: list[LatencyPoint]) -> list[LatencyPoint]:
    out: list[LatencyPoint] = []
    seen: set[tuple[int, int]] = set()
    for p in points:
        key = (p.batch_size, p.input_size)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


@dataclass
class SpeedupValue:
    """A speedup vs fp32; ``paired`` is False when derived from two medians."""

    median: float
    ci_low: float | None
    ci_high: float | None
    paired: bool


def point_speedup(point: LatencyPoint, baseline: CellResult | None) -> SpeedupValue | None:
    """The paired speedup of ``point``; else fp32 median / point median at the same shape."""
    if point.speedup is not None:
        s = point.speedup
        return SpeedupValue(s.median, s.ci_low, s.ci_high, True)
    if baseline is None or baseline.status != "ok":
        return None
    for b in baseline.latency:
        if b.batch_size == point.batch_size and b.input_size == point.input_size:
            mine = to_ms(point.median, point.unit)
            if mine > 0:
                return SpeedupValue(to_ms(b.median, b.unit) / mine, None, None, False)
    return None


def mib(size_bytes: float) -> float:
    """Bytes to MiB."""
    return size_bytes / 2**20


def has_int8_isa(host: dict | None) -> bool | None:
    """Whether the host lists an int8 dot-product ISA; None when flags are unknown."""
    flags = (host or {}).get("isa_flags")
    if flags is None:
        return None
    flags = {str(f).lower() for f in flags}
    return any(f in flags for f in INT8_ISA_FLAGS)


def is_random_weights(description: str | None) -> bool:
    """True when a weights description says the weights are randomly initialised."""
    return bool(description) and "random" in description.lower()


def weights_by_model(run: dict, results: Iterable[CellResult]) -> dict[str, str]:
    """model -> weights description, from ``run['weights']`` then the cells."""
    results = list(results)
    raw = run.get("weights")
    out: dict[str, str] = {}
    if isinstance(raw, dict):
        out.update({str(k): str(v) for k, v in raw.items() if v is not None})
    elif isinstance(raw, str):
        out.update({m: raw for m in model_order(results)})
    for r in results:
        if r.model not in out and r.weights:
            out[r.model] = r.weights
    return out


# ----------------------------------------------------------------------------- work, memory


def _number(x: object) -> float | None:
    """``x`` as a finite float, else None (bools, strings, NaN and missing values)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if x == x and abs(x) != float("inf") else None


def point_gflops(point: LatencyPoint) -> float | None:
    """GFLOP of one forward pass at the point's shape (counted on fp32), or None."""
    flops = _number(getattr(point, "flops", None))
    return flops / 1e9 if flops else None


def point_gflops_per_s(point: LatencyPoint) -> float | None:
    """Achieved GFLOP/s (fp32-equivalent for int8): recorded, else flops / median time."""
    rate = _number(getattr(point, "gflops_per_s", None))
    if rate is not None:
        return rate
    gflop = point_gflops(point)
    seconds = to_ms(point.median, point.unit) / 1e3
    if gflop is None or not seconds or seconds <= 0:
        return None
    return gflop / seconds


def host_microbench(run: dict | None) -> dict | None:
    """``run['host']['microbench']`` when it holds usable numbers, else None."""
    bench = ((run or {}).get("host") or {}).get("microbench")
    if not isinstance(bench, dict):
        return None
    if _number(bench.get("fp32_gflops")) is None and _number(bench.get("int8_gops")) is None:
        return None
    return bench


def bench_ratio(bench: dict | None) -> float | None:
    """int8:fp32 ratio of the micro-benchmark (recorded, else derived from its rates)."""
    if not bench:
        return None
    ratio = _number(bench.get("int8_fp32_ratio"))
    if ratio is None:
        f, i = _number(bench.get("fp32_gflops")), _number(bench.get("int8_gops"))
        ratio = i / f if f and i is not None else None
    return ratio


def memory_value(cell: CellResult, key: str) -> int | None:
    """One entry of ``cell.memory`` (missing or non-numeric: None)."""
    value = _number((getattr(cell, "memory", None) or {}).get(key))
    return None if value is None else int(value)


def cpu_ranges(cpus: Iterable[int]) -> str:
    """``[0, 1, 2, 3, 8]`` -> ``0–3, 8``."""
    ids = sorted({int(c) for c in cpus})
    parts: list[str] = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[i]) if i == j else f"{ids[i]}–{ids[j]}")
        i = j + 1
    return ", ".join(parts)


def stored_variant(name: str) -> Variant:
    """A stored recipe name as a :class:`Variant`. Lenient, for results from other versions:
    a name with an unknown ``+suffix`` reads as its plain base recipe (``v.name != name``)."""
    try:
        return Variant.parse(name)
    except QuantbenchError:
        return Variant(base_of(name))


def registered_recipe(name: str) -> Recipe | None:
    """The registry's recipe of a variant name's base, or None when it is not registered."""
    try:
        from quantbench.recipes import get_recipe

        return get_recipe(stored_variant(name).base)
    except Exception:  # unknown here (another version, an optional library missing)
        return None
