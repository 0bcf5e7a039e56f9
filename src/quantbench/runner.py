"""Run an experiment: each model measured in a worker process of its own.

The parent validates the spec, starts one worker per model, collects its cells as they
finish, and rewrites ``results.json`` / ``results.csv`` after every model, so a crash,
a kill or Ctrl-C loses at most the model in flight. A worker that dies or overruns its
timeout leaves ``error`` / ``timeout`` cells with the reason; the run goes on.

Example::

    >>> from quantbench.spec import build_spec
    >>> from quantbench.runner import run
    >>> result = run(build_spec(overrides={"models": "resnet18", "measure": "size"}))
    >>> result.out_dir / "report.md"                           # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import multiprocessing as mp
import os
import signal
import statistics
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantbench import __version__
from quantbench.best import as_dict
from quantbench.errors import QuantbenchError, UnsupportedError
from quantbench.measure import memory
from quantbench.results import CellResult, LatencyPoint, Speedup, write_csv, write_json
from quantbench.spec import ModelRef, RunSpec, default_out_dir, sweep_points

Emit = Callable[[str, Any], None]


@dataclass
class RunResult:
    out_dir: Path
    run: dict[str, Any]
    results: list[CellResult]
    report: Path | None = None
    interrupted: bool = False


def recipes_for(spec: RunSpec) -> list[str]:
    """fp32 is always measured: every ratio and speedup is taken against it. With
    ``compile``, each eager torch recipe also gets a ``<recipe>+compile`` variant."""
    base = ["fp32"] + [r for r in spec.recipes if r != "fp32"]
    if not spec.compile:
        return base
    from quantbench.recipes import get_recipe

    return base + [f"{r}+compile" for r in base if get_recipe(r).runtime == "torch-eager"]


def _apply(name: str, lm: Any, ctx: Any, arts: dict[str, Any]) -> Any:
    """Apply a recipe, or compile an already-built artifact for ``<recipe>+compile``."""
    from quantbench.recipes import apply_recipe

    base, _, suffix = name.partition("+")
    if suffix != "compile":
        return apply_recipe(name, lm, ctx)
    if base not in arts:
        raise UnsupportedError(f"{base} did not produce an artifact to compile")
    from quantbench.recipes.pt2 import compile_artifact

    return compile_artifact(arts[base], ctx.calib_inputs[0], family=lm.family)


# --------------------------------------------------------------------------- one model


def _err(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def measure_model(spec: RunSpec, ref: ModelRef, emit: Emit) -> list[CellResult]:
    """Load one model, apply every recipe, measure; ``emit`` reports progress and snapshots."""
    import torch

    from quantbench import evaluate
    from quantbench import models as zoo
    from quantbench.measure import fidelity, latency, size
    from quantbench.recipes import QuantContext

    if spec.threads:
        torch.set_num_threads(spec.threads)
    if spec.pin:
        pin_cpus(spec.threads or torch.get_num_threads())
    recipes = recipes_for(spec)
    rss0 = memory.rss_bytes()
    t0 = time.perf_counter()
    lm = zoo.load_model(ref.load_name, ref.weights or spec.weights, spec.seed, ref.options)
    load_s = time.perf_counter() - t0
    rss_loaded = memory.rss_bytes()
    info = zoo.ModelInfo(ref.name, lm.family, lm.max_input_size, lm.description)
    ref_size = spec.ref_seq_len if lm.family == zoo.TEXT else spec.ref_image_size
    emit("progress", f"{ref.name}: quantizing")

    ctx = QuantContext(
        engine=spec.engine or "x86",
        calib_inputs=[
            lm.make_inputs(spec.calib_batch_size, ref_size, seed=1000 + i)
            for i in range(spec.calib_batches)
        ],
        qat_steps=spec.qat_steps,
        qat_lr=spec.qat_lr,
    )
    data = None
    dataset = ref.dataset or spec.dataset
    if dataset or ref.calibration or spec.calibration or spec.train_dataset:
        emit("progress", f"{ref.name}: reading data")
        data = evaluate.prepare(spec, dataset, lm, spec.calib_batch_size, ref.calibration)
        if data.calib_inputs:
            ctx.calib_inputs, ctx.calib_source = data.calib_inputs, data.calib_source
        ctx.train_batches = data.train_batches
    cells: dict[str, CellResult] = {}
    arts: dict[str, Any] = {}
    params = size.count_params(lm.module)
    for r in recipes:
        cell = CellResult(
            model=ref.name, recipe=r, family=lm.family, weights=lm.weights, load_s=load_s
        )
        cells[r] = cell
        before = memory.rss_bytes()
        t = time.perf_counter()
        art = _guarded(cell, lambda r=r: _apply(r, lm, ctx, arts))
        if art is None:
            continue
        cell.quantize_s = time.perf_counter() - t
        # fp32 is the loaded model itself: its memory is what loading added
        after = memory.rss_bytes()
        cell.memory["rss_bytes"] = (
            _delta(rss_loaded, rss0) if r == "fp32" else _delta(after, before)
        )
        arts[r] = art
        _describe(cell, art, params, "size" in spec.measure)
        if data is not None:
            cell.notes += data.notes
    emit("cells", [c.to_dict() for c in cells.values()])
    emit("advance", 1)
    _inject_fault(ref.name)

    with torch.inference_mode():
        if "fidelity" in spec.measure and "fp32" in arts:
            emit("progress", f"{ref.name}: fidelity")
            inputs = lm.make_inputs(spec.fidelity_batch_size, ref_size, seed=7)
            base = _chunked(arts["fp32"].module, inputs, FIDELITY_CHUNK)
            for r, art in list(arts.items()):
                try:
                    before = memory.rss_bytes()
                    memory.reset_peak()
                    out = _chunked(art.module, inputs, FIDELITY_CHUNK)
                    cells[r].memory["inference_peak_bytes"] = _delta(memory.peak_bytes(), before)
                    cells[r].memory["process_peak_bytes"] = memory.peak_bytes()
                    cells[r].fidelity = fidelity.compare(base, out, lm.is_classifier)
                except Exception as e:
                    cells[r].status, cells[r].error = "error", f"forward failed: {_err(e)}"
                    del arts[r]
            emit("cells", [c.to_dict() for c in cells.values()])
            if spec.fallback and (data is None or data.dataset is None):
                m = _Measuring(spec, ref.name, lm, ctx, arts, cells, params, emit)
                _fidelity_fallbacks(m, inputs)
        emit("advance", 1)

        if data is not None and data.dataset is not None and "fp32" in arts:
            _accuracy(_Measuring(spec, ref.name, lm, ctx, arts, cells, params, emit), data)

        if "latency" in spec.measure:
            policy = latency.TimingPolicy(
                warmup=spec.warmup, max_warmup=spec.max_warmup, min_runs=spec.min_runs,
                min_time_s=spec.min_time_s, max_time_s=spec.max_time_s,
            )  # fmt: skip
            for b, s, sweep in sweep_points(spec, ref, info):
                emit("progress", f"{ref.name} b={b} {'px' if lm.family != zoo.TEXT else 'seq'}={s}")
                _time_point(arts, cells, lm.make_inputs(b, s, seed=11), b, s, sweep, policy)
                emit("cells", [c.to_dict() for c in cells.values()])
                emit("advance", 1)

    rss = memory.overall_peak_bytes()
    for c in cells.values():
        c.peak_rss_bytes = rss
        if "latency" in spec.measure and c.status == "ok" and not c.latency:
            c.status = "error"
            c.error = c.notes[-1] if c.notes else "no latency point could be measured"
    return list(cells.values())


@dataclass
class _Measuring:
    """One model's state while it is measured, for the accuracy and fallback steps."""

    spec: RunSpec
    model: str
    lm: Any
    ctx: Any
    arts: dict[str, Any]
    cells: dict[str, CellResult]
    params: int
    emit: Emit


def _accuracy(m: _Measuring, data: Any) -> None:
    """Score every variant on the evaluation data; then, with ``spec.fallback``, give each
    recipe that misses the bar a ``<recipe>+fallback`` variant (sensitive layers float)."""
    from quantbench import evaluate

    spec, model, lm, arts, cells, emit = m.spec, m.model, m.lm, m.arts, m.cells, m.emit

    source = str(data.dataset.spec.path)
    bs = spec.eval_batch_size
    emit("progress", f"{model}: accuracy on {len(data.eval_indices)} examples")
    ref_out, labels = evaluate.outputs(arts["fp32"].module, data, bs)
    fp32 = evaluate.score(lm, ref_out, labels, ref_out, None, spec.max_accuracy_drop, source)
    cells["fp32"].accuracy = fp32

    def scored(module: Any) -> dict[str, Any]:
        out, _ = evaluate.outputs(module, data, bs)
        return evaluate.score(lm, out, labels, ref_out, fp32, spec.max_accuracy_drop, source)

    for r, art in list(arts.items()):
        if r == "fp32":
            continue
        try:
            cells[r].accuracy = scored(art.module)
        except Exception as e:
            cells[r].status, cells[r].error = "error", f"evaluation failed: {_err(e)}"
            del arts[r]
    emit("cells", [c.to_dict() for c in cells.values()])
    if spec.fallback:

        def judge(module: Any, cell: CellResult) -> tuple[bool, float | None]:
            cell.accuracy = scored(module)
            return bool(cell.accuracy["passes"]), cell.accuracy["value"]

        _fallbacks(m, judge)


def _fallbacks(
    m: _Measuring, judge: Callable[[Any, CellResult], tuple[bool, float | None]]
) -> None:
    """Give each recipe that misses the bar a ``<recipe>+fallback`` variant.

    ``judge(module, cell)`` records the module's accuracy (or fidelity) in ``cell`` and
    says whether it meets the bar. Layers are ranked by sensitivity on the calibration
    inputs (no labels needed, and not the examples the bar is checked on), then kept in
    float one at a time until the bar is met or ``spec.fallback_max_layers`` is reached.
    """
    import torch

    from quantbench import sensitivity
    from quantbench.recipes import get_recipe

    spec, model, lm, ctx = m.spec, m.model, m.lm, m.ctx
    arts, cells, params, emit = m.arts, m.cells, m.params, m.emit

    for r in [r for r in list(arts) if "+" not in r and r != "fp32"]:
        if judge_cached(cells[r]) is not False or not get_recipe(r).float_layers:
            continue
        name = f"{r}+fallback"
        emit("progress", f"{model}: {name}: ranking layers")
        cell = CellResult(model=model, recipe=name, family=lm.family, weights=lm.weights)
        cells[name] = cell
        t = time.perf_counter()

        def search(r: str = r, name: str = name) -> tuple[Any, Any]:
            # Quantizing (and qat-int8's training) needs autograd-capable tensors.
            with torch.inference_mode(False):
                score = sensitivity.fidelity_score(arts["fp32"].module, ctx.calib_inputs[:4])
                sens = sensitivity.layer_sensitivity(lm, r, ctx, score, "cosine to fp32")
                ranking = [e.layer for e in sens.layers if e.effect is not None]
                scratch = CellResult(model=model, recipe=name)
                fb = sensitivity.fallback(
                    lm, r, ctx, ranking, lambda m, c=scratch: judge(m, c), spec.fallback_max_layers
                )
            return sens, fb

        found = _guarded(cell, search)
        if found is None:
            continue
        sens, fb = found
        cell.quantize_s = time.perf_counter() - t
        arts[name] = fb.artifact
        _describe(cell, fb.artifact, params, "size" in spec.measure)
        judge(fb.artifact.module, cell)
        cell.details["float_layers"] = fb.float_layers
        cell.details["fallback_steps"] = [[n, v] for n, v in fb.steps]
        cell.details["sensitivity"] = [
            [e.layer, e.kind, e.effect] for e in sens.layers[: max(10, len(fb.float_layers))]
        ]
        met = "met" if fb.met else f"not met after {len(fb.float_layers)} layers (the cap)"
        cell.notes.append(
            f"accuracy-aware fallback from {r}: kept {len(fb.float_layers)} layer(s) in float "
            f"({', '.join(fb.float_layers)}); the bar was {met}"
        )
    emit("cells", [c.to_dict() for c in cells.values()])


def _fidelity_fallbacks(m: _Measuring, inputs: tuple) -> None:
    """Without evaluation data the bar is fidelity to fp32 (``best.keeps_fidelity``)."""
    import torch

    from quantbench.best import keeps_fidelity
    from quantbench.measure import fidelity

    spec, lm, arts, cells = m.spec, m.lm, m.arts, m.cells

    with torch.inference_mode():
        base = _chunked(arts["fp32"].module, inputs, FIDELITY_CHUNK)
    for c in cells.values():
        if c.status == "ok" and c.fidelity is not None and c.recipe != "fp32":
            c.details["meets_bar"] = keeps_fidelity(c, spec.min_cosine, spec.min_top1)[0]

    def judge(module: Any, cell: CellResult) -> tuple[bool, float | None]:
        with torch.inference_mode():
            out = _chunked(module, inputs, FIDELITY_CHUNK)
            cell.fidelity = fidelity.compare(base, out, lm.is_classifier)
        cell.details["meets_bar"] = keeps_fidelity(cell, spec.min_cosine, spec.min_top1)[0]
        return cell.details["meets_bar"], cell.fidelity.cosine

    _fallbacks(m, judge)


def judge_cached(cell: CellResult) -> bool | None:
    """Whether a measured cell meets the bar: its accuracy when scored on data, else None
    (the fidelity path sets ``details['meets_bar']``)."""
    if cell.accuracy is not None and cell.accuracy.get("passes") is not None:
        return bool(cell.accuracy["passes"])
    return cell.details.get("meets_bar")


# Fidelity inputs go through a variant this many at a time: a Longformer at 16 x 512
# tokens in one call held over 20 GiB across its variants (ONNX Runtime keeps its arena).
FIDELITY_CHUNK = 4


def _chunked(module: Any, inputs: tuple, chunk: int) -> Any:
    """``module(*inputs)`` over the batch in slices of ``chunk``, outputs concatenated."""
    import torch

    n = int(inputs[0].shape[0])
    if n <= chunk:
        return module(*inputs)
    return torch.cat([module(*(t[i : i + chunk] for t in inputs)) for i in range(0, n, chunk)])


def pin_cpus(n: int) -> list[int] | None:
    """Pin this process to the first ``n`` CPUs it may use; return them (None if unsupported)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))[:n]
        os.sched_setaffinity(0, cpus)
        return cpus
    except (AttributeError, OSError):
        return None


def _guarded(cell: CellResult, fn: Callable[[], Any]) -> Any:
    """``fn()``, or None with the cell marked unsupported/error: a failure is a row."""
    try:
        return fn()
    except UnsupportedError as e:
        cell.status, cell.error = "unsupported", str(e)
    except Exception as e:
        cell.status, cell.error = "error", _err(e)
    return None


def _delta(a: int | None, b: int | None) -> int | None:
    return max(0, a - b) if a is not None and b is not None else None


def _inject_fault(model: str) -> None:
    """Fault injection for the isolation tests.

    ``QUANTBENCH_FAULT=<model>:<kill|crash|hang|raise>[,...]`` makes that model's worker
    fail after its sizes are measured, as an OOM kill, a segfault-like exit, a hang or a
    Python error would.
    """
    faults = dict(
        f.rsplit(":", 1) for f in os.environ.get("QUANTBENCH_FAULT", "").split(",") if ":" in f
    )
    kind = faults.get(model)
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "crash":
        os._exit(3)
    elif kind == "hang":
        time.sleep(3600)
    elif kind == "raise":
        raise RuntimeError("injected failure")


def _describe(cell: CellResult, art: Any, params: int, with_size: bool) -> None:
    """Fill what was quantized and how big it is: from the artifact where it knows
    (ONNX files, compiled programs), else from its torch module."""
    from quantbench.measure import size

    def pick(own: Any, derive: Callable[[], Any]) -> Any:
        return own if own is not None else derive()

    cell.notes += art.notes
    cell.params = params
    cell.runtime = art.runtime
    cell.compile_s = art.compile_s
    cell.details = dict(art.details)
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


def _time_point(
    arts: dict[str, Any],
    cells: dict[str, CellResult],
    inputs: tuple,
    b: int,
    s: int,
    sweep: str,
    policy: Any,
) -> None:
    from quantbench.measure import latency

    runnable = {}
    flops = None
    for r, art in arts.items():
        try:
            # A first pass outside the timer fails fast on bad shapes; fp32's also counts
            # the work (FLOPs) of one forward pass, the same arithmetic for every variant.
            if r == "fp32":
                flops = _count_flops(art.module, inputs)
            else:
                art.module(*inputs)
        except Exception as e:
            cells[r].notes.append(f"no latency at batch {b}, size {s}: {_err(e)}")
            continue
        mod = art.module
        runnable[r] = lambda mod=mod: mod(*inputs)
    if not runnable:
        return
    samples = latency.time_interleaved(runnable, policy)
    base = samples.get("fp32")
    for r, vals in samples.items():
        st = latency.summarize(vals)
        point = LatencyPoint(
            batch_size=b, input_size=s, sweep=sweep, unit="ms",
            samples=[round(v, 5) for v in vals], **dataclasses.asdict(st),
        )  # fmt: skip
        if flops:
            point.flops = flops
            point.gflops_per_s = flops / (st.median / 1000.0) / 1e9
        if base is not None:
            ratios = sorted(latency.paired_ratios(base, vals))
            lo, hi = latency.median_ci(ratios)
            point.speedup = Speedup(
                median=statistics.median(ratios), ci_low=lo, ci_high=hi, n=len(ratios)
            )
        cells[r].latency.append(point)


def _count_flops(module: Any, inputs: tuple) -> float | None:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        module(*inputs)
    total = counter.get_total_flops()
    return float(total) if total else None


# --------------------------------------------------------------------------- worker process


def quiet_libraries() -> None:
    """Silence deprecation chatter of torch.ao / torchao / transformers on stderr."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # symbolic_shapes logs whole tracebacks at WARNING when sympy cannot simplify a guard
    for name in ("torch.utils._pytree", "torchao", "transformers",
                 "torch.fx.experimental.symbolic_shapes"):  # fmt: skip
        logging.getLogger(name).setLevel(logging.ERROR)


def _exit_with_parent() -> None:
    """A worker whose parent died (killed, SIGTERM) stops too instead of running on."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _worker_entry(spec_dict: dict[str, Any], ref_dict: dict[str, Any], conn: Any) -> None:
    quiet_libraries()
    _exit_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C does
    spec = RunSpec(**{**spec_dict, "models": []})
    ref = ModelRef(**ref_dict)
    # Connection.send writes synchronously, so a snapshot sent before a kill arrives.
    try:
        cells = measure_model(spec, ref, lambda kind, data: conn.send((kind, data)))
        conn.send(("done", [c.to_dict() for c in cells]))
    except QuantbenchError as e:
        conn.send(("failed", str(e)))
    except BaseException as e:
        tb = traceback.format_exc(limit=-3)
        conn.send(("failed", f"{_err(e)}\n{tb}"))
    finally:
        conn.close()


def _error_cells(spec: RunSpec, ref: ModelRef, status: str, reason: str,
                 partial: dict[str, CellResult]) -> list[CellResult]:  # fmt: skip
    out = []
    for r in recipes_for(spec):
        cell = partial.get(r) or CellResult(model=ref.name, recipe=r)
        if cell.status in ("ok",):
            cell.status, cell.error = status, reason
        out.append(cell)
    return out


class _Progress:
    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stderr)

    def text(self, s: str) -> None:
        if self.bar is not None:
            self.bar.set_description_str(s[:60])

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def write(self, s: str) -> None:
        if self.bar is not None:
            self.bar.write(s, file=sys.stderr)
        else:
            print(s, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run_isolated(spec: RunSpec, ref: ModelRef, prog: _Progress) -> list[CellResult]:
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_worker_entry,
        args=(spec.to_dict(), ref.__dict__, send),
        name=f"quantbench-{ref.name}",
    )
    proc.start()
    send.close()  # the child holds the only writer: EOF on our side means it is gone
    start = time.monotonic()
    partial: dict[str, CellResult] = {}
    col = _Collector(prog)
    peak = 0
    try:
        while True:
            peak = max(peak, memory.peak_bytes_of(proc.pid) or 0)
            if not recv.poll(0.2):
                if spec.timeout_s is not None and time.monotonic() - start > spec.timeout_s:
                    proc.kill()
                    proc.join()
                    reason = f"timed out after {spec.timeout_s:g} s"
                    return _error_cells(spec, ref, "timeout", reason, partial)
                continue
            try:
                kind, data = recv.recv()
            except (EOFError, OSError):
                proc.join()
                reason = _death_reason(proc.exitcode, peak)
                return _error_cells(spec, ref, "error", reason, partial)
            if kind in _Collector.KINDS:
                col.handle(kind, data)
                partial = col.partial
            elif kind == "done":
                proc.join()
                return [CellResult.from_dict(d) for d in data]
            elif kind == "failed":
                proc.join()
                if not partial:
                    raise _ModelFailed((data.splitlines() or ["worker failed"])[0])
                return _error_cells(
                    spec, ref, "error", (data.splitlines() or ["worker failed"])[0], partial
                )
    finally:
        recv.close()
        if proc.is_alive():
            proc.kill()
            proc.join()


def _death_reason(exitcode: int | None, peak: int) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = " (out of memory?)" if name == "SIGKILL" else ""
        mem = f", peak RSS seen {peak / 2**20:.0f} MiB" if peak else ""
        return f"worker killed by {name}{why}{mem}"
    return f"worker exited with code {exitcode}"


class _ModelFailed(Exception):
    pass


class _Collector:
    """Handles a worker's progress and snapshot messages, whichever process sent them."""

    KINDS = ("progress", "advance", "cells")

    def __init__(self, prog: _Progress) -> None:
        self.prog = prog
        self.partial: dict[str, CellResult] = {}

    def handle(self, kind: str, data: Any) -> None:
        if kind == "progress":
            self.prog.text(data)
        elif kind == "advance":
            self.prog.advance(data)
        elif kind == "cells":
            self.partial = {d["recipe"]: CellResult.from_dict(d) for d in data}


def _run_inline(spec: RunSpec, ref: ModelRef, prog: _Progress) -> list[CellResult]:
    col = _Collector(prog)
    try:
        return measure_model(spec, ref, col.handle)
    except QuantbenchError as e:
        if not col.partial:
            raise _ModelFailed(str(e)) from None
        return _error_cells(spec, ref, "error", str(e), col.partial)
    except Exception as e:
        if not col.partial:
            raise _ModelFailed(_err(e)) from None
        return _error_cells(spec, ref, "error", _err(e), col.partial)


# --------------------------------------------------------------------------- the run


def _store_cells(store: Any, meta: dict[str, Any], cells: list[CellResult], prog: Any) -> None:
    """Commit each finished cell; a store that fails is reported, the exports go on."""
    try:
        store.write_cells(meta["id"], cells)
    except Exception as e:
        meta.setdefault("store_errors", []).append(_err(e))
        prog.write(f"warning: cells not stored in {store.label}: {_err(e)} (results.json has them)")


def resume(
    run_id: str, store: str | None = None, progress: bool | None = None, retry_errors: bool = False
) -> RunResult:
    """Finish stored run ``run_id``: measure only the cells it lacks (and, with
    ``retry_errors``, those that ended in error or timeout)."""
    from quantbench.spec import spec_from_dict
    from quantbench.store import open_store

    st = open_store(store, create=False)
    try:
        meta = st.run_meta(run_id)
    finally:
        st.close()
    spec = spec_from_dict(meta.get("spec") or {})
    spec.store = store
    return run(spec, progress=progress, resume=run_id, retry_errors=retry_errors)


def prepare_out_dir(out: str | Path | None) -> Path:
    """Create the output directory, or raise one clear error if it cannot be used."""
    path = Path(out) if out else default_out_dir()
    if (path / "results.json").exists():
        raise QuantbenchError(
            f"output directory '{path}' already holds a run; choose another --out"
        )
    try:
        (path / "plots").mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise QuantbenchError(
            f"cannot write to output directory '{path}': {e.strerror or e}"
        ) from None
    return path


def run_metadata(spec: RunSpec) -> dict[str, Any]:
    import torch

    from quantbench import env

    return {
        "id": _dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6],
        "started_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "finished_at": None,
        "status": "running",
        "quantbench_version": __version__,
        "host": {**env.host(), "microbench": _microbench(spec)},
        "versions": env.versions(),
        "engine": spec.engine,
        "threads": spec.threads or torch.get_num_threads(),
        "affinity": _affinity(),
        "pinned": spec.pin,
        "weights": {},
        "spec": spec.to_dict(),
    }


def _microbench(spec: RunSpec) -> dict[str, Any] | None:
    """The machine's int8:fp32 matmul capability, stored with every run (about 0.5 s)."""
    if "latency" not in spec.measure:
        return None
    from quantbench.doctor import microbench

    try:
        return microbench(0.3, spec.threads)
    except Exception:  # a missing engine is reported by the cells themselves
        return None


def _affinity() -> list[int] | None:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None


def _count_steps(spec: RunSpec) -> int:
    from quantbench import models as zoo

    n = 0
    for ref in spec.models:
        info = zoo.model_info(ref.load_name)
        n += 2 + (len(sweep_points(spec, ref, info)) if "latency" in spec.measure else 0)
    return n


def recommendations(spec: RunSpec, results: list[CellResult]) -> dict[str, Any]:
    """Per model: fastest and smallest variants that keep fidelity (see quantbench.best)."""
    from quantbench.best import recommend

    return recommend(
        results,
        ref_sizes={"vision": spec.ref_image_size, "text": spec.ref_seq_len},
        min_cosine=spec.min_cosine,
        min_top1=spec.min_top1,
    )


def run(
    spec: RunSpec,
    progress: bool | None = None,
    resume: str | None = None,
    retry_errors: bool = False,
) -> RunResult:
    """Run ``spec``: measure every model, store each finished cell, write the exports and
    the report; return them. ``resume``: the id of a stored run to complete (its cells
    already stored are skipped and left untouched; with ``retry_errors`` its ``error``
    and ``timeout`` cells are measured again and replaced)."""
    from quantbench.store import open_store

    quiet_libraries()
    store = open_store(spec.store)
    done: set[tuple[str, str]] = set()
    if resume:
        meta = store.run_meta(resume)
        out_dir = Path(meta.get("out_dir") or default_out_dir())
        try:
            (out_dir / "plots").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise QuantbenchError(f"cannot write to '{out_dir}': {e.strerror or e}") from None
        rows = store.cell_rows(resume)
        if retry_errors:
            failed = [
                (r["model"], r["recipe"]) for r in rows if r["status"] in ("error", "timeout")
            ]
            store.delete_cells(resume, failed)
            rows = [r for r in rows if (r["model"], r["recipe"]) not in set(failed)]
        done = {(r["model"], r["recipe"]) for r in rows}
        meta["status"] = "running"
        meta.setdefault("resumed", []).append(
            _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        )
    else:
        out_dir = prepare_out_dir(spec.out)
        meta = run_metadata(spec)
        meta["out_dir"] = str(out_dir)
    meta["store"] = store.label
    try:
        store.begin_run(meta)
    except Exception as e:  # locked, read-only, gone away
        raise QuantbenchError(
            f"cannot write run {meta['id']} to {store.label}: {_err(e)}"
        ) from None
    if progress is None:
        progress = sys.stderr.isatty()
    prog = _Progress(_count_steps(spec), progress)
    results: list[CellResult] = store.cells(meta["id"]) if resume else []
    interrupted = False

    def save() -> None:
        write_json(out_dir / "results.json", meta, results)
        write_csv(out_dir / "results.csv", results)

    save()

    def on_term(signum: int, frame: Any) -> None:  # SIGTERM: stop like Ctrl-C, keep results
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        previous = None
    try:
        for i, ref in enumerate(spec.models, 1):
            missing = [r for r in recipes_for(spec) if (ref.name, r) not in done]
            if not missing:
                prog.write(f"[{i}/{len(spec.models)}] {ref.name}: already stored, skipped")
                continue
            mspec = spec
            if len(missing) < len(recipes_for(spec)):
                bases = list(dict.fromkeys(r.split("+")[0] for r in missing))
                mspec = dataclasses.replace(spec, recipes=bases)
            t0 = time.perf_counter()
            try:
                runner = _run_isolated if spec.isolate else _run_inline
                cells = runner(mspec, ref, prog)
            except Exception as e:  # a failure is this model's cells, not the run's end
                cells = [CellResult(model=ref.name, recipe=r, status="error",
                                    error=str(e) or type(e).__name__)
                         for r in recipes_for(mspec)]  # fmt: skip
            cells = [c for c in cells if (c.model, c.recipe) not in done]
            _store_cells(store, meta, cells, prog)
            results.extend(cells)
            for c in cells:
                if c.weights:
                    meta["weights"][c.model] = c.weights
            save()
            bad = [c for c in cells if c.status not in ("ok", "unsupported")]
            state = f"{len(bad)} cell(s) failed: {bad[0].error}" if bad else "ok"
            prog.write(
                f"[{i}/{len(spec.models)}] {ref.name}: {time.perf_counter() - t0:.0f} s, {state}"
            )
    except KeyboardInterrupt:
        interrupted = True
        n_models = len({c.model for c in results})
        prog.write(
            f"interrupted: {len(results)} cells of {n_models} model(s) are stored in "
            f"{store.label} as run {meta['id']}; finish it with "
            f"'quantbench run --resume {meta['id']}'"
        )
    finally:
        prog.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    meta["finished_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    meta["status"] = "interrupted" if interrupted else "finished"
    meta["recommendations"] = as_dict(recommendations(spec, results))
    save()
    try:
        store.finish_run(meta)
    except Exception as e:  # the exports above still hold everything
        prog.write(f"warning: could not update run {meta['id']} in {store.label}: {_err(e)}")
    store.close()
    from quantbench.report import render_report

    report = render_report(out_dir, meta, results)
    return RunResult(
        out_dir=out_dir, run=meta, results=results, report=report, interrupted=interrupted
    )
