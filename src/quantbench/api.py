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
    family: str = "vision",
    make_inputs: Callable[..., tuple] | None = None,
    num_outputs: int | None = None,
) -> dict[str, str]:
    """An in-memory module as a model entry for :func:`run` (``name`` labels it in results).

    ``make_inputs(batch_size, input_size, seed=0) -> tuple`` builds synthetic inputs
    (default for vision: ``3 x size x size`` images)."""
    from quantbench.models import in_memory_model

    source = in_memory_model(module, name, family, make_inputs, num_outputs=num_outputs)
    return {"name": handover.label(source), "source": source}


def _model_entry(m: ModelArg) -> Any:
    import torch

    if isinstance(m, Path):  # a file path: an ONNX file (model.onnx)
        return str(m)
    return model(m) if isinstance(m, torch.nn.Module) else m


def _data_arg(value: Any, what: str) -> Any:
    """A path, a mapping, or batches (registered in memory): what a spec takes."""
    if value is None or isinstance(value, (str, Path, dict)):
        return str(value) if isinstance(value, Path) else value
    if isinstance(value, Iterable):
        from quantbench.datasets import memory_dataset

        return memory_dataset(value, what)
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
            overrides[key] = _data_arg(value, key)
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

    An in-memory module's state_dict artifact is rebuilt by this process only (it holds
    the module); ONNX (``ort-*``) and ``.pt2`` artifacts run anywhere."""
    from quantbench.build import quantize as _quantize

    entry = _model_entry(model)
    name = entry["source"] if isinstance(entry, dict) and "source" in entry else entry
    if not isinstance(name, str):
        raise QuantbenchError(f"model must be a name or an nn.Module, got {type(model).__name__}")
    for key, value in (("calibration", calibration), ("dataset", dataset)):
        if value is not None:
            settings[key] = _data_arg(value, key)
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
    """A file written by ``quantize`` or ``run --save-artifacts``, as a callable module.

    A file that carries code (a ``.pt2`` program, a ``py:`` model's checkpoint with its
    source) is refused unless ``trust_code=True``: pass it only for files you trust."""
    from quantbench.artifacts import load_artifact as _load

    return _load(path, trust_code=trust_code)
