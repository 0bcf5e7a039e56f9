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

Accuracy-aware fallback (``quantbench.runner.fallback``) is built on this ranking; the
``quantbench sensitivity`` command (loading, calibration and data as a run's, then
sensitivity.json and .md) is ``quantbench.runner.sensitivity``.

Example::

    >>> from quantbench.sensitivity import quantizable_layers
    >>> from quantbench.models import load_model
    >>> quantizable_layers(load_model("squeezenet"), "static-int8")[:2]
    ['features.0', 'features.3.squeeze']
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from quantbench.errors import UnsupportedError

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
    """Names of the modules ``recipe`` would quantize: those of the layer kinds its record
    says it quantizes (``Recipe.quantizes``: torch's ``Linear`` / ``Conv``, or the ONNX
    ops a layer becomes, ``MatMul`` / ``Gemm`` from Linear, ``Conv``, ``Gather`` from an
    embedding)."""
    import torch

    from quantbench.recipes import get_recipe
    from quantbench.recipes.onnx.given import GivenOnnx

    convs = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    by_kind: dict[str, tuple[type, ...]] = {
        "Linear": (torch.nn.Linear,), "MatMul": (torch.nn.Linear,), "Gemm": (torch.nn.Linear,),
        "Conv": convs, "Gather": (torch.nn.Embedding,),
    }  # fmt: skip
    quantizes = get_recipe(recipe).quantizes
    if isinstance(lm.module, GivenOnnx):  # an ONNX file: its weight-bearing nodes
        kinds_of = {"Gemm": ("Gemm", "MatMul")}  # quantize_dynamic splits a Gemm into a MatMul
        return [n for n, m in lm.module.named_modules()
                if any(k in quantizes for k in kinds_of.get(m.kind, (m.kind,)))]  # fmt: skip
    kinds = tuple(dict.fromkeys(k for q in quantizes for k in by_kind.get(q, ())))
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
        kind = getattr(m, "kind", type(m).__name__)  # an ONNX file's layers are ops
        params = sum(p.numel() for p in m.parameters(recurse=False))
        try:
            s = score(quantize_except(lm, recipe, ctx, keep, options).module)
        except Exception as e:  # one layer failing must not lose the others
            out.append(LayerEffect(name, kind, params, None, None, str(e)[:200]))
            continue
        if not math.isfinite(s):
            why = f"score is {s} (outputs are NaN/inf)"
            out.append(LayerEffect(name, kind, params, None, None, why))
            continue
        effect = s - full if mode == "float-one" else fp32 - s
        out.append(LayerEffect(name, kind, params, s, effect))
    out.sort(key=lambda e: -(e.effect if e.effect is not None else float("-inf")))
    return Sensitivity(lm.name, recipe, mode, metric, fp32, full, out, time.perf_counter() - t0)
