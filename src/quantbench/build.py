"""``quantbench quantize``: build one recipe as ``run`` builds it, and ship that file.

Both commands build artifacts with :func:`quantbench.runner.pipeline.build_model` (load ->
calibration inputs -> quantize -> fallback search, from a :class:`~quantbench.settings.RunSpec`)
and write them through :mod:`quantbench.artifacts` (``run --save-artifacts`` writes every
measured variant with :func:`~quantbench.artifacts.save_variants`). :func:`quantize` builds
one recipe from the same settings (:func:`quantize_spec`: a run config, then flags) and
writes the variant ``run`` would have measured: the recipe, or its ``+fallback`` variant
when the recipe misses the bar.

Example::

    >>> from quantbench.build import quantize
    >>> w = quantize("resnet18", "static-int8", "r18.pt", seed=0)        # doctest: +SKIP
    >>> w.path, w.size_bytes, w.calibration                              # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantbench.errors import QuantbenchError
from quantbench.variants import Variant

if TYPE_CHECKING:
    from quantbench.artifacts import Written
    from quantbench.runner.modelrun import ModelRun
    from quantbench.settings import ModelRef, RunSpec


def _config_entry(config: str | Path | None, model: str, options: dict[str, Any]) -> Any:
    """The config's model entry named ``model`` (its source, weights, data), else ``model``;
    ``options`` (``num_classes``) added to it."""
    from quantbench.settings import load_yaml

    entry: Any = model
    if config is not None:
        for e in load_yaml(config).get("models") or []:
            if (e.get("name") if isinstance(e, dict) else e) == model:
                entry = e
                break
    if options:
        entry = {**(entry if isinstance(entry, dict) else {"name": entry}), **options}
    return entry


def quantize_spec(
    model: str,
    recipe: str,
    config: str | Path | None = None,
    model_options: dict[str, Any] | None = None,
    **settings: Any,
) -> tuple[RunSpec, ModelRef]:
    """The settings ``quantize`` builds with: a run config's (calibration, recipe_options,
    seed, engine, weights, dataset, fallback...), then ``settings`` (None: not given), for
    one model and one recipe. Sweeps, timing and ``compile`` do not apply."""
    from quantbench.runner.checks import build_spec
    from quantbench.settings import load_yaml

    overrides = {k: v for k, v in settings.items() if v is not None}
    if overrides.get("max_accuracy_drop") is not None:
        overrides["fallback"] = True
    fallback = overrides.get("fallback", config is not None and load_yaml(config).get("fallback"))
    overrides.update(
        models=[_config_entry(config, model, model_options or {})],
        recipes=[recipe],
        # without evaluation data the fallback's bar is fidelity to fp32: measure it
        measure=["size", "fidelity"] if fallback else ["size"],
        compile=False,
        pin=False,
        isolate=False,
        save_artifacts=False,
    )
    spec = build_spec(config=config, overrides=overrides)
    spec.timing.timeout_s = None
    return spec, spec.target.models[0]


def _pick(run: ModelRun, recipe: str, model: str) -> Variant:
    """The variant ``run`` measured for ``recipe``: its ``+fallback`` when one was made."""
    v = Variant(recipe)
    cell = run.cells.get(v)
    if cell is None or v not in run.arts:
        why = cell.error if cell is not None else "no artifact"
        if cell is not None and cell.status == "unsupported":
            raise QuantbenchError(f"recipe {recipe} does not apply to {model}: {why}")
        raise QuantbenchError(f"recipe {recipe} failed on {model}: {why}")
    fv = v.with_transform("fallback")
    if fv in run.cells:
        if fv not in run.arts:
            raise QuantbenchError(
                f"{recipe} misses the bar on {model} and its fallback search failed: "
                f"{run.cells[fv].error}"
            )
        return fv
    return v


def quantize(
    model: str,
    recipe: str,
    output: str | Path,
    config: str | Path | None = None,
    force: bool = False,
    emit: Callable[[Any], None] | None = None,
    model_options: dict[str, Any] | None = None,
    **settings: Any,
) -> Written:
    """Build ``model`` with ``recipe`` as ``run`` does for the same settings and write the
    variant it measured to ``output``. ``settings`` are RunSpec fields (weights, engine,
    seed, calib_batches, calibration, dataset, fallback, max_accuracy_drop, ...)."""
    from quantbench.artifacts import check_output, get_format
    from quantbench.artifacts.write import Written, check_name, load_notes, write_variant
    from quantbench.recipes import get_recipe
    from quantbench.runner.pipeline import build_model

    fmt = get_format(get_recipe(recipe).file_format)  # unknown names fail before building
    path = check_output(output, force)
    check_name(path, fmt, recipe)
    spec, ref = quantize_spec(model, recipe, config, model_options, **settings)
    run = build_model(spec, ref, emit or (lambda message: None))
    v = _pick(run, recipe, model)
    record = write_variant(run, v, path)
    cell, art = run.cells[v], run.arts[v]
    # "calibrated on ..." (torch) or "calibrated (minmax) on ..." (ONNX Runtime)
    calib = next((n for n in cell.notes if re.search(r"calibrated (\([^)]*\) )?on ", n)), None)
    return Written(
        path=path,
        size_bytes=record["bytes"],
        recipe=recipe,
        runtime=art.runtime,
        variant=v.name,
        sha256=record["sha256"],
        measured_bytes=cell.size_bytes,
        calibration=calib,
        notes=[n for n in cell.notes if n.startswith("accuracy-aware fallback")]
        + load_notes(path, fmt, ref.load_name),
        accuracy=cell.accuracy.to_dict() if cell.accuracy is not None else None,
    )


def quantize_to_file(
    model: str,
    recipe: str,
    output: str | Path,
    weights: str = "auto",
    engine: str | None = None,
    seed: int = 0,
    calib_batches: int = 8,
    calib_batch_size: int = 4,
    force: bool = False,
    options: dict[str, Any] | None = None,
) -> Written:
    """:func:`quantize` with the common settings spelled out; ``options`` are the model's
    (``num_classes``)."""
    return quantize(
        model, recipe, output, force=force, model_options=options, weights=weights,
        engine=engine, seed=seed, calib_batches=calib_batches, calib_batch_size=calib_batch_size,
    )  # fmt: skip
