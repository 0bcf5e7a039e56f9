"""Recipe registry: a recipe is a small frozen config plus one function.

``apply_recipe(name, model, ctx)`` returns an :class:`Artifact` (something that runs
and can be saved and sized) or raises :class:`UnsupportedError` with the reason.

Example::

    >>> from quantbench.models import load_model
    >>> from quantbench.recipes import QuantContext, apply_recipe
    >>> m = load_model("resnet18")
    >>> ctx = QuantContext(engine="x86", calib_inputs=[m.make_inputs(2, 224)])
    >>> art = apply_recipe("static-int8", m, ctx)
    >>> art.module(*m.make_inputs(1, 224)).shape
    torch.Size([1, 1000])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from quantbench.errors import unknown_name


@dataclass
class QuantContext:
    """What a recipe may use besides the model.

    ``calib_inputs``: input tuples for calibration. ``float_layers``: module names to
    leave in float (per-layer sensitivity and accuracy-aware fallback; recipes that
    cannot exclude layers raise UnsupportedError when it is set). ``train_batches``:
    (inputs, labels) pairs for quantization-aware training (qat-int8).
    """

    engine: str
    calib_inputs: list[tuple] = field(default_factory=list)
    float_layers: frozenset[str] = frozenset()
    train_batches: list[tuple[tuple, Any]] = field(default_factory=list)
    qat_steps: int = 100
    qat_lr: float = 1e-4
    calib_source: str = "synthetic"  # what calib_inputs are: "synthetic" or a dataset


@dataclass
class Artifact:
    """A quantized (or baseline) model that runs as ``module(*inputs)``.

    ``module`` takes the model's positional input tensors and returns one torch tensor
    (an ONNX Runtime session is wrapped to do so). Recipes whose artifact is not a torch
    state_dict (an ``.onnx`` file, a compiled program) fill ``size_bytes`` and the module
    counts themselves; otherwise the runner derives them from ``module``.
    """

    recipe: str
    module: Any
    runtime: str = "torch-eager"
    notes: list[str] = field(default_factory=list)
    size_bytes: int | None = None  # bytes of the file a user would ship
    file: Any = None  # path of that file, when the recipe wrote one
    quantized_modules: dict[str, int] | None = None  # e.g. {"MatMulInteger": 72} for ONNX
    float_modules: dict[str, int] | None = None
    int8_param_fraction: float | None = None
    param_bytes_by_dtype: dict[str, int] | None = None
    compile_s: float | None = None  # time spent compiling / exporting, apart from latency
    details: dict[str, Any] = field(default_factory=dict)  # provider, QDQ count, ISA, ...


@dataclass(frozen=True)
class Recipe:
    name: str
    precision: str  # what the weights become, for the report's "target precision"
    runtime: str
    description: str
    apply: Callable[[Any, Any, QuantContext], Artifact]
    config: Any = None
    float_layers: bool = False  # honours QuantContext.float_layers


RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    RECIPES[recipe.name] = recipe
    return recipe


def get_recipe(name: str) -> Recipe:
    _load_builtin()
    if name not in RECIPES:
        raise unknown_name("recipe", name, RECIPES)
    return RECIPES[name]


def list_recipes() -> list[Recipe]:
    _load_builtin()
    return list(RECIPES.values())


def apply_recipe(name: str, model: Any, ctx: QuantContext) -> Artifact:
    """Quantize ``model`` (a :class:`~quantbench.models.LoadedModel`) with recipe ``name``."""
    from quantbench.errors import UnsupportedError

    r = get_recipe(name)
    if ctx.float_layers and not r.float_layers:
        raise UnsupportedError(f"{name} cannot leave chosen layers in float")
    art = r.apply(model, r.config, ctx)
    if ctx.float_layers:
        art.details["float_layers"] = sorted(ctx.float_layers)
    return art


def _load_builtin() -> None:
    # Importing the runtime families registers their recipes; the optional ones (ONNX
    # Runtime, torchao / PT2E) register only where their libraries import.
    import contextlib

    from quantbench.recipes import eager  # noqa: F401

    with contextlib.suppress(ImportError):
        from quantbench.recipes import onnx  # noqa: F401
    with contextlib.suppress(ImportError):
        from quantbench.recipes import pt2  # noqa: F401
