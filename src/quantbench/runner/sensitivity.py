"""``quantbench sensitivity``: rank one model's layers for one recipe, on a run's inputs.

The model, its calibration inputs and its data come from the run's own load stage
(:func:`quantbench.runner.pipeline.load`): the same settings build the same calibration
batches at the same reference size, on the same device, from the same calibration and
evaluation data as ``quantbench run`` would. The score is the task metric on the
evaluation data when one is given, else the cosine to fp32's outputs on the fidelity
inputs (``fidelity_batch_size`` at the reference size, as the fidelity stage). The
ranking itself is :func:`quantbench.sensitivity.layer_sensitivity`; sensitivity.json is
its record, sensitivity.md and its figure the report's (``quantbench.report``).

Example::

    result, out_dir = analyse("resnet18", "static-int8", weights="random")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from quantbench.errors import QuantbenchError, UnsupportedError, first_line, unknown_name
from quantbench.sensitivity import MODES, Sensitivity, layer_sensitivity, rankable_recipes


def sensitivity_spec(model: str, recipe: str, **settings: Any) -> tuple[Any, Any]:
    """The settings a ranking is measured with: ``settings`` (RunSpec fields; None: not
    given, ``num_classes`` a model option) for one model and one recipe, validated as a
    run's. Returns the spec and the model's entry."""
    from quantbench.runner.checks import build_spec

    given = {k: v for k, v in settings.items() if v is not None}
    num_classes = given.pop("num_classes", None)
    entry = {"name": model, "options": {"num_classes": num_classes}} if num_classes else model
    spec = build_spec(overrides={
        **given, "models": [entry], "recipes": [recipe], "measure": ["fidelity"],
        "isolate": False, "pin": False, "compile": False, "save_artifacts": False,
    })  # fmt: skip
    return spec, spec.target.models[0]


def _scorer(run: Any) -> tuple[Callable[[Any], float], str]:
    """The score of a module, and what it is: the task metric on the evaluation data the
    load stage read, else the cosine to fp32 on the fidelity inputs."""
    import torch

    from quantbench import evaluate
    from quantbench.measure.accuracy import NonFiniteOutputs
    from quantbench.sensitivity import fidelity_score

    spec, lm, data = run.spec, run.lm, run.data
    if data is None or data.dataset is None:
        inputs = lm.make_inputs(spec.judge.fidelity_batch_size, run.ref_size, seed=7)
        return fidelity_score(lm.module, [inputs]), "cosine to fp32 outputs (synthetic inputs)"
    bs, device = spec.data.eval_batch_size, spec.target.device
    with torch.inference_mode():
        ref_out, labels = evaluate.outputs(lm.module, data, bs, device)

    def score(module: Any) -> float:
        with torch.inference_mode():
            got, _ = evaluate.outputs(module, data, bs, device)
        try:
            s = evaluate.score(lm, got, labels, ref_out, None, spec.judge.max_accuracy_drop, "")
        except NonFiniteOutputs:
            return math.nan  # layer_sensitivity says which score was not finite
        return float(s.value)

    metric = evaluate.metric_name(lm.task, lm.family)
    return score, f"{metric} on {len(data.eval_indices)} examples of {data.dataset.spec.path}"


def analyse(
    model: str,
    recipe: str,
    dataset: str | None = None,
    calibration: str | None = None,
    limit: int | None = None,
    mode: str = "float-one",
    weights: str = "auto",
    seed: int = 0,
    out: str | None = None,
    num_classes: int | None = None,
    calibration_samples: int = 128,
    engine: str | None = None,
    device: str | None = None,
) -> tuple[Sensitivity, Path]:
    """Rank ``model``'s layers for ``recipe``; write sensitivity.json, .md and .png to
    ``out`` (default ``quantbench-runs/<timestamp>``). Returns the result and that
    directory. Bad input (a mode, a recipe that cannot leave layers in float, a model it
    does not apply to) is a one-line QuantbenchError."""
    from quantbench.files import atomic_write_text
    from quantbench.outdir import prepare_out_dir
    from quantbench.recipes import get_recipe
    from quantbench.report import render_sensitivity
    from quantbench.runner.modelrun import ModelRun
    from quantbench.runner.pipeline import load
    from quantbench.strictjson import dumps

    if mode not in MODES:
        raise unknown_name("mode", mode, MODES)
    if not get_recipe(recipe).float_layers:
        raise QuantbenchError(f"recipe {recipe} cannot leave single layers in float; use one "
                              f"of {', '.join(rankable_recipes())}")  # fmt: skip
    spec, ref = sensitivity_spec(
        model, recipe, dataset=dataset, calibration=calibration, limit=limit, weights=weights,
        seed=seed, num_classes=num_classes, calibration_samples=calibration_samples,
        engine=engine, device=device,
    )  # fmt: skip
    out_dir = prepare_out_dir(out)  # refused now, before anything is measured
    run = ModelRun(spec, ref, emit=lambda _message: None)
    load(run)  # the model, calibration inputs and data, as a run loads them
    try:
        score, metric = _scorer(run)
        opts = spec.quant.recipe_options.get(recipe)
        result = layer_sensitivity(run.lm, recipe, run.qctx, score, metric, mode, options=opts)
    except UnsupportedError as e:
        raise QuantbenchError(f"{recipe} does not apply to {model}: {e}") from None
    except QuantbenchError:
        raise
    except Exception as e:  # the recipe itself failed: one line, not a traceback
        raise QuantbenchError(f"{recipe} failed on {model}: {first_line(e)}") from None
    # Each file appears whole or not at all: a reader never sees half of one. The directory
    # is checked again, locked: another command may have written into it meanwhile.
    with ExitStack() as held:
        prepare_out_dir(out_dir, held, f"quantbench sensitivity {model} {recipe}")
        atomic_write_text(out_dir / "sensitivity.json", dumps(result.to_dict(), indent=2) + "\n")
        render_sensitivity(out_dir, result, run.qctx.calib_source, run.lm.weights)
    return result, out_dir
