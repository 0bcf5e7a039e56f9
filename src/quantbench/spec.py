"""Experiment spec: what to run (models x recipes x sweeps x measures), presets, YAML.

Everything is validated here, before any model is built, so bad input costs nothing.

Example::

    >>> from quantbench.spec import build_spec
    >>> spec = build_spec(preset="quick", overrides={"measure": ["size"]})
    >>> [m.name for m in spec.models]
    ['resnet18', 'distilbert']
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantbench.errors import QuantbenchError, first_line, unknown_name
from quantbench.shapes import LAB_REF_SIZES

MEASURES = ("size", "latency", "fidelity")

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


@dataclass
class ModelRef:
    """One model entry: name plus optional per-model weights, options and sweeps."""

    name: str
    weights: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    image_sizes: list[int] | None = None
    seq_lens: list[int] | None = None
    source: str | None = None  # what to load when ``name`` is only a label: tv:<arch>, hf:<dir>
    dataset: dict[str, Any] | None = None  # this model's evaluation data (else the run's)
    calibration: dict[str, Any] | None = None  # this model's calibration data (else the run's)

    @property
    def load_name(self) -> str:
        return self.source or self.name


@dataclass
class RunSpec:
    models: list[ModelRef] = field(default_factory=lambda: [ModelRef(m) for m in LAB_MODELS])
    recipes: list[str] = field(default_factory=lambda: list(LAB_RECIPES))
    image_sizes: list[int] = field(default_factory=lambda: list(DEFAULT_IMAGE_SIZES))
    vision_batch_sizes: list[int] = field(default_factory=lambda: list(DEFAULT_BATCH_SIZES))
    seq_lens: list[int] | None = None  # None: family default, plus 1024 for long models
    text_batch_sizes: list[int] = field(default_factory=lambda: list(DEFAULT_BATCH_SIZES))
    ref_image_size: int = LAB_REF_SIZES["vision"]
    ref_seq_len: int = LAB_REF_SIZES["text"]
    measure: list[str] = field(default_factory=lambda: list(MEASURES))
    weights: str = "auto"
    engine: str | None = None
    threads: int | None = None
    seed: int = 0
    calib_batches: int = 8
    calib_batch_size: int = 4
    fidelity_batch_size: int = 4
    warmup: int = 2
    min_runs: int = 10
    min_time_s: float = 0.5
    max_time_s: float = 30.0
    max_warmup: int = 20
    min_cosine: float = 0.99  # "keeps fidelity": cosine to fp32 at least this
    min_top1: float = 0.99  # ... and top-1 agreement (classifiers) at least this
    timeout_s: float | None = None
    isolate: bool = True
    pin: bool = False
    compile: bool = False  # add <recipe>+compile variants of the eager torch recipes
    grid: bool = False  # time every batch size x input size, not only the two sweeps
    save_artifacts: bool = False  # write each measured variant's file under <out>/artifacts/
    # Accuracy on real data (issue 5). Dataset specs are dicts (see quantbench.datasets).
    dataset: dict[str, Any] | None = None  # evaluation data for every model (per-model wins)
    limit: int | None = None  # evaluate on a seeded subset of this many examples
    calibration: dict[str, Any] | None = None  # calibration data for static recipes
    calibration_samples: int = 128
    eval_batch_size: int = 32
    max_accuracy_drop: float = 0.01  # pass: metric >= (1 - this) x fp32's (MLPerf: 99%)
    fallback: bool = False  # add <recipe>+fallback variants that keep sensitive layers float
    fallback_max_layers: int = 8
    train_dataset: dict[str, Any] | None = None  # labelled data for qat-int8
    qat_steps: int = 100
    qat_lr: float = 1e-4
    out: str | None = None
    store: str | None = None  # results database: a path or SQLAlchemy URL (default ./quantbench.db)
    preset: str = "lab"
    # Per-recipe config overrides, {recipe: {field: value}} (see Recipe.with_options).
    recipe_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_INT_LISTS = ("image_sizes", "vision_batch_sizes", "seq_lens", "text_batch_sizes")
_FIELDS = {f.name for f in dataclasses.fields(RunSpec)}
_REF_FIELDS = {f.name for f in dataclasses.fields(ModelRef)}


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
    items = text.split(",") if isinstance(text, str) else [str(x) for x in text]
    out = [s.strip() for s in items if s.strip()]
    if not out:
        raise QuantbenchError(f"{what} must not be empty")
    return list(dict.fromkeys(out))


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise QuantbenchError(f"cannot read config '{path}': {e.strerror}") from None
    except yaml.YAMLError as e:
        raise QuantbenchError(
            f"config '{path}' is not valid YAML: {first_line(e, with_type=False)}"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise QuantbenchError(f"config '{path}' must be a mapping of settings")
    if "batch_sizes" in data:  # one key for both families, as the CLI flag
        bs = data.pop("batch_sizes")
        data.setdefault("vision_batch_sizes", bs)
        data.setdefault("text_batch_sizes", bs)
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise unknown_name("config key", unknown[0], sorted(_FIELDS - {"preset"}))
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


def _model_ref(entry: Any) -> ModelRef:
    if isinstance(entry, str):
        return ModelRef(entry)
    if not isinstance(entry, dict) or "name" not in entry:
        raise QuantbenchError(f"a model entry needs a 'name', got {entry!r}")
    e = dict(entry)
    ref = ModelRef(name=str(e.pop("name")), weights=e.pop("weights", None))
    source = e.pop("source", None)
    arch, path = e.pop("arch", None), e.pop("path", None)
    if source is not None:
        kinds = {"torchvision": "tv", "hf": "hf", "python": "py"}
        if source not in kinds:
            raise unknown_name(f"model '{ref.name}': source", str(source), sorted(kinds))
        kind = kinds[source]
        needs = {
            "tv": (arch, "arch (a torchvision builder, e.g. resnet18)"),
            "hf": (path or arch, "path (a save_pretrained directory) or a hub id"),
            "py": (path and arch, "path (a .py file) and arch (the class or function in it)"),
        }
        target, need = needs[kind]
        if not target:
            raise QuantbenchError(f"model '{ref.name}': source {source} needs {need}")
        ref.source = f"py:{path}:{arch}" if kind == "py" else f"{kind}:{target}"
        if kind == "tv" and path is not None and ref.weights is None:
            ref.weights = str(path)  # the state_dict file
    elif arch is not None or path is not None:
        raise QuantbenchError(f"model '{ref.name}': arch/path need a source (torchvision or hf)")
    if "dataset" in e:
        ref.dataset = dataset_arg(e.pop("dataset"), f"model '{ref.name}': dataset").to_dict()
    if "calibration" in e:
        ref.calibration = dataset_arg(
            e.pop("calibration"), f"model '{ref.name}': calibration"
        ).to_dict()
    for key in ("image_sizes", "seq_lens"):
        if key in e:
            setattr(ref, key, parse_int_list(e.pop(key), f"{ref.name}: {key}"))
    if "num_classes" in e:
        ref.options["num_classes"] = parse_int_list([e.pop("num_classes")], "num_classes")[0]
    if e:
        raise QuantbenchError(
            f"model '{ref.name}': unknown keys {sorted(e)} (valid: name, source, arch, path, "
            "weights, num_classes, dataset, calibration, image_sizes, seq_lens)"
        )
    return ref


def spec_from_dict(d: dict[str, Any]) -> RunSpec:
    """The RunSpec a stored run was made with (``RunSpec.to_dict``), validated again."""
    known = {k: v for k, v in d.items() if k in _FIELDS}
    models = [ModelRef(**{k: v for k, v in m.items() if k in _REF_FIELDS})
              for m in known.pop("models", [])]  # fmt: skip
    spec = RunSpec(**known)
    spec.models = models
    validate(spec)
    return spec


def build_spec(
    preset: str | None = None,
    config: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunSpec:
    """Preset, then YAML config, then CLI overrides (later wins); validated."""
    preset = preset or "lab"
    if preset not in PRESETS:
        raise unknown_name("preset", preset, PRESETS)
    merged: dict[str, Any] = dict(PRESETS[preset])
    if config is not None:
        merged.update(load_yaml(config))
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    spec = RunSpec(preset=preset)
    for key, value in merged.items():
        if key == "models":
            models = value if isinstance(value, list) else parse_name_list(value, "models")
            if not models:
                raise QuantbenchError("models must not be empty")
            value = [_model_ref(m) for m in models]
        elif key == "recipes":
            value = parse_name_list(value, "recipes")
            if "all" in value:  # every registered recipe, in registry order
                from quantbench.recipes import list_recipes

                value = list(dict.fromkeys([r.name for r in list_recipes()] + value))
                value.remove("all")
        elif key == "measure":
            value = parse_name_list(value, "measure")
        elif key in _INT_LISTS:
            value = parse_int_list(value, key.replace("_", " "))
        elif key in ("dataset", "calibration", "train_dataset") and value is not None:
            value = dataset_arg(value, key.replace("_", " ")).to_dict()
        setattr(spec, key, value)
    validate(spec)
    return spec


def _positive(value: Any, what: str, integer: bool = True, allow_zero: bool = False) -> None:
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or value < 0 or (value == 0 and not allow_zero):
        kind = "an integer" if integer else "a number"
        bound = ">= 0" if allow_zero else "> 0"
        raise QuantbenchError(f"{what} must be {kind} {bound}, got {value!r}")


def validate(spec: RunSpec) -> None:
    """Check names, values and model limits; raise QuantbenchError on the first problem."""
    from quantbench import models as zoo
    from quantbench.recipes import get_recipe

    for r in spec.recipes:
        get_recipe(r)
    if not isinstance(spec.recipe_options, dict):
        raise QuantbenchError(
            "recipe_options must map recipe names to settings, e.g. "
            "{ort-static-int8: {calibrate_method: entropy}}"
        )
    for r, options in spec.recipe_options.items():
        if not isinstance(options, dict):
            raise QuantbenchError(f"recipe_options for '{r}' must be a mapping of settings")
        get_recipe(str(r), options)
    for m in spec.measure:
        if m not in MEASURES:
            raise unknown_name("measure", m, MEASURES)
    for name in (
        "calib_batches", "calib_batch_size", "fidelity_batch_size", "min_runs",
        "calibration_samples", "eval_batch_size", "fallback_max_layers", "qat_steps",
    ):  # fmt: skip
        _positive(getattr(spec, name), name.replace("_", "-"))
    _positive(spec.warmup, "warmup", allow_zero=True)
    _positive(spec.max_warmup, "max-warmup", allow_zero=True)
    for name in ("min_cosine", "min_top1"):
        v = getattr(spec, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise QuantbenchError(f"{name.replace('_', '-')} must be between 0 and 1, got {v!r}")
    _positive(spec.seed, "seed", allow_zero=True)
    if spec.limit is not None:
        _positive(spec.limit, "limit")
    d = spec.max_accuracy_drop
    if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 <= d < 1:
        raise QuantbenchError(f"max-accuracy-drop must be a fraction in [0, 1), got {d!r}")
    has_data = spec.dataset is not None or any(ref.dataset for ref in spec.models)
    if spec.fallback and "fidelity" not in spec.measure and not has_data:
        raise QuantbenchError(
            "--fallback (or --max-accuracy-drop) needs a bar to meet: give --dataset (the "
            "accuracy bar) or measure fidelity (add 'fidelity' to --measure)"
        )
    _positive(spec.qat_lr, "qat-lr", integer=False)
    _positive(spec.min_time_s, "min-time", integer=False, allow_zero=True)
    _positive(spec.max_time_s, "max-time", integer=False)
    if spec.timeout_s is not None:
        _positive(spec.timeout_s, "timeout", integer=False)
        if spec.timeout_s <= spec.min_time_s:
            raise QuantbenchError(
                f"timeout ({spec.timeout_s:g} s per model) must be longer than min-time "
                f"({spec.min_time_s:g} s per point): no point could finish"
            )
    if spec.threads is not None:
        _positive(spec.threads, "threads")
    _positive(spec.ref_image_size, "ref-image-size")
    _positive(spec.ref_seq_len, "ref-seq-len")
    from quantbench.env import check_engine

    if any(r != "fp32" for r in spec.recipes):
        spec.engine = check_engine(spec.engine)
    elif spec.engine is not None:
        check_engine(spec.engine)
    seen = set()
    for ref in spec.models:
        if ref.name in seen:
            raise QuantbenchError(f"model '{ref.name}' is listed twice")
        seen.add(ref.name)
        info = zoo.model_info(ref.load_name)
        if info.family == zoo.TEXT and "latency" in spec.measure:
            limit = info.max_input_size
            for n in sweep_sizes(spec, ref, info) + [spec.ref_seq_len]:
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


def sweep_points(spec: RunSpec, ref: ModelRef, info: Any) -> list[tuple[int, int, str]]:
    """(batch_size, input_size, sweep) for one model: size sweep at batch 1, then the
    batch sweep at the reference size. The shared point is listed once."""
    from quantbench.models import TEXT

    text = info.family == TEXT
    ref_size = spec.ref_seq_len if text else spec.ref_image_size
    batches = spec.text_batch_sizes if text else spec.vision_batch_sizes
    points = [(1, s, "input_size") for s in sweep_sizes(spec, ref, info)]
    have = {(b, s) for b, s, _ in points}
    points += [(b, ref_size, "batch_size") for b in batches if (b, ref_size) not in have]
    if spec.grid:  # the rest of the batch x size grid (the speedup heatmap's cells)
        have = {(b, s) for b, s, _ in points}
        points += [(b, s, "grid") for b in batches for s in sweep_sizes(spec, ref, info)
                   if (b, s) not in have]  # fmt: skip
    return points


def default_out_dir() -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("quantbench-runs") / stamp
