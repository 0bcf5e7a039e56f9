"""Accuracy-aware fallback: a recipe that misses the bar keeps its most sensitive layers
in float, one at a time in ranked order, until the bar is met (or a cap is reached).

The bar is the accuracy on the evaluation data when there is some, else fidelity to
fp32's outputs (``best.keeps_fidelity``). Layers are ranked with
:func:`quantbench.sensitivity.layer_sensitivity` on the calibration inputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from quantbench.errors import UnsupportedError
from quantbench.measure.accuracy import NonFiniteOutputs
from quantbench.results import CellResult
from quantbench.runner.cells import chunked, describe, guarded
from quantbench.runner.messages import Progress, Snapshot
from quantbench.variants import BASELINE, Variant

if TYPE_CHECKING:
    from quantbench.runner.modelrun import ModelRun

# judge(module, cell): record the module's accuracy (or fidelity) in ``cell``; say whether
# it meets the bar, and the value the bar is checked on.
Judge = Callable[[Any, CellResult], tuple[bool, float | None]]

FP32 = Variant(BASELINE)


@dataclass
class Fallback:
    """What the search found: the artifact, the layers it kept in float, each step."""

    artifact: Any
    float_layers: list[str]
    steps: list[tuple[str, float | None]]  # (layer added, score after)
    met: bool


def fallback(
    lm: Any,
    recipe: str,
    ctx: Any,
    ranking: list[str],
    passes: Callable[[Any], tuple[bool, float | None]],
    max_layers: int,
    options: dict[str, Any] | None = None,
) -> Fallback:
    """Add layers from ``ranking`` to float one at a time until ``passes(module)``."""
    from quantbench.sensitivity import quantize_except

    kept: list[str] = []
    steps: list[tuple[str, float | None]] = []
    art = None
    ok = False
    for name in ranking[:max_layers]:
        kept.append(name)
        art = quantize_except(lm, recipe, ctx, set(kept), options)
        ok, value = passes(art.module)
        steps.append((name, value))
        if ok:
            break
    if art is None:
        raise UnsupportedError(f"{recipe}: no layer to leave in float")
    return Fallback(art, kept, steps, ok)


def judge_cached(cell: CellResult) -> bool | None:
    """Whether a measured cell meets the bar: its accuracy when scored on data, else None
    (the fidelity path sets ``details['meets_bar']``)."""
    if cell.accuracy is not None and cell.accuracy.passes is not None:
        return bool(cell.accuracy.passes)
    return cell.details.get("meets_bar")


def accuracy_judge(scored: Callable[[Any], dict[str, Any]]) -> Judge:
    """The bar on evaluation data: ``scored(module)`` is the module's accuracy record."""

    def judge(module: Any, cell: CellResult) -> tuple[bool, float | None]:
        cell.accuracy = scored(module)
        return bool(cell.accuracy.passes), cell.accuracy.value

    return judge


def fidelity_fallbacks(run: ModelRun, inputs: tuple) -> None:
    """Without evaluation data the bar is fidelity to fp32 (``best.keeps_fidelity``)."""
    import torch

    from quantbench.best import keeps_fidelity
    from quantbench.measure import fidelity

    spec, lm, arts, cells = run.spec, run.lm, run.arts, run.cells
    bars = spec.judge.min_cosine, spec.judge.min_top1

    with torch.inference_mode():
        base = chunked(arts[FP32].module, inputs)
    for c in cells.values():
        if c.status == "ok" and c.fidelity is not None and c.recipe != BASELINE:
            c.details["meets_bar"] = keeps_fidelity(c, *bars)[0]

    def judge(module: Any, cell: CellResult) -> tuple[bool, float | None]:
        with torch.inference_mode():
            out = chunked(module, inputs)
            cell.fidelity = fidelity.compare(base, out, lm.is_classifier)
        cell.details["meets_bar"] = keeps_fidelity(cell, *bars)[0]
        return cell.details["meets_bar"], cell.fidelity.cosine

    fallbacks(run, judge)


def fallbacks(run: ModelRun, judge: Judge) -> None:
    """Give each recipe that misses the bar a ``<recipe>+fallback`` variant.

    ``judge(module, cell)`` records the module's accuracy (or fidelity) in ``cell`` and
    says whether it meets the bar. Layers are ranked by sensitivity on the calibration
    inputs (no labels needed, and not the examples the bar is checked on), then kept in
    float one at a time until the bar is met or ``spec.fallback_max_layers`` is reached.
    """
    import torch

    from quantbench import sensitivity
    from quantbench.recipes import get_recipe

    spec, model, lm, ctx = run.spec, run.name, run.lm, run.qctx
    arts, cells, params = run.arts, run.cells, run.params

    for v in [v for v in list(arts) if v.is_base and v != FP32]:
        if judge_cached(cells[v]) is not False or not get_recipe(v.base).float_layers:
            continue
        fv = v.with_transform("fallback")
        run.emit(Progress(f"{model}: {fv.name}: ranking layers"))
        cell = run.new_cell(fv)
        cell.details["recipe_config"] = run.recipe(v).config_record()
        options = spec.quant.recipe_options.get(v.base)
        t = time.perf_counter()

        def search(r: str = v.base, name: str = fv.name, options: Any = options) -> tuple:
            # Quantizing (and qat-int8's training) needs autograd-capable tensors. Seeded
            # per search, as each recipe is: `quantize --fallback` finds what `run` found.
            torch.manual_seed(spec.target.seed)
            with torch.inference_mode(False):
                score = sensitivity.fidelity_score(arts[FP32].module, ctx.calib_inputs[:4])
                sens = sensitivity.layer_sensitivity(
                    lm, r, ctx, score, "cosine to fp32", options=options
                )
                ranking = [e.layer for e in sens.layers if e.effect is not None]
                scratch = CellResult(model=model, recipe=name)
                found = fallback(
                    lm, r, ctx, ranking, lambda m, c=scratch: judge(m, c),
                    spec.quant.fallback_max_layers, options,
                )  # fmt: skip
            return sens, found

        found = guarded(cell, search)
        if found is None:
            continue
        sens, fbk = found
        cell.quantize_s = time.perf_counter() - t
        arts[fv] = fbk.artifact
        describe(cell, fbk.artifact, params, "size" in spec.judge.measure)
        wrong = None
        try:
            judge(fbk.artifact.module, cell)
        except NonFiniteOutputs as e:
            wrong = f"{e} (on the evaluation data)"
        if cell.fidelity is not None and cell.fidelity.nonfinite in ("variant", "both"):
            wrong = cell.fidelity.note
        cell.details["float_layers"] = fbk.float_layers
        cell.details["fallback_steps"] = [[n, value] for n, value in fbk.steps]
        cell.details["sensitivity"] = [
            [e.layer, e.kind, e.effect] for e in sens.layers[: max(10, len(fbk.float_layers))]
        ]
        met = "met" if fbk.met else f"not met after {len(fbk.float_layers)} layers (the cap)"
        cell.notes.append(
            f"accuracy-aware fallback from {v.base}: kept {len(fbk.float_layers)} layer(s) in "
            f"float ({', '.join(fbk.float_layers)}); the bar was {met}"
        )
        if wrong:  # NaN/inf outputs: a wrong result, not timed
            cell.status, cell.error = "error", wrong
            del arts[fv]
    run.emit(Snapshot.of(cells.values()))
