"""The Python API: the CLI's commands as functions, taking names or objects.

Everything the command line does is one call here, and the same validation applies:
bad input raises :class:`~quantbench.errors.QuantbenchError` with one clear line.

Example (see README "Python API")::

    import quantbench
    result = quantbench.run(models=["resnet18"], recipes=["dynamic-int8"], measure=["size"])
    print(result.report, [(c.recipe, c.size_bytes) for c in result.results])

In-memory objects: a ``torch.nn.Module`` as a model, a DataLoader or any iterable of
batches as ``dataset`` / ``calibration`` / ``train_dataset``, and ``eval_fn(model) ->
float`` as the metric the accuracy bar, the recommendation and the fallback search
judge by. A run that uses one measures its models in this process (workers could not
see them) and says so in a note.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from quantbench import handover
from quantbench.errors import QuantbenchError
from quantbench.inert import guard_terminal

ModelArg = Any  # a model name, an nn.Module, or a mapping (a config file's model entry)


def model(
    module: Any,
    name: str | None = None,
    family: str | None = None,
    make_inputs: Callable[..., tuple] | None = None,
    num_outputs: int | None = None,
    input_spec: Any = None,
) -> dict[str, str]:
    """An in-memory module as a model entry for :func:`run` (``name`` labels it in results).

    ``family`` (vision, text, tensor) is taken from the data given to :func:`run` when
    left out: its inputs are then that data's first batch (shapes, dtypes, values), and
    ``input_spec`` says which dims besides the batch are dynamic and which batch element
    is the label (:mod:`quantbench.models.tensor`). ``make_inputs(batch_size,
    input_size, seed=0) -> tuple`` builds synthetic inputs instead."""
    from quantbench.models import in_memory_model

    source = in_memory_model(
        module, name, family, make_inputs, num_outputs=num_outputs, input_spec=input_spec
    )
    return {"name": handover.label(source), "source": source}


def _model_entry(m: ModelArg) -> Any:
    import torch

    if isinstance(m, Path):  # a file path: an ONNX file (model.onnx)
        return str(m)
    return model(m) if isinstance(m, torch.nn.Module) else m


def _data_arg(value: Any, what: str, entries: list[Any] | None = None) -> Any:
    """A path, a mapping, or batches (registered in memory): what a spec takes. Which
    tensors of a batch are inputs is read from the first in-memory model's forward (and
    its ``input_spec``'s labels)."""
    if value is None or isinstance(value, (str, Path, dict)):
        return str(value) if isinstance(value, Path) else value
    if isinstance(value, Iterable):
        from quantbench.datasets import memory_dataset
        from quantbench.datasets.batches import params_of
        from quantbench.models.tensor import labels_of

        first = next((e for e in entries or [] if isinstance(e, dict) and "source" in e), None)
        if first is None or not handover.is_memory(first["source"]):
            return memory_dataset(value, what)
        lm = handover.get(first["source"], "model")
        return memory_dataset(value, what, params_of(lm.module), labels_of(lm.input_spec))
    raise QuantbenchError(
        f"{what} must be a path, a mapping or batches, got {type(value).__name__}"
    )


def run(
    models: ModelArg | list[ModelArg] | None = None,
    recipes: str | list[str] | None = None,
    *,
    preset: str | None = None,
    config: str | Path | None = None,
    dataset: Any = None,
    calibration: Any = None,
    train_dataset: Any = None,
    eval_fn: Callable[[Any], float] | None = None,
    progress: bool = False,
    **settings: Any,
) -> Any:
    """Measure ``models`` x ``recipes`` (plus every setting of ``quantbench run``, by its
    key: ``measure``, ``image_sizes``, ``out``, ``store``, ...); a
    :class:`~quantbench.runner.RunResult`. Unknown settings are an error."""
    from quantbench.runner.checks import build_spec
    from quantbench.runner.lifecycle import run as _run

    overrides = dict(settings)
    if models is not None:
        listed = models if isinstance(models, (list, tuple)) else [models]
        overrides["models"] = [_model_entry(m) for m in listed]
    if recipes is not None:
        overrides["recipes"] = recipes
    for key, value in (("dataset", dataset), ("calibration", calibration),
                       ("train_dataset", train_dataset)):  # fmt: skip
        if value is not None:
            overrides[key] = _data_arg(value, key, overrides.get("models"))
    if eval_fn is not None:
        if not callable(eval_fn):
            raise QuantbenchError("eval_fn must be a function: eval_fn(model) -> float")
        overrides["eval_fn"] = handover.put("eval_fn", eval_fn, getattr(eval_fn, "__name__", None))
    spec = build_spec(preset=preset, config=config, overrides=overrides)
    if uses_memory(spec):
        spec.launch.isolate = False  # a worker process could not see this process's objects
    with guard_terminal():  # what a run prints (progress, warnings) shows no control codes
        return _run(spec, progress=progress)


def quantize(
    model: ModelArg,
    recipe: str,
    output: str | Path,
    *,
    config: str | Path | None = None,
    force: bool = False,
    calibration: Any = None,
    dataset: Any = None,
    eval_fn: Callable[[Any], float] | None = None,
    **settings: Any,
) -> Any:
    """Write the artifact ``run`` measures for ``model`` x ``recipe`` with the same
    settings (calibration data, ``recipe_options``, ``fallback`` with ``dataset`` or
    ``eval_fn`` as its bar, ...); a :class:`~quantbench.artifacts.Written`.

    A module given in memory has no class another process could rebuild, so its
    checkpoint recipes (fp32, fp16, bf16, torchao-*) ship a ``.pt2`` program
    (``torch.export``; name the output ``*.pt2``), and one that ``torch.export`` cannot
    capture (torch.ao's eager int8) is refused in one line; ONNX (``ort-*``) and
    ``pt2e-static-int8`` files run anywhere."""
    from quantbench.build import quantize as _quantize

    entry = _model_entry(model)
    name = entry["source"] if isinstance(entry, dict) and "source" in entry else entry
    if not isinstance(name, str):
        raise QuantbenchError(f"model must be a name or an nn.Module, got {type(model).__name__}")
    for key, value in (("calibration", calibration), ("dataset", dataset)):
        if value is not None:
            settings[key] = _data_arg(value, key, [entry])
    if eval_fn is not None:
        settings["eval_fn"] = handover.put("eval_fn", eval_fn, getattr(eval_fn, "__name__", None))
    with guard_terminal():
        return _quantize(name, recipe, output, config=config, force=force, **settings)


def uses_memory(spec: Any) -> bool:
    """Whether a spec refers to objects held by this process (models, data, eval_fn)."""
    names = [getattr(r, "source", None) or r.name for r in spec.target.models]
    data = [spec.data.dataset, spec.data.calibration, spec.data.train_dataset]
    data += [d for r in spec.target.models for d in (r.dataset, r.calibration)]
    names += [d.get("path") for d in data if isinstance(d, dict)]
    names.append(getattr(spec.data, "eval_fn", None))
    return any(handover.is_memory(n) for n in names)


def compare(
    run_ids: list[str],
    store: str | None = None,
    out: str | Path | None = None,
    *,
    fail_if_slower: float | None = None,
    fail_if_less_accurate: float | None = None,
    fail_if_larger: float | None = None,
) -> Any:
    """Compare runs (the first is the baseline), each named by its id, an unambiguous id
    prefix, its run directory or its results.json; a
    :class:`~quantbench.report.compare.CompareResult`: ``gates.failed`` says whether a
    gate failed, ``warnings`` how the runs differ besides the code, ``to_dict()`` what
    ``compare --format json`` prints. A gate with nothing to check raises."""
    from quantbench.report.compare import run_compare

    return run_compare(
        list(run_ids), store, None if out is None else str(out), fail_if_slower,
        fail_if_less_accurate, fail_if_larger,
    )  # fmt: skip


def load_artifact(path: str | Path, *, trust_code: bool = False) -> Any:
    """A file written by ``quantize`` or ``run --save-artifacts``, as a callable module:
    called like the model it came from (by position or keyword), it returns what ``run``
    measured (:mod:`quantbench.artifacts.contract`).

    A file that carries code (a ``.pt2`` program, a ``py:`` model's checkpoint with its
    source) is refused unless ``trust_code=True``: pass it only for files you trust."""
    from quantbench.artifacts import load_artifact as _load

    return _load(path, trust_code=trust_code)
