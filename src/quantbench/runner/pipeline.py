"""Measuring one model: stages over one context.

``load -> quantize -> fidelity -> accuracy -> fallback -> latency -> limits``: each stage is a
function of the :class:`ModelRun` that reads what earlier stages left in it and adds its
own. A stage that does not apply (no ``fidelity`` in ``spec.measure``, no evaluation
data, no ``--fallback``) returns at once. The fallback search runs after accuracy
because on evaluation data its bar is the accuracy that stage measured; without data the
bar is fidelity to fp32.

The stages up to ``fallback`` (:data:`BUILD_STAGES`, :func:`build_model`) make the
artifacts; ``quantbench quantize`` runs exactly those and ships one of them, so the file
it writes is the one ``run`` measured for the same settings. With ``spec.save_artifacts``
:func:`measure_model` writes every measured variant's file after the stages
(:func:`quantbench.artifacts.save_variants`).

Between stages, :func:`stage_hooks` are called with the stage's name and the context.
They are a seam for tests (a worker killed mid-run), not a feature: none is installed
unless a test appends to :data:`STAGE_HOOKS` or names hooks in ``$QUANTBENCH_TEST_HOOKS``
(``module:function`` or ``path/to/file.py:function``, comma-separated), which is how a
test reaches into a spawned worker.

Example::

    >>> from quantbench.settings import ModelRef
    >>> from quantbench.runner.checks import build_spec
    >>> spec = build_spec(overrides={"models": "resnet18", "measure": "size"})
    >>> cells = measure_model(spec, ModelRef("resnet18"), print)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import math
import os
import time
from collections.abc import Callable
from typing import Any

from quantbench.device import model_on_device, to_device
from quantbench.errors import QuantbenchError, UnsupportedError, first_line
from quantbench.measure import memory
from quantbench.measure.accuracy import NonFiniteOutputs, check_finite
from quantbench.recipes.support import device_support
from quantbench.results import Accuracy, CellResult
from quantbench.runner import fallback as fb
from quantbench.runner.cells import chunked, delta, describe, guarded, mark_failed, time_point
from quantbench.runner.limits import limits
from quantbench.runner.messages import Advance, Emit, Progress
from quantbench.runner.modelrun import ModelRun
from quantbench.runner.process import pin_cpus
from quantbench.settings import ModelRef, RunSpec
from quantbench.shapes import ref_size_for, sweep_points
from quantbench.variants import BASELINE, Variant

FP32 = Variant(BASELINE)


def variants_for(spec: RunSpec) -> list[Variant]:
    """fp32 is always measured: every ratio and speedup is taken against it. With
    ``compile``, each eager torch recipe also gets a ``<recipe>+compile`` variant."""
    base = [FP32] + [Variant(r) for r in spec.quant.recipes if r != BASELINE]
    if not spec.quant.compile:
        return base
    from quantbench.recipes import get_recipe

    def compilable(v: Variant) -> bool:
        recipe = get_recipe(v.base)
        return recipe.compilable

    return base + [v.with_transform("compile") for v in base if compilable(v)]


def recipes_for(spec: RunSpec) -> list[str]:
    """The names of :func:`variants_for`, as results and the command line spell them."""
    return [v.name for v in variants_for(spec)]


# --------------------------------------------------------------------------- stages


def load(run: ModelRun) -> None:
    """Load the model; build the calibration inputs; read the data, if any."""
    import torch

    from quantbench import evaluate
    from quantbench import models as zoo
    from quantbench.recipes import QuantContext

    spec, ref = run.spec, run.ref
    if spec.timing.threads:
        torch.set_num_threads(spec.timing.threads)
    if spec.timing.pin:
        pin_cpus(spec.timing.threads or torch.get_num_threads())
    run.variants = variants_for(spec)
    run.rss_before_load = memory.rss_bytes()
    t0 = time.perf_counter()
    lm = zoo.load_model(
        ref.load_name, ref.weights or spec.target.weights, spec.target.seed, ref.options
    )
    run.load_s = time.perf_counter() - t0
    run.rss_loaded = memory.rss_bytes()
    lm = model_on_device(lm, spec.target.device)  # module and input maker: cuda runs start there
    run.lm = lm
    run.ref_size = ref_size_for(lm.family, spec)
    if lm.max_input_size is not None:  # calibration / fidelity inputs the model can take
        run.ref_size = min(run.ref_size, lm.max_input_size)
    run.emit(Progress(f"{ref.name}: quantizing"))

    run.qctx = QuantContext(
        engine=spec.target.engine or "x86",
        calib_inputs=[
            lm.make_inputs(spec.quant.calib_batch_size, run.ref_size, seed=1000 + i)
            for i in range(spec.quant.calib_batches)
        ],
        qat_steps=spec.quant.qat_steps,
        qat_lr=spec.quant.qat_lr,
        device=spec.target.device,
    )
    dataset = ref.dataset or spec.data.dataset
    if dataset or ref.calibration or spec.data.calibration or spec.data.train_dataset:
        run.emit(Progress(f"{ref.name}: reading data"))
        data = evaluate.prepare(spec, dataset, lm, spec.quant.calib_batch_size, ref.calibration)
        if data.calib_inputs:
            calib = to_device(data.calib_inputs, spec.target.device)
            run.qctx.calib_inputs, run.qctx.calib_source = calib, data.calib_source
        run.qctx.train_batches = to_device(data.train_batches, spec.target.device)
        run.data = data


def _apply(run: ModelRun, v: Variant, cell: CellResult) -> Any:
    """Apply ``v``'s recipe, or compile its already-built artifact for ``<recipe>+compile``."""
    import torch

    from quantbench.recipes import build

    recipe = run.recipe(v)
    cell.details["recipe_config"] = recipe.config_record()
    cell.details["device"] = run.qctx.device
    if not v.compiled:
        # Seeded per variant: what a recipe draws does not depend on which ran before it,
        # so `quantize` with one recipe builds what `run` built among several.
        torch.manual_seed(run.spec.target.seed)
        return build(recipe, run.lm, run.qctx)  # a CPU-only recipe on cuda: unsupported
    reason = device_support(recipe, run.qctx.device)
    if reason is not None:
        raise UnsupportedError(reason)
    source = v.without_last()
    if source not in run.arts:
        raise UnsupportedError(f"{source} did not produce an artifact to compile")
    from quantbench.recipes.compile import compile_artifact

    return compile_artifact(run.arts[source], run.qctx.calib_inputs[0], family=run.lm.family)


def quantize(run: ModelRun) -> None:
    """Build every variant's artifact; record what was quantized and its size."""
    from quantbench.measure import size

    run.params = size.count_params(run.lm.module)
    for v in run.variants:
        cell = run.new_cell(v, load_s=run.load_s)
        before = memory.rss_bytes()
        t = time.perf_counter()
        art = guarded(cell, lambda v=v, cell=cell: _apply(run, v, cell))
        if art is None:
            continue
        cell.quantize_s = time.perf_counter() - t
        # fp32 is the loaded model itself: its memory is what loading added
        after = memory.rss_bytes()
        cell.memory["rss_bytes"] = (
            delta(run.rss_loaded, run.rss_before_load) if v == FP32 else delta(after, before)
        )
        run.arts[v] = art
        describe(cell, art, run.params, "size" in run.spec.judge.measure)
        if run.data is not None:
            cell.notes += run.data.notes
    run.snapshot()
    run.emit(Advance(1))


def fidelity(run: ModelRun) -> None:
    """Compare each variant's outputs with fp32's on the same inputs; note its memory."""
    from quantbench.measure import fidelity as fid

    spec, lm, arts, cells = run.spec, run.lm, run.arts, run.cells
    if "fidelity" in spec.judge.measure and FP32 in arts:
        run.emit(Progress(f"{run.name}: fidelity"))
        inputs = lm.make_inputs(spec.judge.fidelity_batch_size, run.ref_size, seed=7)
        base = chunked(arts[FP32].module, inputs)
        base_bad = fid.nonfinite_text(base)
        for v, art in list(arts.items()):
            try:
                before = memory.rss_bytes()
                memory.reset_peak()
                memory.reset_gpu_peak(spec.target.device)
                out = chunked(art.module, inputs)
                cells[v].memory["inference_peak_bytes"] = delta(memory.peak_bytes(), before)
                cells[v].memory["process_peak_bytes"] = memory.peak_bytes()
                if spec.target.device == "cuda":
                    cells[v].memory["gpu_peak_bytes"] = memory.gpu_peak_bytes(spec.target.device)
                cells[v].fidelity = fid.compare(base, out, lm.is_classifier)
            except Exception as e:
                mark_failed(cells[v], f"forward failed: {first_line(e)}")
                del arts[v]
                continue
            # NaN/inf outputs are a wrong result, never an ok cell: not timed, not scored
            if v == FP32 and base_bad:
                _wrong(run, v, f"fp32 outputs not finite ({base_bad}, on the fidelity inputs): "
                       "the model itself gives NaN/inf, before any quantization")  # fmt: skip
            elif cells[v].fidelity.nonfinite in ("variant", "both"):
                _wrong(run, v, str(cells[v].fidelity.note))
        run.fidelity_inputs = inputs
        run.snapshot()
    run.emit(Advance(1))


def _wrong(run: ModelRun, v: Variant, error: str) -> None:
    """``v`` computed a wrong result (outputs not finite): its cell is an error that says
    so, and its artifact is dropped (nothing more is measured on it)."""
    cell = run.cells[v]
    cell.status, cell.error = "error", error
    run.arts.pop(v, None)


def accuracy(run: ModelRun) -> None:
    """Score every variant on the evaluation data (fp32's score is the bar's reference)."""
    from quantbench import evaluate

    spec, lm, arts, cells, data = run.spec, run.lm, run.arts, run.cells, run.data
    if not run.has_eval_data or FP32 not in arts:
        return
    if spec.data.eval_fn:
        _score_all(run, _eval_fn_scorer(run))
        return
    source = str(data.dataset.spec.path)
    bs = spec.data.eval_batch_size
    run.emit(Progress(f"{run.name}: accuracy on {len(data.eval_indices)} examples"))
    ref_out, labels = evaluate.outputs(arts[FP32].module, data, bs, spec.target.device)
    try:
        fp32 = evaluate.score(
            lm, ref_out, labels, ref_out, None, spec.judge.max_accuracy_drop, source
        )
    except NonFiniteOutputs as e:  # nothing to score the others against
        _wrong(run, FP32, f"fp32 {e} (on the evaluation data): the model itself gives NaN/inf")
        for v, art in list(arts.items()):  # each is still checked for outputs of its own
            out, _ = evaluate.outputs(art.module, data, bs, spec.target.device)
            try:
                check_finite(out)
            except NonFiniteOutputs as bad:
                _wrong(run, v, f"{bad} (on the evaluation data), and fp32's too")
                continue
            cells[v].notes.append(
                "not scored: fp32's outputs on the evaluation data are not finite"
            )
        run.snapshot()
        return
    cells[FP32].accuracy = fp32

    def scored(module: Any) -> dict[str, Any]:
        out, _ = evaluate.outputs(module, data, bs, spec.target.device)
        return evaluate.score(lm, out, labels, ref_out, fp32, spec.judge.max_accuracy_drop, source)

    _score_all(run, scored)


def _score_all(run: ModelRun, scored: Callable[[Any], Accuracy]) -> None:
    """Every variant but fp32 (already scored) through ``scored``; a failure is its cell's."""
    for v, art in list(run.arts.items()):
        if v == FP32:
            continue
        try:
            run.cells[v].accuracy = scored(art.module)
        except NonFiniteOutputs as e:
            _wrong(run, v, f"{e} (on the evaluation data)")
        except Exception as e:
            mark_failed(run.cells[v], f"evaluation failed: {first_line(e)}")
            del run.arts[v]
    run.score = scored
    run.snapshot()


def _eval_fn_scorer(run: ModelRun) -> Callable[[Any], Accuracy]:
    """The Python API's ``eval_fn(model) -> float`` as the metric: fp32's value is the
    reference, and the bar is the same fraction of it as for any task metric."""
    import torch

    from quantbench import handover as held  # objects handed to the Python API

    fn = held.get(run.spec.data.eval_fn, "eval_fn")
    name, drop = held.label(run.spec.data.eval_fn), run.spec.judge.max_accuracy_drop

    def value(module: Any) -> float:
        with torch.inference_mode(False):  # the user's code decides its own mode
            out = fn(module)
        if isinstance(out, bool) or not isinstance(out, (int, float)) or not math.isfinite(out):
            raise QuantbenchError(f"eval_fn {name} must return a finite number, got {out!r}")
        return float(out)

    base = value(run.arts[FP32].module)

    def scored(module: Any) -> Accuracy:
        v = value(module)
        rel = v / base if base else None
        passes = None if rel is None else bool(rel >= 1 - drop - 1e-12)
        return Accuracy(metric=name, value=v, relative=rel, passes=passes, max_drop=drop,
                        dataset=f"eval_fn {name}")  # fmt: skip

    run.cells[FP32].accuracy = Accuracy(metric=name, value=base, relative=1.0 if base else None,
                                        passes=True if base else None, max_drop=drop,
                                        dataset=f"eval_fn {name}")  # fmt: skip
    return scored


def fallback(run: ModelRun) -> None:
    """With ``spec.fallback``: a ``<recipe>+fallback`` variant for each recipe that misses
    the bar, accuracy on the evaluation data, else fidelity to fp32."""
    if not run.spec.quant.fallback:
        return
    if run.has_eval_data:
        if run.score is not None:
            fb.fallbacks(run, fb.accuracy_judge(run.score))
    elif run.fidelity_inputs is not None and FP32 in run.arts:
        fb.fidelity_fallbacks(run, run.fidelity_inputs)


def latency(run: ModelRun) -> None:
    """Time the variants at every point of the sweeps, interleaved at each point."""
    from quantbench import models as zoo
    from quantbench.measure import latency as lat
    from quantbench.models.onnxfile import allowed_points

    spec, lm = run.spec, run.lm
    if "latency" not in spec.judge.measure:
        return
    policy = lat.TimingPolicy(
        warmup=spec.timing.warmup, max_warmup=spec.timing.max_warmup, min_runs=spec.timing.min_runs,
        min_time_s=spec.timing.min_time_s, max_time_s=spec.timing.max_time_s,
    )  # fmt: skip
    info = zoo.ModelInfo(run.name, lm.family, lm.max_input_size, lm.description)
    timer = lat.timer_for(spec.target.device)  # cuda: CUDA events after a synchronize
    points, said = allowed_points(
        run.ref.load_name, run.ref.options, sweep_points(spec, run.ref, info)
    )
    if said and FP32 in run.cells:  # said once, on the baseline
        run.cells[FP32].notes.append(said)
    for b, s, sweep in points:
        run.emit(Progress(f"{run.name} b={b} {'px' if lm.family != zoo.TEXT else 'seq'}={s}"))
        inputs = lm.make_inputs(b, s, seed=11)  # on the device already
        time_point(run.arts, run.cells, inputs, b, s, sweep, policy, timer)
        run.snapshot()
        run.emit(Advance(1))


Stage = tuple[str, Callable[[ModelRun], None], bool]

# (name, stage, runs under torch.inference_mode). The first five build the artifacts
# (what `quantize` runs too); latency times them; limits counts their work for the
# roofline and profiles them, apart from the timing it would perturb.
BUILD_STAGES: tuple[Stage, ...] = (
    ("load", load, False),
    ("quantize", quantize, False),
    ("fidelity", fidelity, True),
    ("accuracy", accuracy, True),
    ("fallback", fallback, True),
)
TIME_STAGES: tuple[Stage, ...] = (("latency", latency, True), ("limits", limits, True))
STAGES: tuple[Stage, ...] = (*BUILD_STAGES, *TIME_STAGES)


def _finish(run: ModelRun) -> list[CellResult]:
    """The peak memory of the process and, on timed cells, what idle threads did while
    they were timed; a cell with no latency point at all is an error."""
    from quantbench import waitpolicy

    rss = memory.overall_peak_bytes()
    waiting = waitpolicy.effective()  # read back in the process that timed them
    for c in run.cells.values():
        c.peak_rss_bytes = rss
        if c.latency:
            c.details["waiting"] = waiting
        if "latency" in run.spec.judge.measure and c.status == "ok" and not c.latency:
            c.status = "error"
            c.error = c.notes[-1] if c.notes else "no latency point could be measured"
    return list(run.cells.values())


def _run_stages(run: ModelRun, stages: tuple[Stage, ...]) -> None:
    import torch

    hooks = stage_hooks()
    for name, stage, inference in stages:
        with torch.inference_mode() if inference else contextlib.nullcontext():
            stage(run)
        for hook in hooks:
            hook(name, run)


def build_model(spec: RunSpec, ref: ModelRef, emit: Emit) -> ModelRun:
    """Load -> calibration inputs -> quantize (-> fidelity / accuracy as the bar needs ->
    fallback search): every variant's artifact, untimed. ``quantbench quantize`` ships one
    of them; :func:`measure_model` builds the same way, then times them."""
    run = ModelRun(spec, ref, emit)
    _run_stages(run, BUILD_STAGES)
    return run


def measure_model(spec: RunSpec, ref: ModelRef, emit: Emit) -> list[CellResult]:
    """Load one model, apply every recipe, measure; ``emit`` reports progress and snapshots.
    With ``spec.save_artifacts`` each measured variant's file is written afterwards."""
    run = build_model(spec, ref, emit)
    _run_stages(run, TIME_STAGES)
    if spec.output.save_artifacts:
        from quantbench.artifacts import save_variants

        emit(Progress(f"{ref.name}: saving artifacts"))
        save_variants(run)
    return _finish(run)


# --------------------------------------------------------------------------- test hooks

StageHook = Callable[[str, ModelRun], None]

#: Called after each stage with its name and the context. Empty in production.
STAGE_HOOKS: list[StageHook] = []
HOOKS_ENV = "QUANTBENCH_TEST_HOOKS"


def stage_hooks() -> list[StageHook]:
    """:data:`STAGE_HOOKS` plus those named in ``$QUANTBENCH_TEST_HOOKS`` (none when unset)."""
    return [*STAGE_HOOKS, *_named_hooks(os.environ.get(HOOKS_ENV, ""))]


@functools.cache
def _named_hooks(value: str) -> tuple[StageHook, ...]:
    hooks = []
    for item in filter(None, (s.strip() for s in value.split(","))):
        where, _, attr = item.rpartition(":")
        if where.endswith(".py"):
            name = f"_quantbench_hooks_{abs(hash(where))}"
            loader = importlib.util.spec_from_file_location(name, where)
            if loader is None or loader.loader is None:
                raise ImportError(f"{HOOKS_ENV}: cannot load {where}")
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
        hooks.append(getattr(module, attr))
    return tuple(hooks)
