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
    device: str = "cpu"  # where the model and the inputs are: "cpu" or "cuda"


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
class RecipeStyle:
    """How a recipe is drawn: line style and marker for lines, hatch for bars."""

    linestyle: Any
    marker: str
    hatch: str


@dataclass(frozen=True)
class Recipe:
    """Everything the program knows about one recipe, in one place.

    ``apply(model, config, ctx)`` builds the :class:`Artifact`. ``config`` is a frozen
    dataclass whose fields a user may set (``recipe_options`` in a spec); its
    ``config_version`` is stored with it in every cell, so a stored number says exactly
    which settings produced it. ``quantizes`` names the layer kinds it turns low-precision;
    ``compilable`` says whether ``<recipe>+compile`` applies; ``file_format`` is what
    ``quantize`` writes (a name in :data:`quantbench.artifacts.formats.FORMATS`); ``explanation`` is the report's paragraph (may hold ``{calib}``);
    ``style`` is how plots draw it (None: a distinct style is assigned). ``devices`` are
    the devices it runs on (default: cpu and cuda for ONNX Runtime, whose CUDA provider
    runs any graph, else cpu); ``families`` the model families it applies to; ``probe``
    ``(config, device) -> reason | None`` says why it cannot run on this machine (a
    missing kernel or engine) beyond what :mod:`quantbench.recipes.support` checks
    itself (the device, the GPU, the packages of ``library``). ``baseline`` is the float
    recipe of its own runtime (``ort-fp32`` for ONNX Runtime's int8): its speedup is also
    taken against that, so a runtime's effect shows apart from quantization's.
    """

    name: str
    precision: str  # what the weights become, for the report's "target precision"
    runtime: str
    description: str  # one line: `quantbench list recipes`, report fallback
    apply: Callable[[Any, Any, QuantContext], Artifact]
    config: Any = None
    float_layers: bool = False  # honours QuantContext.float_layers (sensitivity, fallback)
    quantizes: tuple[str, ...] = ()  # e.g. ("Linear",), ("Conv", "Linear"), ("MatMul", "Gather")
    compilable: bool = False  # a ``+compile`` variant applies (eager torch modules)
    file_format: str = "state_dict"
    explanation: str | None = None  # the report's paragraph; defaults to ``description``
    style: RecipeStyle | None = None
    config_version: int = 1
    library: str = "torch"  # the package family: torch, torchao, onnxruntime
    devices: tuple[str, ...] = ()  # () : derived from library (see __post_init__)
    families: tuple[str, ...] = ("vision", "text", "tensor")
    probe: Callable[[Any, str], str | None] | None = None
    baseline: str = "fp32"

    def __post_init__(self) -> None:
        if not self.devices:
            derived = ("cpu", "cuda") if self.library == "onnxruntime" else ("cpu",)
            object.__setattr__(self, "devices", derived)

    def with_options(self, options: dict[str, Any] | None) -> Recipe:
        """This recipe with some config fields overridden; unknown or ill-typed fields are
        a :class:`~quantbench.errors.QuantbenchError` naming the valid ones."""
        if not options:
            return self
        import dataclasses

        from quantbench.errors import QuantbenchError

        if self.config is None or not dataclasses.is_dataclass(self.config):
            raise QuantbenchError(f"recipe '{self.name}' has no settings to change")
        fields = {f.name: f for f in dataclasses.fields(self.config)}
        for key, value in options.items():
            if key not in fields:
                raise unknown_name(f"setting of recipe '{self.name}'", key, fields)
            current = getattr(self.config, key)
            widened = isinstance(current, float) and isinstance(value, int)
            if current is not None and not isinstance(value, type(current)) and not widened:
                raise QuantbenchError(
                    f"recipe '{self.name}' setting '{key}' must be "
                    f"{type(current).__name__}, got {value!r}"
                )
        config = dataclasses.replace(self.config, **options)
        if hasattr(config, "check"):  # values the config itself can refuse (block sizes...)
            config.check()
        return dataclasses.replace(self, config=config)

    def config_record(self) -> dict[str, Any]:
        """The settings as stored in each cell: ``{"version": n, **fields}``."""
        import dataclasses

        fields = dataclasses.asdict(self.config) if dataclasses.is_dataclass(self.config) else {}
        return {"version": self.config_version, **fields}


RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    """Add ``recipe`` to the registry; a second recipe of the same name is a bug."""
    if recipe.name in RECIPES and RECIPES[recipe.name] is not recipe:
        raise ValueError(f"recipe '{recipe.name}' is registered twice")
    RECIPES[recipe.name] = recipe
    return recipe


def recipe(name: str, **fields: Any) -> Callable[[Callable], Callable]:
    """Register the decorated function as recipe ``name`` (fields as in :class:`Recipe`).

    Stack it to register one function under several configs::

        @recipe("my-int8", precision="int8", runtime="torch-eager",
                description="...", config=MyConfig(), quantizes=("Linear",))
        def _my_int8(model, config, ctx): ...
    """

    def deco(fn: Callable) -> Callable:
        register(Recipe(name=name, apply=fn, **fields))
        return fn

    return deco


def get_recipe(name: str, options: dict[str, Any] | None = None) -> Recipe:
    """The registered recipe ``name`` (a base name, not a variant), with ``options``
    overriding its config fields."""
    _load_builtin()
    if name not in RECIPES:
        raise unknown_name("recipe", name, RECIPES)
    return RECIPES[name].with_options(options)


def list_recipes() -> list[Recipe]:
    _load_builtin()
    return list(RECIPES.values())


def runtime_baseline(variant: str) -> str | None:
    """The variant whose runtime ``variant`` runs on, in float: its recipe's ``baseline``,
    compiled when ``variant`` is (``static-int8+compile`` -> ``fp32+compile``,
    ``ort-static-int8+fallback`` -> ``ort-fp32``). None where that is torch's fp32 (the
    speedup every cell has already), ``variant`` itself, or an unknown recipe.

    >>> runtime_baseline("ort-static-int8"), runtime_baseline("static-int8")
    ('ort-fp32', None)
    """
    from quantbench.variants import BASELINE, Variant

    try:
        v = Variant.parse(variant)
        base = get_recipe(v.base).baseline
    except Exception:  # a name from an older run: no baseline known
        return None
    name = f"{base}+compile" if v.compiled else base
    return None if name in (BASELINE, v.name) else name


def apply_recipe(
    name: str, model: Any, ctx: QuantContext, options: dict[str, Any] | None = None
) -> Artifact:
    """Quantize ``model`` (a :class:`~quantbench.models.LoadedModel`) with recipe ``name``,
    ``options`` overriding fields of its config."""
    from quantbench.errors import UnsupportedError

    r = get_recipe(name, options)
    if ctx.float_layers and not r.float_layers:
        raise UnsupportedError(f"{name} cannot leave chosen layers in float")
    art = build(r, model, ctx)
    if ctx.float_layers:
        art.details["float_layers"] = sorted(ctx.float_layers)
    return art


def build(recipe: Recipe, model: Any, ctx: QuantContext) -> Artifact:
    """``recipe.apply`` on ``ctx.device``: a device the recipe does not run on (or has no
    GPU) is an UnsupportedError with the reason, and the artifact is placed on the device
    (an ONNX Runtime session gets the CUDA execution provider)."""
    from quantbench.errors import UnsupportedError
    from quantbench.recipes.onnx.given import check_recipe
    from quantbench.recipes.support import device_support, place

    check_recipe(recipe, model)  # an ONNX file: torch recipes do not apply
    reason = device_support(recipe, ctx.device)
    if reason is not None:
        raise UnsupportedError(reason)
    return place(recipe.apply(model, recipe.config, ctx), ctx.device)


# The modules whose import registers recipes, in listing order (fp32 first).
_BUILTIN = ("eager", "onnx", "torchao", "pt2e", "half", "executorch", "openvino")


def _load_builtin() -> None:
    # Importing the runtime families registers their recipes; the optional ones (ONNX
    # Runtime, torchao / PT2E) register only where their libraries import.
    import contextlib
    import importlib

    importlib.import_module("quantbench.recipes.eager")
    for family in _BUILTIN[1:]:
        with contextlib.suppress(ImportError):
            importlib.import_module(f"quantbench.recipes.{family}")
