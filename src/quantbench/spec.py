"""Experiment spec: what to run (models x recipes x sweeps x measures), presets, YAML.

One typed settings model (:class:`RunSpec`, pydantic) is shared by the CLI flags, the
YAML file and Python overrides: the same names everywhere (a key ``min_time_s`` is the
flag ``--min-time-s``), the same checks, one-line errors. Plain value checks live in the
model; the checks that need the world (models, weights files, datasets, engines) are in
:func:`validate`. Everything is checked before any model is built, so bad input costs
nothing.

Example::

    >>> from quantbench.spec import build_spec
    >>> spec = build_spec(preset="quick", overrides={"measure": ["size"]})
    >>> [m.name for m in spec.models]
    ['resnet18', 'distilbert']
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic.fields import FieldInfo

from quantbench.errors import QuantbenchError, first_line, unknown_name
from quantbench.shapes import LAB_REF_BATCH, LAB_REF_SIZES

MEASURES = ("size", "latency", "fidelity")
EXECUTORS = ("local", "ray")

DEFAULT_IMAGE_SIZES = [64, 128, 160, 224, 256]
DEFAULT_SEQ_LENS = [32, 64, 128, 256, 512]
DEFAULT_BATCH_SIZES = [1, 2, 4, 8]
LAB_MODELS = [
    "bert", "albert", "distilbert", "longformer",
    "mobilenet_v2", "resnet18", "squeezenet", "mnasnet",
]  # fmt: skip
LAB_RECIPES = ["fp32", "dynamic-int8", "static-int8"]

PRESETS: dict[str, dict[str, Any]] = {
    # The lab: eight models, three recipes, both sweeps per family.
    "lab": {},
    # A few points of each sweep on one model per family: a couple of minutes.
    "quick": {
        "models": ["resnet18", "distilbert"],
        "image_sizes": [64, 128, 224],
        "vision_batch_sizes": [1, 4],
        "seq_lens": [32, 128],
        "text_batch_sizes": [1, 4],
        "min_time_s": 0.2,
    },
    # The targets benchmark (benchmarks/targets.py): every model x every recipe, at the
    # reference shape only (batch 1, 224 px / 128 tokens).
    "targets": {
        "recipes": ["all"],
        "image_sizes": [224],
        "vision_batch_sizes": [1],
        "seq_lens": [128],
        "text_batch_sizes": [1],
        "fidelity_batch_size": 16,  # top-1 agreement over 16 inputs, not 4
    },
}

# A setting that is not a field: sets both families' batch sweeps (a family's own key,
# given in the same place, wins).
BATCH_SIZES_ALIAS = "batch_sizes"


# --------------------------------------------------------------------------- value types


def parse_int_list(text: str | list[Any], what: str) -> list[int]:
    """'1,2,4' or [1, 2, 4] -> [1, 2, 4]; non-integers and values <= 0 are rejected."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for raw in items:
        s = str(raw).strip()
        if isinstance(raw, bool) or not s.lstrip("+").isdigit() or int(s) <= 0:
            raise QuantbenchError(f"{what} must be positive integers, got '{raw}'")
        out.append(int(s))
    if not out:
        raise QuantbenchError(f"{what} must not be empty")
    return sorted(dict.fromkeys(out))


def parse_name_list(text: str | list[Any], what: str) -> list[str]:
    """'a, b,a' or ['a', 'b'] -> ['a', 'b'] (order kept, duplicates dropped)."""
    items = text.split(",") if isinstance(text, str) else [str(x) for x in text]
    out = [s.strip() for s in items if s.strip()]
    if not out:
        raise QuantbenchError(f"{what} must not be empty")
    return list(dict.fromkeys(out))


def _predicate(e: QuantbenchError, what: str) -> str:
    """'<what> must be ...' -> 'must be ...' (the model adds the setting's name)."""
    text = str(e)
    return text[len(what) + 1 :] if text.startswith(what + " ") else text


def _int_list(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]  # a sweep of one
    if value is None or not isinstance(value, (str, list, tuple)):
        return value  # the type check reports it
    try:
        return parse_int_list(value if isinstance(value, str) else list(value), "_")
    except QuantbenchError as e:
        raise ValueError(_predicate(e, "_")) from None


def _name_list(value: Any) -> Any:
    if not isinstance(value, (str, list, tuple)):
        return value
    try:
        return parse_name_list(value if isinstance(value, str) else list(value), "_")
    except QuantbenchError as e:
        raise ValueError(_predicate(e, "_")) from None


# Constrained scalars (strict: no bools for numbers, no strings for numbers). What each
# expects, in words, is what a bad value's one-line error says.
PosInt = Annotated[int, Field(strict=True, gt=0)]
NonNegInt = Annotated[int, Field(strict=True, ge=0)]
PosFloat = Annotated[float, Field(strict=True, gt=0)]
NonNegFloat = Annotated[float, Field(strict=True, ge=0)]
UnitFloat = Annotated[float, Field(strict=True, ge=0, le=1)]
Fraction = Annotated[float, Field(strict=True, ge=0, lt=1)]
Flag = Annotated[bool, Field(strict=True)]
Text = Annotated[str, Field(strict=True)]
IntList = Annotated[list[PosInt], BeforeValidator(_int_list)]
NameList = Annotated[list[Text], BeforeValidator(_name_list)]
AnyMap = dict[str, Any]


def _expects(annotation: Any, metadata: Sequence[Any] = ()) -> str | None:
    """What a field of this annotation (and constraints) expects, in words; None for
    types of no constrained kind (mappings, models)."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is Annotated:
        base, *extra = get_args(annotation)
        meta = list(metadata)
        for m in extra:
            meta += m.metadata if isinstance(m, FieldInfo) else [m]
        return _expects(base, meta)
    if get_origin(annotation) is list:
        item = _expects(args[0]) if args else None
        return "positive integers" if item == "an integer > 0" else "a list"
    if args and get_origin(annotation) is not dict:  # Optional[X]
        return _expects(args[0], metadata)
    kind = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if annotation not in kind:
        return None
    bounds = {type(m).__name__: getattr(m, type(m).__name__.lower(), None) for m in metadata}
    if bounds.get("Ge") == 0 and bounds.get("Le") == 1:
        return f"{kind[annotation]} between 0 and 1"
    if bounds.get("Ge") == 0 and bounds.get("Lt") == 1:
        return "a fraction in [0, 1)"
    for name, op in (("Gt", ">"), ("Ge", ">=")):
        if name in bounds:
            return f"{kind[annotation]} {op} {bounds[name]}"
    return kind[annotation]


def _settings_error(
    e: ValidationError, model: type[BaseModel], data: Any = None
) -> QuantbenchError:
    """Pydantic's (multi-line) error as one line, e.g. ``setting 'min_runs' must be an
    integer > 0, got -1``; an unknown key is named with the closest valid one."""
    err = e.errors(include_url=False)[0]
    loc = list(err["loc"])
    prefix = ""
    if model is RunSpec and len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
        entries = data.get("models") if isinstance(data, dict) else None
        name: Any = None
        if isinstance(entries, list) and loc[1] < len(entries):
            entry = entries[loc[1]]
            name = entry.get("name") if isinstance(entry, dict) else getattr(entry, "name", entry)
        prefix = f"model '{name}': " if name is not None else f"models[{loc[1]}]: "
        model, loc = ModelRef, loc[2:]
    elif model is ModelRef and isinstance(data, dict) and "name" in data:
        prefix = f"model '{data['name']}': "
    key = str(loc[0]) if loc else "name"
    if err["type"] == "extra_forbidden":
        valid = list(model.model_fields) + ([BATCH_SIZES_ALIAS] if model is RunSpec else [])
        return QuantbenchError(prefix + str(unknown_name("setting", key, valid)))
    if err["type"] == "missing":
        return QuantbenchError(f"{prefix}setting '{key}' is required")
    if err["type"] == "value_error":
        text = str(err["ctx"]["error"])
        return QuantbenchError(
            prefix + (f"setting '{key}' {text}" if text.startswith("must") else text)
        )
    field = model.model_fields.get(key)
    words = _expects(field.annotation, field.metadata) if field is not None else None
    if words is None:
        words = err["msg"].removeprefix("Input should be ")
    return QuantbenchError(f"{prefix}setting '{key}' must be {words}, got {err['input']!r}")


class _Settings(BaseModel):
    """A pydantic model whose validation errors are one-line QuantbenchErrors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise _settings_error(e, type(self), data) from None

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as e:
            raise _settings_error(e, type(self)) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-friendly dict (what a run stores; ``spec_from_dict`` reads it)."""
        return self.model_dump()


class ModelRef(_Settings):
    """One model entry: name plus optional per-model weights, options and sweeps."""

    name: Text = Field(
        description="an alias (quantbench list models), hf:<id-or-dir>, tv:<builder>, "
        "py:<file>:<obj>, or a label when `source` says what to load"
    )
    weights: Text | None = Field(
        None, description="random | pretrained | PATH for this model (default: the run's)"
    )
    options: AnyMap = Field(
        default_factory=dict, description="model options, e.g. {num_classes: 10}"
    )
    image_sizes: IntList | None = Field(
        None, description="this model's image-size sweep in px (default: the run's)"
    )
    seq_lens: IntList | None = Field(
        None, description="this model's sequence-length sweep (default: the run's)"
    )
    source: Text | None = Field(
        None, description="what to load when `name` is only a label: tv:<arch>, hf:<dir>, "
        "py:<file>:<obj> (in a file: source torchvision|hf|python with arch/path)",
    )  # fmt: skip
    dataset: AnyMap | None = Field(
        None, description="this model's evaluation data (else the run's `dataset`)"
    )
    calibration: AnyMap | None = Field(
        None, description="this model's calibration data (else the run's `calibration`)"
    )

    def __init__(self, name: str | None = None, /, **data: Any) -> None:
        if name is not None:
            data["name"] = name
        super().__init__(**data)

    @property
    def load_name(self) -> str:
        """What the model zoo loads: ``source`` when set, else ``name``."""
        return self.source or self.name


def _models(value: Any) -> Any:
    """'a,b' or ['a', {'name': 'b', ...}, ModelRef] -> entries ModelRef validates."""
    if isinstance(value, str):
        value = _name_list(value)
    if not isinstance(value, (list, tuple)):
        return value
    return [{"name": v} if isinstance(v, str) else v for v in value]


def _recipe_options(value: Any) -> Any:
    """An inline YAML/JSON mapping (the CLI flag) or a mapping of mappings."""
    if isinstance(value, str):
        import yaml

        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ValueError(
                f"recipe_options '{value}' is not a valid inline mapping: "
                f"{first_line(e, with_type=False)}"
            ) from None
    if not isinstance(value, dict):
        raise ValueError(
            "recipe_options must map recipe names to settings, e.g. "
            "{ort-static-int8: {calibrate_method: entropy}}"
        )
    for r, options in value.items():
        if not isinstance(options, dict):
            raise ValueError(f"recipe_options for '{r}' must be a mapping of settings")
    return {str(r): dict(o) for r, o in value.items()}


def _schema_extra(schema: dict[str, Any]) -> None:
    """The JSON Schema also lists ``batch_sizes`` (sets both families' batch sweeps)."""
    schema["properties"][BATCH_SIZES_ALIAS] = {
        "title": "Batch Sizes",
        "description": "batch sweep of both families (a family's own key wins); "
        "not stored: it sets vision_batch_sizes and text_batch_sizes",
        "type": "array",
        "items": {"type": "integer", "exclusiveMinimum": 0},
    }


class RunSpec(_Settings):
    """Every setting of a run. The same names are YAML keys, Python overrides and CLI
    flags (``--`` + the key with ``_`` as ``-``); ``quantbench schema`` prints them."""

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        title="quantbench run settings",
        json_schema_extra=_schema_extra,
    )

    models: Annotated[list[ModelRef], BeforeValidator(_models)] = Field(
        default_factory=lambda: [ModelRef(m) for m in LAB_MODELS],
        description="models to measure: names (aliases, hf:<id-or-dir>, tv:<builder>, "
        "py:<file>:<obj>) or entries {name, source, arch, path, weights, num_classes, "
        "dataset, calibration, image_sizes, seq_lens}; default: the eight lab models",
    )
    recipes: NameList = Field(
        default_factory=lambda: list(LAB_RECIPES),
        description="recipe names (quantbench list recipes), or 'all'",
    )
    image_sizes: IntList = Field(
        default_factory=lambda: list(DEFAULT_IMAGE_SIZES),
        description="vision: latency vs image size (px, square), at batch 1",
    )
    vision_batch_sizes: IntList = Field(
        default_factory=lambda: list(DEFAULT_BATCH_SIZES),
        description="vision: latency vs batch size, at the reference image size",
    )
    seq_lens: IntList | None = Field(
        None,
        description="text: latency vs sequence length, at batch 1 (default: "
        "32..512, plus 1024 for long-context models)",
    )
    text_batch_sizes: IntList = Field(
        default_factory=lambda: list(DEFAULT_BATCH_SIZES),
        description="text: latency vs batch size, at the reference sequence length",
    )
    ref_batch: PosInt | None = Field(
        None,
        description="the reference batch size the report's single numbers quote (default "
        f"{LAB_REF_BATCH}); added to the batch sweeps",
    )
    ref_image_size: PosInt | None = Field(
        None,
        description="the reference image size (px): the batch sweep runs there and the "
        f"report quotes it (default: the model's sweep size nearest {LAB_REF_SIZES['vision']})",
    )
    ref_seq_len: PosInt | None = Field(
        None,
        description="the reference sequence length: the batch sweep runs there and the "
        f"report quotes it (default: the model's sweep size nearest {LAB_REF_SIZES['text']})",
    )
    measure: NameList = Field(
        default_factory=lambda: list(MEASURES), description="any of size, latency, fidelity"
    )
    weights: Text = Field(
        "auto", description="random | pretrained | PATH (auto: the default per model)"
    )
    engine: Text | None = Field(
        None, description="quantized engine (default: x86 on x86-64, qnnpack on ARM)"
    )
    threads: PosInt | None = Field(None, description="torch intra-op threads (default: torch's)")
    device: Text = Field(
        "cpu", description="where models run: cpu, cuda, or auto (cuda when torch sees a GPU, "
        "else cpu; resolved once and stored). CPU-only recipes are unsupported cells on cuda",
    )  # fmt: skip
    seed: NonNegInt = Field(0, description="seed for random weights and inputs")
    calib_batches: PosInt = Field(8, description="static recipes: calibration batches")
    calib_batch_size: PosInt = Field(4, description="... of this many inputs each")
    fidelity_batch_size: PosInt = Field(
        4, description="inputs the outputs are compared with fp32 on"
    )
    warmup: NonNegInt = Field(2, description="untimed passes per point and variant")
    min_runs: PosInt = Field(10, description="timed passes per point and variant, at least")
    min_time_s: NonNegFloat = Field(
        0.5, description="... and at least this much time (s) per point and variant"
    )
    max_time_s: PosFloat = Field(30.0, description="cap on timing per point and variant (s)")
    max_warmup: NonNegInt = Field(
        20, description="cap on warm-up passes until two agree within 10%"
    )
    min_cosine: UnitFloat = Field(
        0.99, description='"keeps fidelity": cosine to fp32 at least this ...'
    )
    min_top1: UnitFloat = Field(
        0.99, description="... and top-1 agreement (classifiers) at least this"
    )
    timeout_s: PosFloat | None = Field(
        None, description="seconds per model worker, then its cells become 'timeout'"
    )
    isolate: Flag = Field(True, description="each model in a worker process of its own")
    pin: Flag = Field(False, description="pin each worker to `threads` CPUs")
    compile: Flag = Field(
        False, description="add <recipe>+compile variants of the eager torch recipes"
    )
    grid: Flag = Field(
        False, description="time every batch size x input size, not only the two sweeps"
    )
    save_artifacts: Flag = Field(
        False,
        description="write each measured variant's deployable file under <out>/artifacts/ "
        "(the bytes that were timed and sized)",
    )
    eval_fn: str | None = Field(
        None,
        description="Python API only: the metric function handed to quantbench.run "
        "(eval_fn(model) -> float), held in that process as mem:eval_fn:<name>",
    )
    dataset: AnyMap | None = Field(
        None,
        description="evaluation data for every model (a path or {path, kind, ...}; "
        "a model's own wins)",
    )
    limit: PosInt | None = Field(
        None, description="evaluate on a seeded subset of this many examples"
    )
    calibration: AnyMap | None = Field(
        None, description="calibration data for static recipes (same forms as dataset)"
    )
    calibration_samples: PosInt = Field(
        128, description="calibration examples taken from `calibration`"
    )
    eval_batch_size: PosInt = Field(32, description="batch size when scoring the evaluation data")
    max_accuracy_drop: Fraction = Field(
        0.01, description="the accuracy bar: keep >= (1 - this) x fp32's metric (MLPerf: 99%)"
    )
    fallback: Flag = Field(
        False, description="add <recipe>+fallback variants that keep sensitive layers float"
    )
    fallback_max_layers: PosInt = Field(8, description="... at most this many layers")
    train_dataset: AnyMap | None = Field(None, description="labelled data for qat-int8")
    qat_steps: PosInt = Field(100, description="qat-int8 fine-tuning steps")
    qat_lr: PosFloat = Field(1e-4, description="qat-int8 learning rate")
    out: Text | None = Field(
        None, description="output directory (default: quantbench-runs/<timestamp>)"
    )
    store: Text | None = Field(
        None,
        description="results database: a path or SQLAlchemy URL (default ./quantbench.db)",
    )
    preset: Text = Field(
        "lab", description="the preset the file's and the flags' settings apply over: "
        + ", ".join(PRESETS),
    )  # fmt: skip
    recipe_options: Annotated[dict[str, AnyMap], BeforeValidator(_recipe_options)] = Field(
        default_factory=dict,
        description="a recipe's own settings, {recipe: {setting: value}} (quantbench list "
        "recipes shows them)",
    )
    executor: Text = Field(
        "local", description="local: measure on this machine; ray: a sweep across the nodes "
        "of a Ray cluster, one run per node under one sweep id (pip install 'quantbench[ray]')",
    )  # fmt: skip
    ray_address: Text | None = Field(
        None, description="executor ray: the cluster's address (HOST:6379 or auto); default: "
        "$RAY_ADDRESS, else a Ray started on this machine, else a new local one",
    )  # fmt: skip
    on: NameList | None = Field(
        None, description="executor ray: the nodes to run on, any of: all (default), "
        "cpu:vnni, cpu:arm, cpu:x86, cpu:<ISA flag>, gpu, a custom resource or hostname, "
        "KEY=VALUE (a node label), node:<id prefix>",
    )  # fmt: skip

    @classmethod
    def _expand_batch_sizes(cls, data: Any) -> Any:
        if isinstance(data, dict) and BATCH_SIZES_ALIAS in data:
            data = dict(data)
            bs = data.pop(BATCH_SIZES_ALIAS)
            data.setdefault("vision_batch_sizes", bs)
            data.setdefault("text_batch_sizes", bs)
        return data

    def __init__(self, **data: Any) -> None:
        super().__init__(**self._expand_batch_sizes(data))

    @field_validator("recipes")
    @classmethod
    def _all_recipes(cls, value: list[str]) -> list[str]:
        if "all" in value:  # every registered recipe, in registry order
            from quantbench.recipes import list_recipes

            value = list(dict.fromkeys([r.name for r in list_recipes()] + value))
            value.remove("all")
        return value

    @field_validator("measure")
    @classmethod
    def _known_measures(cls, value: list[str]) -> list[str]:
        for m in value:
            if m not in MEASURES:
                raise ValueError(str(unknown_name("measure", m, MEASURES)))
        return value

    @field_validator("models")
    @classmethod
    def _distinct_models(cls, value: list[ModelRef]) -> list[ModelRef]:
        seen: set[str] = set()
        for ref in value:
            if ref.name in seen:
                raise ValueError(f"model '{ref.name}' is listed twice")
            seen.add(ref.name)
        return value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        from quantbench.device import DEVICES

        if value not in DEVICES:
            raise ValueError(str(unknown_name("device", value, DEVICES)))
        return value

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value not in PRESETS:
            raise ValueError(str(unknown_name("preset", value, PRESETS)))
        return value

    @field_validator("executor")
    @classmethod
    def _known_executor(cls, value: str) -> str:
        if value not in EXECUTORS:
            raise ValueError(str(unknown_name("executor", value, EXECUTORS)))
        return value

    @field_validator("ray_address")
    @classmethod
    def _no_ray_client(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("ray://"):
            raise ValueError(
                f"ray_address {value}: Ray Client (ray://) cannot stream a model's cells as "
                "it measures; give the cluster's address HOST:6379 (what 'ray start --head' "
                "printed) or auto, from a machine in the cluster's network"
            )
        return value

    @field_validator("on")
    @classmethod
    def _known_selectors(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            from quantbench.runner.sweeps import check_selector

            for sel in value:
                try:
                    check_selector(sel)
                except QuantbenchError as e:
                    raise ValueError(str(e)) from None
        return value


_FIELDS = set(RunSpec.model_fields)
_REF_FIELDS = set(ModelRef.model_fields)
_KEYS = sorted(_FIELDS | {BATCH_SIZES_ALIAS})


def _check_keys(data: dict[str, Any], where: str = "") -> None:
    """Refuse an unknown setting, naming the closest valid one."""
    for key in data:
        if key not in _FIELDS and key != BATCH_SIZES_ALIAS:
            e = unknown_name("setting", str(key), _KEYS)
            raise QuantbenchError(f"{where}{e}") if where else e


def load_yaml(path: str | Path) -> dict[str, Any]:
    """An experiment file's settings (unknown keys refused; values checked later)."""
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise QuantbenchError(f"cannot read config '{path}': {e.strerror}") from None
    except UnicodeDecodeError:
        from quantbench.fileformat import not_a

        raise not_a(path, "a YAML config", "not UTF-8 text") from None
    except yaml.YAMLError as e:
        raise QuantbenchError(
            f"config '{path}' is not valid YAML: {first_line(e, with_type=False)}"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise QuantbenchError(f"config '{path}' must be a mapping of settings")
    if True in data and "on" not in data:  # YAML 1.1 reads the key `on:` as true
        data["on"] = data.pop(True)
    _check_keys(data, f"config '{path}': ")
    return data


def dataset_arg(value: Any, what: str = "dataset") -> Any:
    """A dataset given as a path, a mapping, or (on the command line) an inline YAML
    mapping such as ``'{path: data/val, resize: 16, crop: 16}'``; a DatasetSpec."""
    from quantbench.datasets import parse_dataset

    if isinstance(value, str) and value.lstrip().startswith("{"):
        import yaml

        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise QuantbenchError(
                f"{what} '{value}' is not a valid inline mapping: {first_line(e, with_type=False)}"
            ) from None
    return parse_dataset(value, what)


# The keys of a model entry in a file (or an override): ModelRef's, plus shorthands.
_ENTRY_KEYS = sorted(_REF_FIELDS | {"arch", "path", "num_classes"})


def _model_ref(entry: Any) -> ModelRef:
    """A model entry of a file or an override (a name, or a mapping with the shorthands
    ``source: torchvision|hf|python``, ``arch``, ``path``, ``num_classes``) as a ModelRef;
    its datasets are read (cheap checks) now."""
    if isinstance(entry, ModelRef):
        return entry
    if isinstance(entry, str):
        return ModelRef(entry)
    if not isinstance(entry, dict) or "name" not in entry:
        raise QuantbenchError(f"a model entry needs a 'name', got {entry!r}")
    e = dict(entry)
    name = str(e["name"])
    for key in e:
        if key not in _ENTRY_KEYS:
            raise QuantbenchError(
                f"model '{name}': {unknown_name('setting', str(key), _ENTRY_KEYS)}"
            )
    source, arch, path = e.pop("source", None), e.pop("arch", None), e.pop("path", None)
    if source is not None and not (isinstance(source, str) and ":" in source):
        kinds = {"torchvision": "tv", "hf": "hf", "python": "py"}
        if source not in kinds:
            raise unknown_name(f"model '{name}': source", str(source), sorted(kinds))
        kind = kinds[source]
        needs = {
            "tv": (arch, "arch (a torchvision builder, e.g. resnet18)"),
            "hf": (path or arch, "path (a save_pretrained directory) or a hub id"),
            "py": (path and arch, "path (a .py file) and arch (the class or function in it)"),
        }
        target, need = needs[kind]
        if not target:
            raise QuantbenchError(f"model '{name}': source {source} needs {need}")
        e["source"] = f"py:{path}:{arch}" if kind == "py" else f"{kind}:{target}"
        if kind == "tv" and path is not None and e.get("weights") is None:
            e["weights"] = str(path)  # the state_dict file
    elif source is not None:
        e["source"] = source  # already what to load: tv:<arch>, hf:<dir>, py:<file>:<obj>
    elif arch is not None or path is not None:
        raise QuantbenchError(f"model '{name}': arch/path need a source (torchvision or hf)")
    for key in ("dataset", "calibration"):
        if e.get(key) is not None:
            e[key] = dataset_arg(e[key], f"model '{name}': {key}").to_dict()
    if "num_classes" in e:
        e["options"] = {**(e.get("options") or {}), "num_classes": e.pop("num_classes")}
    ref = ModelRef(**e)
    if "num_classes" in ref.options:
        n = ref.options["num_classes"]
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise QuantbenchError(
                f"model '{name}': setting 'num_classes' must be an integer > 0, got {n!r}"
            )
    return ref


def spec_from_dict(d: dict[str, Any]) -> RunSpec:
    """The RunSpec a stored run was made with (``RunSpec.to_dict``), validated again.
    Keys an older or newer quantbench stored that this one lacks are dropped."""
    known = {k: v for k, v in d.items() if k in _FIELDS}
    known["models"] = [
        {k: v for k, v in m.items() if k in _REF_FIELDS} if isinstance(m, dict) else m
        for m in known.get("models") or []
    ]
    spec = RunSpec(**known)
    validate(spec)
    return spec


def _layer(data: dict[str, Any]) -> dict[str, Any]:
    """One source of settings with ``batch_sizes`` expanded into both families (a
    family's own key in the same source wins)."""
    return RunSpec._expand_batch_sizes(data)


def build_spec(
    preset: str | None = None,
    config: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunSpec:
    """Settings from, later winning: the defaults, the preset (``preset``, else the
    overrides' or the file's ``preset``), the YAML ``config``, the ``overrides`` (CLI
    flags or Python; None values are unset). Unknown keys are refused; validated."""
    given = dict(overrides or {})
    _check_keys(given)
    given = {k: v for k, v in given.items() if v is not None}
    file = load_yaml(config) if config is not None else {}
    name = preset or given.pop("preset", None) or file.get("preset") or "lab"
    if not isinstance(name, str) or name not in PRESETS:
        raise unknown_name("preset", str(name), PRESETS)
    merged: dict[str, Any] = {}
    for layer in (PRESETS[name], file, given):
        merged.update(_layer(layer))
    merged["preset"] = name
    if "models" in merged:
        models = merged["models"]
        if isinstance(models, str):
            models = parse_name_list(models, "models")
        if isinstance(models, (list, tuple)):
            if not models:
                raise QuantbenchError("models must not be empty")
            merged["models"] = [_model_ref(m) for m in models]
    for key in ("dataset", "calibration", "train_dataset"):
        if merged.get(key) is not None:
            merged[key] = dataset_arg(merged[key], key.replace("_", " ")).to_dict()
    spec = RunSpec(**merged)
    validate(spec)
    return spec


def validate(spec: RunSpec) -> None:
    """The checks that need the world (the model checks each value on its own): recipes
    and their options, models and their limits, weights files, datasets, the engine, and
    settings that must agree. Raise QuantbenchError on the first problem."""
    from quantbench import models as zoo
    from quantbench.recipes import get_recipe

    if not spec.models:
        raise QuantbenchError("models must not be empty")
    from quantbench.device import resolve_device

    spec.device = resolve_device(spec.device)  # auto -> cpu|cuda, once
    for r in spec.recipes:
        get_recipe(r)
    for r, options in spec.recipe_options.items():
        get_recipe(str(r), options)
    has_data = spec.dataset is not None or any(ref.dataset for ref in spec.models)
    if spec.fallback and "fidelity" not in spec.measure and not has_data:
        raise QuantbenchError(
            "--fallback (or --max-accuracy-drop) needs a bar to meet: give --dataset (the "
            "accuracy bar) or measure fidelity (add 'fidelity' to --measure)"
        )
    if spec.timeout_s is not None and spec.timeout_s <= spec.min_time_s:
        raise QuantbenchError(
            f"timeout_s ({spec.timeout_s:g} s per model) must be longer than min_time_s "
            f"({spec.min_time_s:g} s per point): no point could finish"
        )
    from quantbench.shapes import ref_size_for

    if spec.executor != "ray" and (spec.on is not None or spec.ray_address is not None):
        raise QuantbenchError("--on and --ray-address need --executor ray")
    if spec.executor == "ray" and spec.eval_fn:
        raise QuantbenchError(
            "eval_fn lives in this Python process: Ray nodes cannot call it; give --dataset"
        )
    if spec.executor != "ray":  # on Ray, each node resolves its own (ARM: qnnpack)
        resolve_engine(spec)
    for ref in spec.models:
        info = zoo.model_info(ref.load_name)
        if info.family == zoo.TEXT and "latency" in spec.measure:
            limit = info.max_input_size
            # the sweep, the reference point, and the calibration / fidelity inputs
            sizes = sweep_sizes(spec, ref, info) + [reference_shape(spec, ref, info)[1]]
            for n in sizes + [ref_size_for(zoo.TEXT, spec)]:
                if limit is not None and n > limit:
                    raise QuantbenchError(
                        f"sequence length {n} is beyond {ref.name}'s maximum of {limit} positions"
                    )
        weights = ref.weights or spec.weights
        if weights not in ("auto", "random", "pretrained"):
            if not Path(weights).expanduser().exists():
                raise QuantbenchError(
                    f"weights '{weights}' for {ref.name} is not 'random', 'pretrained' or an "
                    "existing path"
                )
            # Local weights are read now: a corrupt file or one that does not fit the
            # architecture is an input error, found before any measurement starts.
            zoo.load_model(ref.load_name, weights, spec.seed, ref.options)
        _check_data(spec, ref, info)


def resolve_engine(spec: RunSpec) -> None:
    """Set ``spec.engine`` to this machine's default when a recipe needs one; raise when
    the engine given is not available here."""
    from quantbench.env import check_engine

    if any(r != "fp32" for r in spec.recipes):
        spec.engine = check_engine(spec.engine)
    elif spec.engine is not None:
        check_engine(spec.engine)


def _check_data(spec: RunSpec, ref: ModelRef, info: Any) -> None:
    """Read every dataset a model will use now: a missing column, an undecodable image
    folder or a missing tokenizer is an input error, found before anything is measured."""
    from quantbench import datasets
    from quantbench.evaluate import check_family

    tok = None
    if ref.load_name.startswith("hf:") and Path(ref.load_name[3:]).expanduser().is_dir():
        tok = str(Path(ref.load_name[3:]).expanduser())
    for what, d in (
        ("dataset", ref.dataset or spec.dataset),
        ("calibration", ref.calibration or spec.calibration),
        ("train dataset", spec.train_dataset),
    ):
        if d is None:
            continue
        ds_spec = datasets.parse_dataset(d, what)
        check_family(ds_spec, info.family, ref.name, what)
        if info.family == "text" and tok is None:
            raise QuantbenchError(
                f"{what} '{ds_spec.path}' is text: model '{ref.name}' needs a local directory "
                "(hf:<dir>) holding its tokenizer"
            )
        ds = datasets.load_dataset(ds_spec, tokenizer_dir=tok)
        n = _num_outputs(ref, info, tok)
        if ds.classes is not None and n:
            datasets.check_labels(ds, n, ref.name)


def _num_outputs(ref: ModelRef, info: Any, tok_dir: str | None) -> int | None:
    """Classes a classifier outputs, where known without building it."""
    from quantbench import models as zoo

    if info.family == "vision" and not ref.load_name.startswith(("hf:", "py:")):
        return int(ref.options.get("num_classes", 1000))  # torchvision
    if tok_dir is None:
        return None
    config = zoo._hf_config(tok_dir)  # config.json only, no weights
    if zoo._is_sequence_classifier(config) or zoo._is_image_classifier(config):
        return int(config.num_labels)
    return None


def sweep_sizes(spec: RunSpec, ref: ModelRef, info: Any) -> list[int]:
    """Input sizes (image px or sequence length) of the size sweep for one model."""
    from quantbench.models import TEXT

    if info.family != TEXT:
        return ref.image_sizes or spec.image_sizes
    if ref.seq_lens:
        return ref.seq_lens
    if spec.seq_lens:
        return spec.seq_lens
    sizes = list(DEFAULT_SEQ_LENS)
    if info.max_input_size and info.max_input_size >= 1024:
        sizes.append(1024)  # long-context models: show where they differ
    return sizes


def reference_shape(spec: RunSpec, ref: ModelRef, info: Any) -> tuple[int, int]:
    """(batch, input size) of one model's reference point: the point the report's single
    numbers quote, and where the batch sweep runs. The size is ``ref_image_size`` /
    ``ref_seq_len`` when set (then measured there), else the model's sweep size nearest
    the lab's 224 px / 128 tokens (ties: the smaller); the batch is ``ref_batch``, else 1.
    Never a shape that is not measured: :func:`sweep_points` includes it."""
    from quantbench.models import TEXT

    family = "text" if info.family == TEXT else "vision"
    size = spec.ref_seq_len if family == "text" else spec.ref_image_size
    if size is None:
        lab = LAB_REF_SIZES[family]
        size = min(sweep_sizes(spec, ref, info), key=lambda s: (abs(s - lab), s))
    return spec.ref_batch or LAB_REF_BATCH, size


def sweep_points(spec: RunSpec, ref: ModelRef, info: Any) -> list[tuple[int, int, str]]:
    """(batch_size, input_size, sweep) for one model: size sweep at batch 1, then the
    batch sweep (with the reference batch) at the reference size. The shared point is
    listed once."""
    from quantbench.models import TEXT

    ref_batch, ref_size = reference_shape(spec, ref, info)
    batches = spec.text_batch_sizes if info.family == TEXT else spec.vision_batch_sizes
    batches = sorted(set(batches) | {ref_batch})
    points = [(1, s, "input_size") for s in sweep_sizes(spec, ref, info)]
    have = {(b, s) for b, s, _ in points}
    points += [(b, ref_size, "batch_size") for b in batches if (b, ref_size) not in have]
    if spec.grid:  # the rest of the batch x size grid (the speedup heatmap's cells)
        have = {(b, s) for b, s, _ in points}
        points += [(b, s, "grid") for b in batches for s in sweep_sizes(spec, ref, info)
                   if (b, s) not in have]  # fmt: skip
    return points


def default_out_dir() -> Path:
    """quantbench-runs/<timestamp>."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("quantbench-runs") / stamp
