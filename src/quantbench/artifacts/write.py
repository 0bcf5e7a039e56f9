"""Writing artifacts: the one code path ``quantize`` and ``run --save-artifacts`` share.

- ``quantbench run --save-artifacts`` times every variant, then :func:`save_variants`
  writes each one's file to ``<out>/artifacts/<model>/<variant>.<ext>`` and records it in
  the cell (``details["artifact"]``);
- ``quantbench quantize`` (:mod:`quantbench.build`) writes the one variant ``run`` would
  have measured with :func:`write_variant`.

What a file holds is its format's (:mod:`quantbench.artifacts.formats`): a state_dict
checkpoint with the metadata that rebuilds it, or a copy of the very file the recipe
wrote (``.onnx``, ``.pt2``), sized and timed.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from quantbench import handover
from quantbench.artifacts.formats import Format, format_for_path, get_format
from quantbench.artifacts.names import ARTIFACTS_DIR, safe_name, sha256_of
from quantbench.errors import QuantbenchError, first_line
from quantbench.variants import Variant


class ModelRun(Protocol):
    """What the writers read of a model's run (``quantbench.runner.modelrun.ModelRun``;
    named by shape so that the artifacts never import the runner, which calls them)."""

    name: str
    spec: Any
    ref: Any
    qctx: Any
    lm: Any
    arts: dict[Variant, Any]
    cells: dict[Variant, Any]


@dataclass
class Written:
    """What ``quantize`` wrote: ``size_bytes`` is the file's; ``measured_bytes`` is the
    cell's ``size_bytes`` as ``run`` reports it (a state_dict artifact's file adds the
    metadata that rebuilds it)."""

    path: Path
    size_bytes: int
    recipe: str
    runtime: str
    variant: str = ""
    sha256: str = ""
    measured_bytes: int | None = None
    calibration: str | None = None  # the recipe's calibration note, when it calibrates
    notes: list[str] = field(default_factory=list)
    accuracy: dict[str, Any] | None = None  # on --dataset, when given
    load_s: float | None = None  # load_artifact on the written file, in this process


def check_output(path: str | Path, force: bool) -> Path:
    """Refuse an existing file unless ``force``, and a database (the results store) always;
    make sure the directory is writable (:func:`quantbench.files.check_new_file`)."""
    from quantbench.files import check_new_file

    return check_new_file(path, force)


def check_name(path: Path, fmt: Format, recipe: str) -> None:
    """Refuse an output name that says another format than ``recipe`` writes:
    :func:`~quantbench.artifacts.load_artifact` reads a file as its name says."""
    said = format_for_path(path)
    if said is fmt:
        return
    if not fmt.any_name:
        ext = fmt.extension
        raise QuantbenchError(f"recipe {recipe} writes a {ext} file: name the output *{ext}")
    raise QuantbenchError(
        f"recipe {recipe} writes {fmt.what}, not {said.what}: name the output "
        f"*{fmt.extension} (a file is loaded as its extension says)"
    )


def format_of(v: Variant, model: str = "") -> Format:
    """What ``v``'s recipe ships for ``model``: its own format, except that a checkpoint of
    a model given as a module (``mem:``) would rebuild only in the process that holds the
    module, so that model's checkpoint recipes ship a ``.pt2`` program instead."""
    from quantbench.recipes import get_recipe

    return shipped_format(model, get_recipe(v.base).file_format)


def shipped_format(model: str, recipe_format: str) -> Format:
    """The format written for ``model`` by a recipe whose own format is ``recipe_format``."""
    fmt = get_format(recipe_format)
    if fmt.any_name and handover.is_memory(model):
        return get_format("pt2")
    return fmt


def portable_recipes() -> str:
    """The recipes that ship a file that loads in any process, in words."""
    from quantbench.recipes import list_recipes

    by_ext: dict[str, list[str]] = {}
    for r in list_recipes():
        fmt = get_format(r.file_format)
        if not fmt.any_name:
            by_ext.setdefault(fmt.extension, []).append(r.name)
    parts = [f"{_compact(names)} ({ext})" for ext, names in by_ext.items()]
    return ", ".join([*parts, "fp32, fp16, bf16, torchao-* (exported to .pt2)"])


def _compact(names: list[str]) -> str:
    """``ort-fp32, ort-dynamic-int8`` -> ``ort-*``; a lone name stays."""
    heads = {n.split("-", 1)[0] for n in names}
    return f"{heads.pop()}-*" if len(names) > 1 and len(heads) == 1 else ", ".join(names)


def _export_portable(run: ModelRun, v: Variant, art: Any, path: Path) -> None:
    """``art`` of an in-memory model as a ``.pt2`` program, or one line saying why not."""
    from quantbench.artifacts.pt2 import export_module
    from quantbench.errors import UnsupportedError

    calib = run.qctx.calib_inputs if run.qctx is not None else []
    example = tuple(calib[0]) if calib else tuple(run.lm.make_inputs(2, run.ref_size))
    try:
        export_module(art, example, run.lm, path)
    except UnsupportedError as e:
        raise QuantbenchError(
            f"{v.name} of in-memory model '{handover.label(run.name)}' has no portable file "
            f"({e}); its "
            "checkpoint would load only in this process, which holds the module; recipes "
            f"that ship a portable file of a module: {portable_recipes()}"
        ) from None


def time_load(path: Path) -> float:
    """Seconds :func:`~quantbench.artifacts.load_artifact` takes on ``path`` (a file this
    process wrote, so trusted); compiling, where a recipe compiles, happens later, at the
    first call."""
    import time

    from quantbench.artifacts.load import load_artifact

    t = time.perf_counter()
    load_artifact(path, trust_code=True)
    return time.perf_counter() - t


def save_artifact(art: Any, path: Path, meta: dict[str, Any], fmt: Format) -> int:
    """Write ``art`` to ``path`` in ``fmt``, atomically (no partial file on failure); return
    the bytes shipped. ``meta`` is what rebuilds it, for formats that store it."""
    write = getattr(fmt.impl(), "write", None)
    if write is None:
        _copy_recipe_file(art, path, fmt)
    else:
        write(art, path, meta)
    return fmt.size(path)


def _copy_recipe_file(art: Any, path: Path, fmt: Format) -> None:
    """The file the recipe wrote (and its companions), copied to ``path``."""
    from quantbench.files import atomic_write

    if art.file is None:
        raise QuantbenchError(f"recipe {art.recipe} wrote no {fmt.extension} file to ship")
    suffix = Path(art.file).suffix
    if path.suffix != suffix:
        raise QuantbenchError(
            f"recipe {art.recipe} writes a {suffix} file: name the output *{suffix}"
        )
    # companions first: the file a user names appears last, when it is complete
    for src, dst in reversed(list(zip(fmt.files(art.file), fmt.files(path), strict=True))):
        atomic_write(dst, lambda tmp, src=src: shutil.copyfile(src, tmp))


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
    if run.lm.family == "tensor":  # the inputs' shapes, dtypes and ranges: never the data
        from quantbench.models.tensor import example_record

        lm = run.lm
        x = lm.make_inputs(1, lm.ref_input_size or 1, seed=0)
        names = lm.input_names or tuple(f"input_{i}" for i in range(len(x)))
        meta["inputs"] = example_record(x, names)
    return meta


def write_variant(run: ModelRun, v: Variant, path: Path, art: Any = None) -> dict[str, Any]:
    """Write ``v``'s artifact (or ``art``) to ``path``; the record of what was written.

    A format with overhead (the state_dict checkpoint, whose file holds the sized
    state_dict plus the metadata that rebuilds it) records it as ``overhead_bytes``; any
    other file is what was sized, and a difference is noted on the cell.
    """
    art = run.arts[v] if art is None else art
    fmt = format_of(v, run.ref.load_name)
    if fmt is format_of(v):
        nbytes = save_artifact(art, path, artifact_meta(run, v, art), fmt)
    else:
        _export_portable(run, v, art, path)
        nbytes = fmt.size(path)
    record: dict[str, Any] = {
        "path": str(path),
        "bytes": nbytes,
        "sha256": sha256_of(fmt.files(path)),
        "format": fmt.name,
    }
    notes = run.cells[v].notes if v in run.cells else []
    try:
        record["load_s"] = round(time_load(path), 3)
    except Exception as e:  # the file is written; what it does not do is said on the cell
        notes.append(f"artifact: loading it back failed: {first_line(e)}")
    sized = run.cells[v].size_bytes if v in run.cells else None
    if fmt is not format_of(v):
        notes.append(
            f"artifact: a .pt2 program (torch.export), not {format_of(v).what}: a model given "
            "as a module rebuilds only in the process that holds it"
        )
    elif sized is not None:
        if fmt.overhead:
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
                ext = format_of(src, run.ref.load_name).extension
                rel = folder / (safe_name(src.name) + ext)
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


def load_notes(path: Path, fmt: Format, model: str) -> list[str]:
    """How to load what was written when loading it runs code (it needs trust_code)."""
    why = fmt.needs_trust(model)
    if why is None:
        return []
    return [f"load: quantbench.load_artifact('{path}', trust_code=True) ({why})"]
