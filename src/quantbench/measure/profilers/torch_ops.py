"""torch's profiler: each operator's self CPU time per forward pass, for every torch
runtime (eager, compiled, torchao)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

from quantbench.measure.profile import OpTimes, classify, enough


@contextlib.contextmanager
def _kineto_quiet() -> Iterator[None]:
    """File descriptor 2 to /dev/null: torch's profiler (kineto) writes its start/stop
    stages and a "no GPU" line to it whatever its log level. Python's own errors are
    raised, not printed, so none is lost."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def profile(module: Any, inputs: tuple, runs: int) -> list[OpTimes]:
    """Each pass under ``torch.profiler`` (CPU), a ``record_function`` around it. An
    operator's self time goes to the outermost operator above it that has a kind (the
    ``aten::copy_`` inside ``aten::linear`` is the matmul's; a compiled region's kernels
    are their own), else to the outermost operator of the pass it ran in."""
    from torch.profiler import ProfilerActivity, profile, record_function

    module(*inputs)  # warm: first-call packing and allocation are not the pass's
    walls: list[float] = []
    with _kineto_quiet(), profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        while not enough(len(walls), start, runs):
            with record_function(f"{_PASS}{len(walls)}"):
                t0 = time.perf_counter()
                module(*inputs)
                walls.append(time.perf_counter() - t0)
    passes = [OpTimes({}, w) for w in walls]
    for e in prof.events():
        path = [e]
        while path[-1].cpu_parent is not None:
            path.append(path[-1].cpu_parent)
        top = path[-1]
        if not top.name.startswith(_PASS) or e is top:
            continue  # outside a pass (warm-up, profiler internals), or the pass itself
        ops = path[-2::-1]  # outermost operator first
        key = next((o.name for o in ops if classify(o.name) != "other"), ops[0].name)
        i = int(top.name[len(_PASS) :])
        passes[i].ops[key] = passes[i].ops.get(key, 0.0) + e.self_cpu_time_total / 1e6
    return passes


_PASS = "quantbench_pass_"
