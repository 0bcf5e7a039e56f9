"""Selection helpers shared by the plots and the markdown: which points go where.

Everything here reads result records only (no matplotlib, no torch), so it is cheap to
import and easy to test.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from quantbench.errors import QuantbenchError

# Re-exported (``x as x``): what the plots and sections read, whichever room it lives in.
from quantbench.measure.metrics import SpeedupValue as SpeedupValue
from quantbench.measure.metrics import memory_value as memory_value
from quantbench.measure.metrics import mib as mib
from quantbench.measure.metrics import number
from quantbench.measure.metrics import point_gflops as point_gflops
from quantbench.measure.metrics import point_gflops_per_s as point_gflops_per_s
from quantbench.measure.metrics import point_speedup as point_speedup
from quantbench.measure.metrics import to_ms as to_ms
from quantbench.results import BASELINE as BASELINE
from quantbench.results import CellResult, LatencyPoint
from quantbench.results import find_cell as find_cell
from quantbench.results import model_family as model_family
from quantbench.results import model_order as model_order
from quantbench.results import recipe_order as recipe_order
from quantbench.shapes import reference_input_size
from quantbench.variants import Variant, base_of

if TYPE_CHECKING:
    from quantbench.recipes import Recipe

# ISA flags that give int8 dot products a real edge over fp32 on x86.
INT8_ISA_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def ok_cells(results: Iterable[CellResult]) -> list[CellResult]:
    """Cells that finished and therefore carry data."""
    return [r for r in results if r.status == "ok"]


def sort_cells(results: Iterable[CellResult]) -> list[CellResult]:
    """Cells ordered by model (appearance) then recipe (fixed order)."""
    results = list(results)
    models = {m: i for i, m in enumerate(model_order(results))}
    recipes = {r: i for i, r in enumerate(recipe_order(results))}
    return sorted(results, key=lambda r: (models[r.model], recipes[r.recipe]))


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


def host_microbench(run: dict | None) -> dict | None:
    """``run['host']['microbench']`` when it holds usable numbers, else None."""
    bench = ((run or {}).get("host") or {}).get("microbench")
    if not isinstance(bench, dict):
        return None
    if number(bench.get("fp32_gflops")) is None and number(bench.get("int8_gops")) is None:
        return None
    return bench


def bench_ratio(bench: dict | None) -> float | None:
    """int8:fp32 ratio of the micro-benchmark (recorded, else derived from its rates)."""
    if not bench:
        return None
    ratio = number(bench.get("int8_fp32_ratio"))
    if ratio is None:
        f, i = number(bench.get("fp32_gflops")), number(bench.get("int8_gops"))
        ratio = i / f if f and i is not None else None
    return ratio


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
