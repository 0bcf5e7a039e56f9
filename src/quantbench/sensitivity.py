"""Per-layer sensitivity: which layers cost a quantized model its accuracy.

Sensitivity answers "my int8 model lost points: which layer did it?". For a recipe that
can leave chosen layers in float (``dynamic-int8``, ``static-int8``, ``qat-int8``,
``pt2e-static-int8`` and the ONNX Runtime ones, which leave the nodes a layer became out
of quantization), each quantizable layer is measured in turn:

- ``float-one``: everything quantized except that layer; its effect is how much of the
  loss keeping it in float wins back (score minus the fully quantized score);
- ``quantize-one``: only that layer quantized; its effect is what quantizing it alone
  costs (fp32's score minus the score).

The score is the task metric on a dataset when one is given (top-1, accuracy, embedding
Spearman), else the cosine to fp32's outputs on the calibration inputs.

Accuracy-aware fallback (``quantbench.runner.fallback``) is built on this ranking.

Example::

    >>> from quantbench.sensitivity import quantizable_layers
    >>> from quantbench.models import load_model
    >>> quantizable_layers(load_model("squeezenet"), "static-int8")[:2]
    ['features.0', 'features.3.squeeze']
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantbench.errors import UnsupportedError, first_line

MODES = ("float-one", "quantize-one")


@dataclass
class LayerEffect:
    layer: str
    kind: str  # module type
    params: int
    score: float | None
    effect: float | None  # larger = more sensitive
    error: str | None = None


@dataclass
class Sensitivity:
    model: str
    recipe: str
    mode: str
    metric: str
    fp32_score: float | None
    quantized_score: float | None
    layers: list[LayerEffect]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def quantizable_layers(lm: Any, recipe: str) -> list[str]:
    """Names of the modules ``recipe`` would quantize (Linear; Conv too for static ones;
    for ONNX Runtime and OpenVINO recipes the modules behind the ops they quantize: embeddings too
    where they quantize Gather)."""
    import torch

    from quantbench.recipes import get_recipe

    convs = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    kinds: tuple[type, ...] = (torch.nn.Linear,)
    r = get_recipe(recipe)
    if r.library in ("onnxruntime", "openvino"):  # graph op names: map them to modules
        by_op = {"MatMul": (torch.nn.Linear,), "Gemm": (torch.nn.Linear,), "Conv": convs,
                 "Gather": (torch.nn.Embedding,)}  # fmt: skip
        kinds = tuple(dict.fromkeys(k for op in r.quantizes for k in by_op.get(op, ())))
    elif recipe != "dynamic-int8":
        kinds = (torch.nn.Linear, *convs)
    return [n for n, m in lm.module.named_modules() if n and isinstance(m, kinds)]


def rankable_recipes() -> list[str]:
    """The recipes that can leave chosen layers in float, so rank and fall back."""
    from quantbench.recipes import list_recipes

    return [r.name for r in list_recipes() if r.float_layers]


def fidelity_score(ref_module: Any, inputs: list[tuple]) -> Callable[[Any], float]:
    """A score: mean cosine of a module's outputs to ``ref_module``'s on ``inputs``."""
    import torch

    with torch.inference_mode():
        refs = [ref_module(*x).float().flatten(1) for x in inputs]

    def score(module: Any) -> float:
        with torch.inference_mode():
            cos = [
                torch.nn.functional.cosine_similarity(module(*x).float().flatten(1), r, dim=1)
                for x, r in zip(inputs, refs, strict=True)
            ]
        return float(torch.cat(cos).mean())

    return score


def quantize_except(
    lm: Any,
    recipe: str,
    ctx: Any,
    float_layers: set[str],
    options: dict[str, Any] | None = None,
) -> Any:
    """``recipe`` (with ``options`` for its config) applied to ``lm`` with ``float_layers``
    left in float; its :class:`~quantbench.recipes.Artifact`."""
    from quantbench.recipes import apply_recipe

    ctx = dataclasses.replace(ctx, float_layers=frozenset(float_layers))
    return apply_recipe(recipe, lm, ctx, options)


def layer_sensitivity(
    lm: Any,
    recipe: str,
    ctx: Any,
    score: Callable[[Any], float],
    metric: str,
    mode: str = "float-one",
    layers: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
    options: dict[str, Any] | None = None,
) -> Sensitivity:
    """Score ``recipe`` with one layer at a time left float (or quantized); ranked.
    ``options``: settings of the recipe's config (``RunSpec.recipe_options``)."""
    from quantbench.recipes import get_recipe

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    if not get_recipe(recipe).float_layers:
        raise UnsupportedError(
            f"{recipe} cannot leave chosen layers in float, so its layers cannot be ranked "
            f"(use one of {', '.join(rankable_recipes())})"
        )
    t0 = time.perf_counter()
    names = layers if layers is not None else quantizable_layers(lm, recipe)
    if not names:
        raise UnsupportedError(f"{recipe} finds no layer to quantize in {lm.name}")
    modules = dict(lm.module.named_modules())
    fp32 = score(lm.module)
    full = score(quantize_except(lm, recipe, ctx, set(), options).module)
    for what, value in (("fp32", fp32), (f"fully quantized ({recipe})", full)):
        if not math.isfinite(value):  # NaN/inf outputs: every effect would be NaN
            raise UnsupportedError(
                f"{lm.name}'s {what} score is {value} (its outputs are NaN/inf): there is "
                "nothing to rank layers against"
            )
    out = []
    for i, name in enumerate(names):
        if progress:
            progress(f"{i + 1}/{len(names)} {name}")
        keep = {name} if mode == "float-one" else set(names) - {name}
        m = modules[name]
        params = sum(p.numel() for p in m.parameters(recurse=False))
        try:
            s = score(quantize_except(lm, recipe, ctx, keep, options).module)
        except Exception as e:  # one layer failing must not lose the others
            out.append(LayerEffect(name, type(m).__name__, params, None, None, str(e)[:200]))
            continue
        if not math.isfinite(s):
            why = f"score is {s} (outputs are NaN/inf)"
            out.append(LayerEffect(name, type(m).__name__, params, None, None, why))
            continue
        effect = s - full if mode == "float-one" else fp32 - s
        out.append(LayerEffect(name, type(m).__name__, params, s, effect))
    out.sort(key=lambda e: -(e.effect if e.effect is not None else float("-inf")))
    return Sensitivity(lm.name, recipe, mode, metric, fp32, full, out, time.perf_counter() - t0)


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
) -> tuple[Sensitivity, Any]:
    """``quantbench sensitivity``: rank ``model``'s layers for ``recipe``; write the report.

    Returns the result and the output directory (sensitivity.json, .md and .png).
    """
    from contextlib import ExitStack

    from quantbench import env, evaluate
    from quantbench import models as zoo
    from quantbench.errors import QuantbenchError, unknown_name
    from quantbench.recipes import QuantContext, get_recipe
    from quantbench.results import atomic_write_text
    from quantbench.runner.outdir import prepare_out_dir
    from quantbench.spec import RunSpec, dataset_arg
    from quantbench.strictjson import dumps

    if mode not in MODES:
        raise unknown_name("mode", mode, MODES)
    if not get_recipe(recipe).float_layers:
        raise QuantbenchError(
            f"recipe {recipe} cannot leave single layers in float; use one of "
            f"{', '.join(rankable_recipes())}"
        )
    if limit is not None and limit <= 0:
        raise QuantbenchError(f"limit must be an integer > 0, got {limit}")
    spec = RunSpec(
        seed=seed, limit=limit, calibration_samples=calibration_samples,
        dataset=dataset_arg(dataset).to_dict() if dataset else None,
        calibration=dataset_arg(calibration, "calibration").to_dict() if calibration else None,
    )  # fmt: skip
    engine = env.check_engine(engine)
    options = {"num_classes": num_classes} if num_classes else {}
    lm = zoo.load_model(model, weights, seed, options)
    size = 128 if lm.family == zoo.TEXT else 224
    ctx = QuantContext(engine, [lm.make_inputs(4, size, seed=1000 + i) for i in range(8)])
    data = None
    if spec.dataset or spec.calibration:
        data = evaluate.prepare(spec, spec.dataset, lm, 4)
        if data.calib_inputs:
            ctx.calib_inputs, ctx.calib_source = data.calib_inputs, data.calib_source
    out_dir = prepare_out_dir(out)
    if data is not None and data.dataset is not None:
        import torch

        with torch.inference_mode():
            ref_out, labels = evaluate.outputs(lm.module, data, 32)

        def score(module: Any) -> float:
            from quantbench.measure.accuracy import NonFiniteOutputs

            with torch.inference_mode():
                got, _ = evaluate.outputs(module, data, 32)
            try:
                s = evaluate.score(lm, got, labels, ref_out, None, 0.01, "")
            except NonFiniteOutputs:
                return math.nan  # layer_sensitivity says which score was not finite
            return float(s.value)

        metric = evaluate.metric_name(lm.task, lm.family)
        metric += f" on {len(data.eval_indices)} examples of {data.dataset.spec.path}"
    else:
        score = fidelity_score(lm.module, [lm.make_inputs(4, size, seed=7)])
        metric = "cosine to fp32 outputs (synthetic inputs)"
    try:
        result = layer_sensitivity(lm, recipe, ctx, score, metric, mode)
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
        _plot(result, out_dir / "sensitivity.png")
        atomic_write_text(
            out_dir / "sensitivity.md", render(result, ctx.calib_source, lm.weights) + "\n"
        )
    return result, out_dir


def render(result: Sensitivity, calib_source: str, weights: str) -> str:
    """Markdown: what was measured, then the ranked table and the bar plot."""
    from quantbench.inert import md_document
    from quantbench.report.fmt import cell_name, md_code, md_escape, md_table

    what = (
        "every layer quantized except the one named: the effect is how much keeping it in "
        "float wins back"
        if result.mode == "float-one"
        else "only the layer named quantized: the effect is what quantizing it alone costs"
    )
    lines = [
        f"# Layer sensitivity: {cell_name(result)}",
        "",
        f"- **Mode:** {md_escape(result.mode)} ({what})",
        f"- **Metric:** {md_escape(result.metric)}",
        f"- **Weights:** {md_escape(weights)}",
        f"- **Calibration:** {md_escape(calib_source)}",
        f"- **fp32:** {result.fp32_score:.4f}; **fully quantized:** {result.quantized_score:.4f}",
        f"- **Time:** {result.seconds:.1f} s for {len(result.layers)} layers",
        "",
        "![effect per layer](sensitivity.png)",
        "",
    ]
    rows = []
    for i, e in enumerate(result.layers, 1):
        score = f"{e.score:.4f}" if e.score is not None else "—"
        effect = f"{e.effect:+.4f}" if e.effect is not None else f"error: {e.error}"
        rows.append([i, md_code(e.layer), e.kind, f"{e.params:,}", score, effect])
    lines += md_table(["Rank", "Layer", "Type", "Params", "Score", "Effect"], rows)
    return md_document("\n".join(lines))


def _plot(result: Sensitivity, path: Any, top: int = 25) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [e for e in result.layers if e.effect is not None][:top][::-1]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(rows) + 1.5))
    ax.barh([e.layer for e in rows], [e.effect for e in rows], color="tab:orange")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel(
        "score gained by keeping the layer in float"
        if result.mode == "float-one"
        else "score lost by quantizing only this layer"
    )
    ax.set_title(f"{result.model} · {result.recipe}: most sensitive layers", fontsize=10)
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    try:
        _save_atomic(fig, Path(path))
    finally:
        plt.close(fig)


def _save_atomic(fig: Any, path: Path) -> None:
    """Save ``fig`` as a PNG next to ``path`` under a temporary name, then rename it."""
    from quantbench.results import file_mode

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=110)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
