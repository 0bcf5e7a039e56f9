"""Where a variant's time goes: its operators' time by kind, from its runtime's profiler.

Each runtime has its profiler in :data:`PROFILERS` (``register_profiler``): torch's
(``torch.profiler``: each operator's self CPU time) for every torch runtime, ONNX
Runtime's (``SessionOptions.enable_profiling``: each node's kernel time from the JSON it
writes). A runtime added later (ExecuTorch, OpenVINO) registers its own profiler here: a
function ``(module, inputs, runs) -> list[OpTimes]``, one per forward pass.

Operator names become kinds by :data:`KIND_RULES` (first match wins): matmul/conv,
quantize/dequantize, layout reorders (copies, transposes, casts, layout changes),
normalisation, attention softmax (and fused attention), everything else. What no
operator accounts for (Python and dispatch between operators) is ``unattributed``.

Profiling perturbs timings, so it runs apart from them, after. Of the passes profiled,
the fastest is kept, as the ceilings keep their fastest call: on a busy machine a pass
that another process interrupts charges the wait to whichever operator was running, so
the least disturbed pass shows best where the time goes. It is to be compared with the
fastest timed pass (``LatencyPoint.min``), within :data:`PROFILE_TOLERANCE`.

Example::

    >>> classify("aten::addmm"), classify("DynamicQuantizeLinear"), classify("QLinearAdd")
    ('matmul', 'qdq', 'other')
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS: dict[str, str] = {
    "matmul": "matmul/conv",
    "qdq": "quantize/dequantize",
    "reorder": "layout reorders",
    "norm": "normalisation",
    "softmax": "attention softmax",
    "other": "other",
}
# (kind, pattern on the lower-cased operator name): the first that matches wins.
KIND_RULES: list[tuple[str, re.Pattern[str]]] = [
    (
        "qdq",
        re.compile(
            r"^(dynamic)?(de)?quantizelinear$|quantize_per|dequantize|fake_quant"
            r"|choose_qparams|int_repr"
        ),
    ),  # fmt: skip
    ("softmax", re.compile(r"softmax|attention|scaled_dot_product")),
    ("matmul", re.compile(r"conv|matmul|gemm|(?<!q)linear|addmm|::b?mm$|einsum|_int_mm")),
    ("norm", re.compile(r"norm")),
    (
        "reorder",
        re.compile(
            r"copy|contiguous|clone|transpose|permute|reorder|mkldnn|to_dense"
            r"|::to$|^cast$|::t$"
        ),
    ),  # fmt: skip
]
PROFILE_RUNS = 10  # forward passes profiled per variant (fewer when they are slow)
PROFILE_SECONDS = 3.0  # ... and no more than about this long, at least 3 passes
# The operators of the fastest profiled pass sum to the fastest timed pass within this
# fraction of it (the profiler's own overhead; a busy machine's interruptions).
PROFILE_TOLERANCE = 0.3


def classify(op: str) -> str:
    """The kind (a key of :data:`KINDS`) of an operator's name."""
    name = op.lower()
    for kind, pattern in KIND_RULES:
        if pattern.search(name):
            return kind
    return "other"


@dataclass
class OpTimes:
    """One profiled forward pass: seconds per operator name, and its wall time."""

    ops: dict[str, float]
    wall: float


@dataclass
class Breakdown:
    """A variant's time by kind at one shape (milliseconds of one forward pass)."""

    profiler: str
    batch_size: int
    input_size: int
    kinds: dict[str, float]  # kind -> ms
    wall_ms: float  # the profiled pass's wall time (the profiler's overhead included)
    runs: int  # passes profiled (the fastest is this one)
    top: list[list[Any]] = field(default_factory=list)  # [op, kind, ms], largest first

    @property
    def attributed_ms(self) -> float:
        return sum(self.kinds.values())

    @property
    def unattributed_ms(self) -> float:
        return max(0.0, self.wall_ms - self.attributed_ms)

    def share(self, *kinds: str) -> float:
        """The fraction of the attributed time in ``kinds``."""
        total = self.attributed_ms
        return sum(self.kinds.get(k, 0.0) for k in kinds) / total if total > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Breakdown:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


Profiler = Callable[[Any, tuple, int], list[OpTimes]]
PROFILERS: dict[str, tuple[str, Profiler]] = {}  # runtime -> (profiler's name, profiler)


def register_profiler(runtime: str, name: str, fn: Profiler) -> None:
    """``fn`` profiles artifacts of ``runtime`` (a prefix: "torch" covers "torch-eager",
    "torch-compile", "torchao"...)."""
    PROFILERS[runtime] = (name, fn)


def profiler_for(runtime: str | None) -> tuple[str, Profiler] | None:
    """The profiler of ``runtime``: its own, else the longest registered prefix."""
    runtime = runtime or "torch-eager"
    if runtime in PROFILERS:
        return PROFILERS[runtime]
    match = [r for r in PROFILERS if runtime.startswith(r)]
    return PROFILERS[max(match, key=len)] if match else None


def breakdown(
    runtime: str | None, module: Any, inputs: tuple, runs: int = PROFILE_RUNS
) -> Breakdown | None:
    """Profile ``module`` on ``inputs`` with its runtime's profiler; None when the
    runtime has none. Raises what the profiler raises."""
    found = profiler_for(runtime)
    if found is None:
        return None
    name, fn = found
    passes = fn(module, inputs, runs)
    if not passes:
        return None
    kept = min(passes, key=lambda p: p.wall)
    kinds = dict.fromkeys(KINDS, 0.0)
    for op, s in kept.ops.items():
        kinds[classify(op)] += s * 1e3
    top = sorted(kept.ops.items(), key=lambda kv: -kv[1])[:8]
    first = inputs[0]
    return Breakdown(
        profiler=name, batch_size=int(first.shape[0]), input_size=int(first.shape[-1]),
        kinds={k: round(v, 4) for k, v in kinds.items()}, wall_ms=round(kept.wall * 1e3, 4),
        runs=len(passes), top=[[op, classify(op), round(s * 1e3, 4)] for op, s in top],
    )  # fmt: skip


def _enough(n: int, start: float, runs: int) -> bool:
    return n >= runs or (n >= 3 and time.perf_counter() - start > PROFILE_SECONDS)


# ----------------------------------------------------------------------- torch


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


def torch_profile(module: Any, inputs: tuple, runs: int) -> list[OpTimes]:
    """Each pass under ``torch.profiler`` (CPU), a ``record_function`` around it. An
    operator's self time goes to the outermost operator above it that has a kind (the
    ``aten::copy_`` inside ``aten::linear`` is the matmul's; a compiled region's kernels
    are their own), else to the outermost operator of the pass it ran in."""
    from torch.profiler import ProfilerActivity, profile, record_function

    module(*inputs)  # warm: first-call packing and allocation are not the pass's
    walls: list[float] = []
    with _kineto_quiet(), profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        while not _enough(len(walls), start, runs):
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


# ----------------------------------------------------------------------- ONNX Runtime


def ort_profile(module: Any, inputs: tuple, runs: int) -> list[OpTimes]:
    """Each pass of a fresh session of ``module``'s file (an ``OrtModule``), with the
    same options and ``enable_profiling``: node kernel times from the JSON it writes,
    grouped by the ``model_run`` they fall in."""
    import onnxruntime as ort

    from quantbench.recipes.onnx.runtime import PROVIDER

    tmp = tempfile.mkdtemp(prefix="quantbench-ort-profile-")
    try:
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = module.threads, 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(module.path, so, providers=[PROVIDER])
        names = [i.name for i in sess.get_inputs()]
        feeds = {n: t.detach().cpu().numpy() for n, t in zip(names, inputs, strict=True)}
        sess.run(None, feeds)  # warm, dropped below (the first model_run)
        walls: list[float] = []
        start = time.perf_counter()
        while not _enough(len(walls), start, runs):
            t0 = time.perf_counter()
            sess.run(None, feeds)
            walls.append(time.perf_counter() - t0)
        with open(sess.end_profiling()) as f:
            events = json.load(f)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _ort_passes(events, walls)


def _ort_passes(events: list[dict[str, Any]], walls: list[float]) -> list[OpTimes]:
    model_runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                        if e.get("name") == "model_run")[1:]  # fmt: skip
    passes = [OpTimes({}, w) for w in walls[: len(model_runs)]]
    for e in events:
        name = str(e.get("name", ""))
        if e.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        op = str((e.get("args") or {}).get("op_name") or name)
        for i, (lo, hi) in enumerate(model_runs[: len(passes)]):
            if lo <= e["ts"] <= hi:
                passes[i].ops[op] = passes[i].ops.get(op, 0.0) + e["dur"] / 1e6
                break
    return passes


register_profiler("torch", "torch.profiler", torch_profile)
register_profiler("onnxruntime", "onnxruntime profiling", ort_profile)
