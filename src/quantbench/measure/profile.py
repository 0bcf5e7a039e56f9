"""Where a variant's time goes: its operators' time by kind, from its runtime's profiler.

Each runtime has its profiler in :data:`PROFILERS`, one entry each, implemented by a
module of :mod:`quantbench.measure.profilers` (imported when first used): torch's
(``torch.profiler``: each operator's self CPU time) for every torch runtime, ONNX
Runtime's (``SessionOptions.enable_profiling``: each node's kernel time from the JSON it
writes). A runtime added later (ExecuTorch, OpenVINO) is one entry here plus its module,
whose ``profile(module, inputs, runs) -> list[OpTimes]`` returns one per forward pass.

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

import importlib
import re
import time
from collections.abc import Callable
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
# (kind, pattern on the lower-cased operator name): the first that matches wins. Names
# as torch, ONNX Runtime, OpenVINO (FakeQuantize, FullyConnected, MVN, Reorder) and
# XNNPACK under ExecuTorch ("Fully Connected (NC, QD8, F32, QC8W)", "Convert (NC, F32,
# QD8)": a dynamic quantize) give them.
KIND_RULES: list[tuple[str, re.Pattern[str]]] = [
    (
        "qdq",
        re.compile(
            r"^(dynamic)?(de)?quantizelinear$|quantize_per|dequantize|fake_?quant"
            r"|choose_qparams|int_repr|^convert \(nc, (f32, )?q"
        ),
    ),  # fmt: skip
    ("softmax", re.compile(r"softmax|attention|scaled_dot_product")),
    (
        "matmul",
        re.compile(
            r"conv(?!ert)|matmul|gemm|(?<!q)linear|addmm|::b?mm$|einsum"
            r"|_int_mm|fully ?connected|matrix multiply"
        ),
    ),  # fmt: skip
    ("norm", re.compile(r"norm|^mvn$|^rms")),
    (
        "reorder",
        re.compile(
            r"copy|contiguous|clone|transpose|permute|reorder|mkldnn|to_dense"
            r"|::to$|^cast$|::t$|^convert"
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


@dataclass(frozen=True)
class ProfilerEntry:
    """A runtime's profiler: ``name`` (how the report names it) and the module whose
    ``profile(module, inputs, runs)`` it is (or the function itself)."""

    name: str
    module: str | Profiler

    def load(self) -> Profiler:
        if callable(self.module):
            return self.module
        return importlib.import_module(self.module).profile  # type: ignore[no-any-return]


# Artifact runtime (a prefix: "torch" covers "torch-eager", "torch-compile", "torchao")
# -> its profiler. ExecuTorch and OpenVINO add theirs here (see the package's docstring).
PROFILERS: dict[str, ProfilerEntry] = {
    "torch": ProfilerEntry("torch.profiler", "quantbench.measure.profilers.torch_ops"),
    "onnxruntime": ProfilerEntry(
        "onnxruntime profiling", "quantbench.measure.profilers.onnxruntime_nodes"
    ),
}


def register_profiler(runtime: str, name: str, fn: str | Profiler) -> None:
    """Add (or replace) ``runtime``'s profiler at run time: a module name or a function."""
    PROFILERS[runtime] = ProfilerEntry(name, fn)


def profiler_for(runtime: str | None) -> tuple[str, Profiler] | None:
    """The profiler of ``runtime`` (its name and function): its own, else the longest
    registered prefix; None when it has none."""
    runtime = runtime or "torch-eager"
    match = [r for r in PROFILERS if runtime.startswith(r)]
    if not match:
        return None
    entry = PROFILERS[max(match, key=len)]
    return entry.name, entry.load()


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


def enough(n: int, start: float, runs: int) -> bool:
    """Whether ``n`` passes begun at ``start`` are enough of the ``runs`` wanted: all of
    them, or at least 3 once :data:`PROFILE_SECONDS` have gone by."""
    return n >= runs or (n >= 3 and time.perf_counter() - start > PROFILE_SECONDS)
