"""The machine's limits, measured: peak compute per precision and memory bandwidth.

Peak compute is the best rate of a few GEMM shapes, a transformer layer's (128x768x768,
128x768x3072) and large square ones, through every library path the recipes use: torch
matmul (MKL/oneDNN) and ONNX Runtime's MatMul (MLAS) for fp32; torch's quantized Linear
on each quantized engine (x86, fbgemm, oneDNN) and ONNX Runtime's
``MatMulInteger`` for int8; torch matmul in bf16/fp16 where the CPU computes them
natively (``quantbench.measure.peak_theory`` says where). Each case is timed for a
while and its *fastest* call taken, as STREAM does: noise only ever slows a call, so
the best one is the closest to what the machine can do.

Memory bandwidth is a STREAM-like copy (``b = a``: 2 arrays' bytes) and triad
(``a = b + s*c``: 3 arrays' bytes) over float32 arrays four times the last-level cache
(at least 64 MiB each), with torch's threads.

Everything runs at the run's thread count: a roofline is only a ceiling for the threads
it was measured with. :mod:`quantbench.measure.ceiling_cache` keeps the result per
machine so that a run does not measure it again.

Example::

    >>> c = measure_ceilings(threads=1, shapes=((64, 64, 64),), min_time=0.01,
    ...                      array_bytes=1 << 22)
    >>> c.peak("fp32") > 0 and c.bandwidth() > 0
    True
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# (M, K, N): a BERT-base attention projection and FFN layer at 128 tokens, then large
# square GEMMs. The small one's call is short (about a millisecond): on a busy machine
# some of its calls run between two interruptions, where every call of a large one is
# interrupted, so its fastest call is the one closest to the machine's peak there.
SHAPES: tuple[tuple[int, int, int], ...] = ((128, 768, 768), (128, 768, 3072),
                                             (1024, 1024, 1024), (2048, 2048, 2048))  # fmt: skip
MIN_TIME = 0.2  # seconds each (library, shape) case is timed for, at least 3 calls
MIN_ARRAY = 64 << 20  # STREAM arrays: at least this many bytes, and 4x the LLC
MAX_ARRAY = 512 << 20
PRECISIONS = ("fp32", "bf16", "fp16", "int8")
USES = (
    "the measured peaks: what the libraries the recipes call reach on this machine, at its "
    "real clock and the run's threads; the theoretical peak assumes two vector units busy "
    "every cycle at a clock boost and throttling move, so it is shown beside them only"
)

Bench = Callable[[int, int, int], Callable[[], Any]]  # (M, K, N) -> one call to time


@dataclass(frozen=True)
class GemmPath:
    """One library path to time: ``make(M, K, N)`` returns the call."""

    precision: str
    library: str
    make: Bench


@dataclass
class Ceilings:
    """The machine's measured limits at ``threads`` (rates in ops/s, bandwidth in B/s).

    ``peaks``: precision -> {rate, library, shape} (the best GEMM); ``gemms``: every
    case timed (or why a path was skipped); ``theoretical``: precision ->
    ``peak_theory.TheoreticalPeak.to_dict()``; ``bandwidth``: {copy, triad, array_bytes}.
    """

    threads: int
    peaks: dict[str, dict[str, Any]] = field(default_factory=dict)
    gemms: list[dict[str, Any]] = field(default_factory=list)
    bandwidth_: dict[str, Any] = field(default_factory=dict)
    theoretical: dict[str, dict[str, Any]] = field(default_factory=dict)
    uses: str = USES
    measured_at: str | None = None
    load_avg: float | None = None
    seconds: float | None = None
    fingerprint: dict[str, Any] = field(default_factory=dict)
    measurements: int = 1  # how many measurements the peaks are the best of
    # the contention watch over the measurement (``measure.contention.Watch.summary``):
    # other work on the cores makes every GEMM slow, so a contended one is measured again
    contention: dict[str, Any] = field(default_factory=dict)
    cached: bool = False  # read from the cache rather than measured now
    cache_note: str | None = None  # why it could not be cached, when it could not

    def peak(self, precision: str) -> float | None:
        """The measured peak of ``precision`` in ops/s, or None when not measured."""
        rate = (self.peaks.get(precision) or {}).get("rate")
        return float(rate) if _positive(rate) else None

    def bandwidth(self) -> float | None:
        """Memory bandwidth (B/s) the roofline uses: the triad's (reads and writes, as
        a layer does), else the copy's."""
        for key in ("triad", "copy"):
            v = self.bandwidth_.get(key)
            if _positive(v):
                return float(v)
        return None

    def ridge(self, precision: str) -> float | None:
        """Arithmetic intensity (ops/byte) where ``precision``'s peak meets bandwidth."""
        peak, bw = self.peak(precision), self.bandwidth()
        return peak / bw if peak and bw else None

    @property
    def contended(self) -> bool:
        """Measured while other work held the cores (the peaks may be low)."""
        return self.contention.get("verdict") == "contended"

    def busy_reason(self, cores: int | None, load_per_core: float = 0.5) -> str | None:
        """Why these ceilings may be low, or None: measured while other work held the
        cores (the contention watch), or at a load average above ``load_per_core`` per
        core (records from before the watch)."""
        if self.contended:
            share = self.contention.get("wait_share")
            return (f"its threads waited for a core {share:.0%} of the time" if share is not None
                    else "its threads ran less than half of the time")  # fmt: skip
        if self.load_avg is not None and cores and self.load_avg > load_per_core * cores:
            return f"load average {self.load_avg:.1f} on {cores} cores"
        return None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bandwidth"] = d.pop("bandwidth_")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Ceilings:
        """A record as :meth:`to_dict` wrote it; raises on one that is not."""
        if not isinstance(d, dict) or not isinstance(d.get("threads"), int):
            raise ValueError("not a ceilings record")
        d = dict(d)
        d["bandwidth_"] = d.pop("bandwidth", None) or {}
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


def _positive(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` for the block, then restored."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def best_time(call: Callable[[], Any], min_time: float, min_calls: int = 3) -> float:
    """The fastest of at least ``min_calls`` calls made over at least ``min_time`` s (the
    first call, which packs weights and allocates, is not timed)."""
    call()
    best, n, start = math.inf, 0, time.perf_counter()
    while n < min_calls or (time.perf_counter() - start < min_time and n < 200):
        t0 = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t0)
        n += 1
    return best


# ----------------------------------------------------------------------- GEMM paths


def _torch_matmul(dtype_name: str) -> Bench:
    def make(m: int, k: int, n: int) -> Callable[[], Any]:
        import torch

        dtype = getattr(torch, dtype_name)
        a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
        out = torch.empty(m, n, dtype=dtype)
        return lambda: torch.mm(a, b, out=out)

    return make


def _torch_qlinear(engine: str) -> Bench:
    """torch's static quantized Linear on ``engine``: uint8 activations, int8 weights,
    int32 accumulation, a requantized uint8 output."""

    def make(m: int, k: int, n: int) -> Callable[[], Any]:
        import warnings

        import torch

        with _engine(engine), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # quantized tensor creation is deprecated
            w = torch.quantize_per_tensor(torch.randn(n, k), 0.05, 0, torch.qint8)
            packed = torch.ops.quantized.linear_prepack(w, None)
            qx = torch.quantize_per_tensor(torch.randn(m, k), 0.05, 128, torch.quint8)

        def call() -> Any:
            with _engine(engine):
                return torch.ops.quantized.linear(qx, packed, 0.1, 128)

        return call

    return make


@contextlib.contextmanager
def _engine(engine: str) -> Iterator[None]:
    import torch

    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = before


def _ort_matmul(integer: bool, threads: int) -> Bench:
    """ONNX Runtime's ``MatMulInteger`` (uint8 x int8 -> int32) or fp32 ``MatMul``, the
    weight a constant as in an exported model, with the session options quantbench
    runs ONNX files with."""

    def make(m: int, k: int, n: int) -> Callable[[], Any]:
        import numpy as np
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        rng = np.random.default_rng(0)
        if integer:
            w = rng.integers(-127, 128, (k, n), dtype=np.int8)
            a = rng.integers(0, 256, (m, k), dtype=np.uint8)
            op, in_t, out_t = "MatMulInteger", TensorProto.UINT8, TensorProto.INT32
        else:
            w = rng.standard_normal((k, n), dtype=np.float32)
            a = rng.standard_normal((m, k), dtype=np.float32)
            op, in_t, out_t = "MatMul", TensorProto.FLOAT, TensorProto.FLOAT
        graph = helper.make_graph(
            [helper.make_node(op, ["A", "W"], ["Y"])], "gemm",
            [helper.make_tensor_value_info("A", in_t, [m, k])],
            [helper.make_tensor_value_info("Y", out_t, [m, n])],
            [numpy_helper.from_array(w, "W")],
        )  # fmt: skip
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.log_severity_level = 3
        sess = ort.InferenceSession(model.SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])  # fmt: skip
        return lambda: sess.run(None, {"A": a})

    return make


def gemm_paths(threads: int, native: set[str]) -> tuple[list[GemmPath], list[dict[str, Any]]]:
    """The paths to time on this machine, and the ones skipped with the reason.
    ``native``: the precisions the CPU computes natively (bf16/fp16 need it)."""
    from quantbench import cpu, env

    paths = [GemmPath("fp32", "torch matmul (MKL/oneDNN)", _torch_matmul("float32"))]
    skipped = []
    for half in ("bf16", "fp16"):
        if half in native:
            paths.append(GemmPath(half, "torch matmul", _torch_matmul(
                "bfloat16" if half == "bf16" else "float16")))  # fmt: skip
        else:
            skipped.append(
                {
                    "precision": half,
                    "library": "torch matmul",
                    "skipped": f"no native {half} on this CPU (converted in software)",
                }
            )
    want = ("qnnpack",) if cpu.is_arm() else ("x86", "fbgemm", "onednn")
    # Static Linear only: the dynamic one runs the same int8 GEMM plus an fp32 pass to
    # quantize its input, never faster than the GEMM alone.
    for engine in [e for e in want if e in env.quantized_engines()]:
        paths.append(GemmPath("int8", f"torch quantized Linear ({engine})",
                              _torch_qlinear(engine)))  # fmt: skip
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        skipped.append({"precision": "int8", "library": "onnxruntime",
                        "skipped": "onnxruntime is not installed"})  # fmt: skip
    else:
        paths.append(GemmPath("fp32", "onnxruntime MatMul (MLAS)", _ort_matmul(False, threads)))
        paths.append(GemmPath("int8", "onnxruntime MatMulInteger", _ort_matmul(True, threads)))
    return paths, skipped


# ----------------------------------------------------------------------- bandwidth


def last_level_cache() -> int | None:
    """Bytes of the largest CPU cache Linux lists for CPU 0, or None."""
    best = None
    for d in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (d / "size").read_text().strip().upper()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            size = int(digits) * scale
            best = size if best is None else max(best, size)
    return best


def stream(threads: int, array_bytes: int | None = None, trials: int = 5) -> dict[str, Any]:
    """Copy and triad bandwidth (B/s, best of ``trials``) over float32 arrays of
    ``array_bytes`` each (default: 4x the last-level cache, within [64, 512] MiB)."""
    import torch

    llc = last_level_cache()
    if array_bytes is None:
        array_bytes = min(MAX_ARRAY, max(MIN_ARRAY, 4 * (llc or 0)))
    n = array_bytes // 4
    with torch_threads(threads):
        a, b, c = torch.full((n,), 1.0), torch.full((n,), 2.0), torch.full((n,), 0.5)
        copy = best_time(lambda: b.copy_(a), 0.0, trials)
        triad = best_time(lambda: torch.add(b, c, alpha=3.0, out=a), 0.0, trials)
    return {"copy": 2 * n * 4 / copy, "triad": 3 * n * 4 / triad, "array_bytes": n * 4,
            "llc_bytes": llc}  # fmt: skip


# ----------------------------------------------------------------------- the whole


def measure_ceilings(
    threads: int | None = None,
    shapes: tuple[tuple[int, int, int], ...] = SHAPES,
    min_time: float = MIN_TIME,
    array_bytes: int | None = None,
) -> Ceilings:
    """Measure every GEMM path at every shape and the STREAM bandwidth, at ``threads``
    (default: torch's current number). A path that fails is recorded with why."""
    import torch

    from quantbench.errors import first_line
    from quantbench.measure.contention import Watch
    from quantbench.measure.peak_theory import theoretical_peaks

    threads = threads or torch.get_num_threads()
    t0 = time.perf_counter()
    from quantbench import env

    theory = theoretical_peaks(cores=min(threads, env.cores()))
    paths, gemms = gemm_paths(threads, set(theory) | {"fp32", "int8"})
    out = Ceilings(threads=threads, theoretical={p: t.to_dict() for p, t in theory.items()})
    watch = Watch(threads)
    watch.before()
    with torch_threads(threads), torch.inference_mode():
        for path in paths:
            for m, k, n in shapes:
                case: dict[str, Any] = {"precision": path.precision, "library": path.library,
                                        "shape": [m, k, n]}  # fmt: skip
                try:
                    case["rate"] = 2.0 * m * k * n / best_time(path.make(m, k, n), min_time)
                except Exception as e:  # a kernel missing here: said, the others go on
                    case["skipped"] = first_line(e)
                gemms.append(case)
    for case in gemms:
        best = out.peaks.get(case["precision"])
        if _positive(case.get("rate")) and (best is None or case["rate"] > best["rate"]):
            out.peaks[case["precision"]] = {k: case[k] for k in ("rate", "library", "shape")}
    out.gemms = gemms
    out.bandwidth_ = stream(threads, array_bytes)
    watch.after()
    out.contention = watch.summary()
    out.seconds = round(time.perf_counter() - t0, 2)
    out.measured_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    with contextlib.suppress(AttributeError, OSError):
        out.load_avg = round(os.getloadavg()[0], 2)
    return out
