"""From a model to the file that ships: the one code path ``run`` and ``quantize`` share.

Both commands build artifacts with :func:`quantbench.runner.pipeline.build_model` (load ->
calibration inputs -> quantize -> fallback search, from a :class:`~quantbench.settings.RunSpec`)
and write them with :func:`write_variant`:

- ``quantbench run --save-artifacts`` times every variant, then :func:`save_variants`
  writes each one's file to ``<out>/artifacts/<model>/<variant>.<ext>`` and records it in
  the cell (``details["artifact"]``);
- ``quantbench quantize`` (:func:`quantize`) builds one recipe from the same settings
  (:func:`quantize_spec`: a run config, then flags) and writes the variant ``run`` would
  have measured: the recipe, or its ``+fallback`` variant when the recipe misses the bar.

Example::

    >>> from quantbench.build import quantize
    >>> w = quantize("resnet18", "static-int8", "r18.pt", seed=0)        # doctest: +SKIP
    >>> w.path, w.size_bytes, w.calibration                              # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantbench.errors import QuantbenchError, first_line
from quantbench.variants import Variant

if TYPE_CHECKING:
    from quantbench.artifacts import Written
    from quantbench.runner.pipeline import ModelRun
    from quantbench.settings import ModelRef, RunSpec

ARTIFACTS_DIR = "artifacts"
EXTENSIONS = {"state_dict": ".pt", "onnx": ".onnx", "pt2": ".pt2"}


def safe_name(name: str) -> str:
    """A file name for a model or variant name. Safe names are kept (``static-int8+compile``);
    others are cleaned and get a short hash of the original, so two never collide:
    ``hf:/models/x`` -> ``hf_models_x-<8 hex>``."""
    safe = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._-")[:80]
    if safe and safe == name:
        return safe
    return f"{safe or 'model'}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def file_format(v: Variant) -> str:
    """What ``v``'s recipe ships: ``state_dict``, ``onnx`` or ``pt2``."""
    from quantbench.recipes import get_recipe

    return get_recipe(v.base).file_format


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_source(name: str) -> dict[str, str] | None:
    """For a ``py:<file>:<obj>`` model, what rebuilds it anywhere: the file's name, the
    object's name and the file's text (None for other models)."""
    if not name.startswith("py:"):
        return None
    path_text, _, obj = name[3:].rpartition(":")
    path = Path(path_text).expanduser()
    return {"file": path.name, "obj": obj, "text": path.read_text(encoding="utf-8")}


def artifact_meta(run: ModelRun, v: Variant, art: Any) -> dict[str, Any]:
    """What a state_dict artifact stores besides its tensors, to rebuild its structure."""
    spec, ref = run.spec, run.ref
    meta: dict[str, Any] = {
        "model": ref.load_name,
        "name": ref.name,
        "recipe": v.base,
        "variant": v.name,
        "engine": run.qctx.engine,
        "seed": spec.target.seed,
        "options": dict(ref.options),
        "recipe_options": dict(spec.quant.recipe_options.get(v.base) or {}),
        "float_layers": sorted(art.details.get("float_layers") or ()),
        "calibration": run.qctx.calib_source,
        "family": str(run.lm.family),
        "weights": run.lm.weights,
    }
    source = model_source(ref.load_name)
    if source is not None:
        meta["model_source"] = source
    return meta


def write_variant(run: ModelRun, v: Variant, path: Path, art: Any = None) -> dict[str, Any]:
    """Write ``v``'s artifact (or ``art``) to ``path``; the record of what was written.

    ``.onnx`` / ``.pt2`` recipes: a copy of the very file the recipe wrote, sized and
    timed. state_dict recipes: :func:`~quantbench.artifacts.save_artifact`, whose file
    holds the sized state_dict plus the metadata that rebuilds it (``overhead_bytes``).
    """
    from quantbench.artifacts import save_artifact

    art = run.arts[v] if art is None else art
    fmt = file_format(v)
    nbytes = save_artifact(art, path, artifact_meta(run, v, art))
    record: dict[str, Any] = {
        "path": str(path),
        "bytes": nbytes,
        "sha256": sha256_of(path),
        "format": fmt,
    }
    sized = run.cells[v].size_bytes if v in run.cells else None
    if sized is not None:
        if fmt == "state_dict":
            record["overhead_bytes"] = nbytes - sized
        elif nbytes != sized:  # an .onnx with external data files: not shipped alongside
            run.cells[v].notes.append(
                f"artifact: the file holds {nbytes} bytes, {sized} were sized (external data?)"
            )
    return record


def save_variants(run: ModelRun) -> None:
    """Write every measured variant's file under ``<out>/artifacts/<model>/``; record each
    in its cell as ``details["artifact"]``. A variant whose file cannot be written gets a
    note; nothing here raises."""
    cells = run.cells
    if not run.spec.output.out:
        for v in run.arts:
            cells[v].notes.append("artifact not saved: the run has no output directory (--out)")
        return
    root = Path(run.spec.output.out)
    folder = Path(ARTIFACTS_DIR) / safe_name(run.name)
    written: dict[Variant, dict[str, Any]] = {}
    for v in sorted(run.arts, key=lambda v: v.compiled):  # bases before their +compile
        try:
            src = v.without_last() if v.compiled else v
            if src in written:  # +compile ships its base's file: compiling is a load-time step
                record = dict(written[src])
            else:
                rel = folder / (safe_name(src.name) + EXTENSIONS[file_format(src)])
                (root / folder).mkdir(parents=True, exist_ok=True)
                record = write_variant(run, src, root / rel, art=run.arts[v])
                record["path"] = rel.as_posix()
                if not v.compiled:
                    written[v] = record
            if v.compiled:
                record = {**record, "compiled_at_load": True}
            cells[v].details["artifact"] = record
        except Exception as e:
            cells[v].notes.append(f"artifact not saved: {first_line(e)}")


# --------------------------------------------------------------------------- quantize


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
    from quantbench.artifacts import Written, check_output
    from quantbench.recipes import get_recipe
    from quantbench.runner.pipeline import build_model

    r = get_recipe(recipe)  # unknown names fail before anything is built
    path = check_output(output, force)
    ext = EXTENSIONS[r.file_format]
    if r.file_format != "state_dict" and path.suffix != ext:
        raise QuantbenchError(f"recipe {recipe} writes a {ext} file: name the output *{ext}")
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
        + _load_notes(path, ref.load_name),
        accuracy=cell.accuracy.to_dict() if cell.accuracy is not None else None,
    )


def _load_notes(path: Path, model: str) -> list[str]:
    """How to load what was written when loading it runs code (it needs trust_code)."""
    if path.suffix == ".pt2":
        why = "a .pt2 program is unpickled as it loads"
    elif model.startswith("py:"):
        why = "it holds the source of your model, which rebuilding it runs"
    else:
        return []
    return [f"load: quantbench.load_artifact('{path}', trust_code=True) ({why})"]
