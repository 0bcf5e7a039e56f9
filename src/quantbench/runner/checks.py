"""The checks a run's settings need the world for, before anything is measured.

:mod:`quantbench.settings` checks each value on its own; here the names and files the
settings point at are looked up: recipes and their options, models and their limits,
weights files, datasets (read now: a missing column is an input error, not a failed
cell), the quantized engine, the executor and Ray node selectors, and settings that must
agree. :func:`build_spec` and :func:`spec_from_dict` are the settings with these checks:
what the CLI, the Python API and ``--resume`` run with.

Example::

    >>> spec = build_spec(overrides={"models": "resnet18", "measure": "size"})
    >>> spec.target.device, spec.quant.recipes
    ('cpu', ['fp32', 'dynamic-int8', 'static-int8'])
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from quantbench.errors import QuantbenchError, clip, unknown_name
from quantbench.settings import ModelRef, RunSpec, load_spec


def build_spec(
    preset: str | None = None,
    config: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunSpec:
    """Settings from the defaults, a preset, a YAML file and overrides, later winning
    (:func:`quantbench.settings.load_spec`), checked against the world (:func:`validate`)."""
    spec = load_spec(preset, config, overrides)
    validate(spec)
    return spec


def spec_from_dict(d: dict[str, Any]) -> RunSpec:
    """The RunSpec a stored run was made with (``RunSpec.to_dict``), checked again."""
    spec = RunSpec.from_dict(d)
    validate(spec)
    return spec


def validate(spec: RunSpec) -> None:
    """The checks that need the world (the settings check each value on their own):
    recipes and their options, models and their limits, weights files, datasets, the
    engine, the executor, and settings that must agree. Resolves what is resolved once
    (``device: auto``, ``recipes: all``, the engine, data paths), in place. Raise
    QuantbenchError on the first problem."""
    with _paths_checked():
        _read_data_settings(spec)
        _validate(spec)


@contextlib.contextmanager
def _paths_checked() -> Iterator[None]:
    """A path the system refuses to even look at (too long, a symlink loop, ...) is an
    input error, not a crash: ``Path.exists`` raises for those instead of saying no."""
    try:
        yield
    except OSError as e:
        where = f": '{clip(str(e.filename))}'" if e.filename else ""
        raise QuantbenchError(
            f"cannot use a path in the settings ({e.strerror or e}){where}"
        ) from None


def _read_data_settings(spec: RunSpec) -> None:
    """Every dataset setting as its checked, complete form (path exists, kind known and
    fitting, keys valid): what a run stores."""
    from quantbench.datasets import parse_dataset

    for ref in spec.target.models:
        for key in ("dataset", "calibration"):
            if getattr(ref, key) is not None:
                d = parse_dataset(getattr(ref, key), f"model '{clip(ref.name)}': {key}")
                setattr(ref, key, d.to_dict())
    data = spec.data
    for key in ("dataset", "calibration", "train_dataset"):
        if getattr(data, key) is not None:
            setattr(data, key, parse_dataset(getattr(data, key), key.replace("_", " ")).to_dict())


def expand_recipes(names: list[str]) -> list[str]:
    """``all`` as every registered recipe, in registry order (others kept after)."""
    if "all" not in names:
        return names
    from quantbench.recipes import list_recipes

    names = list(dict.fromkeys([r.name for r in list_recipes()] + names))
    names.remove("all")
    return names


def _validate(spec: RunSpec) -> None:
    from quantbench import models as zoo
    from quantbench.device import resolve_device
    from quantbench.recipes import get_recipe

    target, quant, judge, data, launch = spec.target, spec.quant, spec.judge, spec.data, spec.launch
    if not target.models:
        raise QuantbenchError("models must not be empty")
    _check_executor(launch.executor)
    _check_selectors(launch.on)
    target.device = resolve_device(target.device)  # auto -> cpu|cuda, once
    quant.recipes = expand_recipes(quant.recipes)
    for r in quant.recipes:
        get_recipe(r)
    for r, options in quant.recipe_options.items():
        get_recipe(str(r), options)
    has_data = data.dataset is not None or any(ref.dataset for ref in target.models)
    if quant.fallback and "fidelity" not in judge.measure and not has_data:
        raise QuantbenchError(
            "--fallback (or --max-accuracy-drop) needs a bar to meet: give --dataset (the "
            "accuracy bar) or measure fidelity (add 'fidelity' to --measure)"
        )
    if data.limit is not None and not has_data and not data.eval_fn:
        raise QuantbenchError(
            f"limit ({data.limit} examples) selects evaluation data, and there is none: "
            "give --dataset, or drop --limit"
        )
    if launch.executor != "ray" and (launch.on is not None or launch.ray_address is not None):
        raise QuantbenchError("--on and --ray-address need --executor ray")
    if launch.executor == "ray" and data.eval_fn:
        raise QuantbenchError(
            "eval_fn lives in this Python process: Ray nodes cannot call it; give --dataset"
        )
    if launch.executor != "ray":  # on Ray, each node resolves its own (ARM: qnnpack)
        resolve_engine(spec)
    for ref in target.models:
        info = zoo.model_info(ref.load_name, ref.options)
        _check_lengths(spec, ref, info)
        weights = ref.weights or target.weights
        if weights not in ("auto", "random", "pretrained"):
            if not Path(weights).expanduser().exists():
                raise QuantbenchError(
                    f"weights '{weights}' for {ref.name} is not 'random', 'pretrained' or an "
                    "existing path"
                )
            # Local weights are read now: a corrupt file or one that does not fit the
            # architecture is an input error, found before any measurement starts.
            zoo.load_model(ref.load_name, weights, target.seed, ref.options)
        _check_data(spec, ref, info)


def _check_executor(name: str) -> None:
    """The executor is one of the registry's (:mod:`quantbench.runner.executors`: adding
    one is a module there, the settings name it as they are)."""
    from quantbench.runner.executors import executor_names

    names = executor_names()
    if name not in names:
        raise unknown_name("executor", name, names)


def _check_selectors(selectors: list[str] | None) -> None:
    """``--on``: each selector valid (which nodes match is the Ray executor's business)."""
    from quantbench.runner.sweeps import check_selector

    for sel in selectors or []:
        check_selector(sel)


def _check_lengths(spec: RunSpec, ref: ModelRef, info: Any) -> None:
    """A text model is never timed, calibrated or compared beyond its positions."""
    from quantbench import models as zoo
    from quantbench.shapes import ref_size_for, reference_shape, sweep_sizes

    if info.family != zoo.TEXT or "latency" not in spec.judge.measure:
        return
    limit = info.max_input_size
    # the sweep, the reference point, and the calibration / fidelity inputs
    sizes = sweep_sizes(spec, ref, info) + [reference_shape(spec, ref, info)[1]]
    for n in sizes + [ref_size_for(zoo.TEXT, spec)]:
        if limit is not None and n > limit:
            raise QuantbenchError(
                f"sequence length {n} is beyond {ref.name}'s maximum of {limit} positions"
            )


def resolve_engine(spec: RunSpec) -> None:
    """Set the spec's engine to this machine's default when a recipe needs one; raise
    when the engine given is not available here."""
    from quantbench.env import check_engine

    target = spec.target
    if any(r != "fp32" for r in spec.quant.recipes):
        target.engine = check_engine(target.engine)
    elif target.engine is not None:
        check_engine(target.engine)


def _check_data(spec: RunSpec, ref: ModelRef, info: Any) -> None:
    """Read every dataset a model will use now: a missing column, an undecodable image
    folder or a missing tokenizer is an input error, found before anything is measured."""
    from quantbench import datasets
    from quantbench.evaluate import check_family
    from quantbench.models.onnxfile import check_data as check_onnx_data
    from quantbench.models.onnxfile import onnx_path, tokenizer_dir

    tok = None
    if ref.load_name.startswith("hf:") and Path(ref.load_name[3:]).expanduser().is_dir():
        tok = str(Path(ref.load_name[3:]).expanduser())
    onnx_file = onnx_path(ref.load_name)
    if onnx_file is not None:  # an ONNX file: the tokenizer saved beside it, if any
        tok = tokenizer_dir(Path(onnx_file).expanduser().resolve())
    for what, d in (
        ("dataset", ref.dataset or spec.data.dataset),
        ("calibration", ref.calibration or spec.data.calibration),
        ("train dataset", spec.data.train_dataset),
    ):
        if d is None:
            continue
        ds_spec = datasets.parse_dataset(d, what)
        check_family(ds_spec, info.family, ref.name, what)
        check_onnx_data(ref.load_name, ref.options, ds_spec, what)
        if info.family == "text" and tok is None:
            raise QuantbenchError(
                f"{what} '{ds_spec.path}' is text: model '{ref.name}' needs a local directory "
                "(hf:<dir>, or an ONNX file's own directory) holding its tokenizer"
            )
        ds = datasets.load_dataset(ds_spec, tokenizer_dir=tok)
        n = _num_outputs(ref, info, tok)
        if ds.classes is not None and n:
            datasets.check_labels(ds, n, ref.name)


def _num_outputs(ref: ModelRef, info: Any, tok_dir: str | None) -> int | None:
    """Classes a classifier outputs, where known without building it."""
    from quantbench import models as zoo
    from quantbench.models.onnxfile import onnx_path, read_onnx

    if onnx_path(ref.load_name) is not None:  # the width of the graph's output, if fixed
        return read_onnx(onnx_path(ref.load_name), ref.options)[3]
    if info.family == "vision" and not ref.load_name.startswith(("hf:", "py:")):
        return int(ref.options.get("num_classes", 1000))  # torchvision
    if tok_dir is None:
        return None
    config = zoo._hf_config(tok_dir)  # config.json only, no weights
    if zoo._is_sequence_classifier(config) or zoo._is_image_classifier(config):
        return int(config.num_labels)
    return None
