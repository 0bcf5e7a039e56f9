"""What a cell records: from an artifact (what was quantized, sizes), from timing it
(latency points), and from a failure (its status, one-line error and traceback)."""

from __future__ import annotations

import os
import statistics
import sys
import traceback
from collections.abc import Callable
from typing import Any

from quantbench.errors import UnsupportedError, first_line
from quantbench.measure.contention import Watch
from quantbench.recipes import runtime_baseline
from quantbench.redact import scrub
from quantbench.results import CellResult, LatencyPoint, Speedup
from quantbench.variants import BASELINE, Variant

# Fidelity inputs go through a variant this many at a time: a Longformer at 16 x 512
# tokens in one call held over 20 GiB across its variants (ONNX Runtime keeps its arena).
FIDELITY_CHUNK = 4

DEBUG_ENV = "QUANTBENCH_DEBUG"


def current_traceback() -> str:
    """The traceback of the exception being handled; with ``$QUANTBENCH_DEBUG`` set it is
    also printed to stderr (a worker's stderr is the terminal's)."""
    tb = scrub(traceback.format_exc())
    if os.environ.get(DEBUG_ENV):
        print(tb, file=sys.stderr, end="", flush=True)
    return tb


def mark_failed(cell: CellResult, error: str, status: str = "error") -> None:
    """Record the exception being handled in ``cell``: ``error`` is its one line, the
    whole traceback goes to ``details['traceback']``."""
    cell.status, cell.error = status, error
    cell.details["traceback"] = current_traceback()


def guarded(cell: CellResult, fn: Callable[[], Any]) -> Any:
    """``fn()``, or None with the cell marked unsupported/error: a failure is a row."""
    try:
        return fn()
    except UnsupportedError as e:
        cell.status, cell.error = "unsupported", str(e)
    except Exception as e:
        from quantbench.files import disk_fault  # a full disk is named as one, with its file

        fault = disk_fault(e, e.filename) if getattr(e, "filename", None) else None
        mark_failed(cell, str(fault) if fault else first_line(e))
    return None


def delta(a: int | None, b: int | None) -> int | None:
    """``a - b`` in bytes, never negative; None when either is unknown."""
    return max(0, a - b) if a is not None and b is not None else None


def chunked(module: Any, inputs: tuple, chunk: int = FIDELITY_CHUNK) -> Any:
    """``module(*inputs)`` over the batch in slices of ``chunk``, outputs concatenated."""
    import torch

    n = int(inputs[0].shape[0])
    if n <= chunk:
        return module(*inputs)
    return torch.cat([module(*(t[i : i + chunk] for t in inputs)) for i in range(0, n, chunk)])


def describe(cell: CellResult, art: Any, params: int, with_size: bool) -> None:
    """Fill what was quantized and how big it is: from the artifact where it knows
    (ONNX files, compiled programs), else from its torch module."""
    from quantbench.measure import size

    def pick(own: Any, derive: Callable[[], Any]) -> Any:
        return own if own is not None else derive()

    cell.notes += art.notes
    cell.params = params
    cell.runtime = art.runtime
    cell.compile_s = art.compile_s
    cell.details.update(art.details)  # after what the runner put there (recipe_config)
    cell.quantized_modules = pick(art.quantized_modules, lambda: size.quantized_modules(art.module))
    cell.float_modules = pick(art.float_modules, lambda: size.float_modules(art.module))
    if art.quantized_modules is None:
        cell.notes += _parts_note(size.quantized_parts(art.module))
        boundaries = size.qdq_boundaries(art.module)
        if boundaries is not None:
            cell.details.setdefault("qdq_boundaries", boundaries)
    if with_size:
        cell.size_bytes = pick(art.size_bytes, lambda: size.state_dict_bytes(art.module))
        cell.param_bytes_by_dtype = pick(
            art.param_bytes_by_dtype, lambda: size.param_bytes_by_dtype(art.module)
        )
        cell.int8_param_fraction = pick(
            art.int8_param_fraction, lambda: size.int8_fraction(art.module)
        )


def _parts_note(parts: dict[str, int]) -> list[str]:
    if not parts:
        return []
    return ["quantized: " + ", ".join(f"{n} in {p}" for p, n in parts.items())]


def time_point(
    arts: dict[Variant, Any],
    cells: dict[Variant, CellResult],
    inputs: tuple,
    b: int,
    s: int,
    sweep: str,
    policy: Any,
    timer: Any = None,
) -> None:
    """Time every artifact at one (batch, size) point, interleaved, and add the point to
    its cell; a variant that cannot run the shape gets a note instead, and one whose
    outputs at this shape are NaN/inf becomes an error (it is dropped from ``arts``: a
    wrong result is not timed further). ``timer``: how one call is timed
    (``measure.latency.timer_for``; None: the host clock)."""
    from quantbench.measure import latency
    from quantbench.measure.fidelity import nonfinite_text

    runnable = {}
    by_name = {v.name: v for v in arts}
    flops = None
    for v, art in list(arts.items()):
        try:
            # A first pass outside the timer fails fast on bad shapes; fp32's also counts
            # the work (FLOPs) of one forward pass, the same arithmetic for every variant.
            if v.is_baseline:
                flops, out = _count_flops(art.module, inputs)
            else:
                out = art.module(*inputs)
        except Exception as e:
            cells[v].notes.append(f"no latency at batch {b}, size {s}: {first_line(e)}")
            continue
        bad = nonfinite_text(out)
        if bad:
            cells[v].status = "error"
            cells[v].error = f"outputs not finite at batch {b}, size {s}: {bad}"
            del arts[v]
            continue
        mod = art.module
        runnable[v.name] = lambda mod=mod: mod(*inputs)
    if not runnable:
        return
    # The host clock's passes are watched for competing work (on a GPU, CPU time says
    # nothing of the kernels'); threads: the runtimes' (ORT sessions follow torch's).
    watch = None if timer is not None else Watch(_threads())
    samples = latency.time_interleaved(runnable, policy, timer=timer, watch=watch)
    contention = watch.summary() if watch is not None else None
    base = samples.get(BASELINE)
    for r, vals in samples.items():
        own = runtime_baseline(r)
        st = latency.summarize(vals)
        point = LatencyPoint(
            batch_size=b, input_size=s, sweep=sweep, unit="ms", stats=st,
            samples=[round(v, 5) for v in vals], contention=contention,
        )  # fmt: skip
        if flops:
            point.flops = flops
            point.gflops_per_s = flops / (st.median / 1000.0) / 1e9
        if base is not None:
            point.speedup = _paired(base, vals)
        if own is not None:
            cells[by_name[r]].details["runtime_baseline"] = own
            if own in samples:
                point.runtime_speedup = _paired(samples[own], vals)
        cells[by_name[r]].latency.append(point)


def _paired(base: list[float], vals: list[float]) -> Speedup:
    """The paired speedup of ``vals`` over ``base`` (samples of the same rounds)."""
    from quantbench.measure import latency

    ratios = sorted(latency.paired_ratios(base, vals))
    lo, hi = latency.median_ci(ratios)
    return Speedup(median=statistics.median(ratios), ci_low=lo, ci_high=hi, n=len(ratios))


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _count_flops(module: Any, inputs: tuple) -> tuple[float | None, Any]:
    """(FLOPs of one forward pass or None, its outputs)."""
    from quantbench.measure.roofline import flop_counter

    with flop_counter() as counter:
        out = module(*inputs)
    total = counter.get_total_flops()
    return (float(total) if total else None), out
