"""Deployable artifacts: ``quantbench quantize`` writes them, :func:`load_artifact` reads them.

- ONNX Runtime recipes write a plain ``.onnx`` file: it runs in onnxruntime with no
  quantbench installed.
- ``pt2e-static-int8`` writes a ``.pt2`` file (``torch.export.save``): plain
  ``torch.export.load(path).module()`` runs it once ``import
  torch.ao.quantization.fx._decomposed`` has registered its quantize/dequantize ops;
  :func:`load_artifact` also compiles it with Inductor freezing, as it was measured.
- torch recipes write a checkpoint holding the quantized state_dict and what is needed
  to rebuild its structure (model, recipe and its settings, engine, layers left in
  float). It loads with ``torch.load(weights_only=True)`` — no pickled code — and
  :func:`load_artifact` turns it back into a callable module by rebuilding the
  architecture and loading the weights. A ``py:<file>:<obj>`` model's checkpoint also
  holds the file's text, so it rebuilds anywhere, without the file.

``quantbench quantize`` and ``quantbench run --save-artifacts`` write these files through
the same code (:mod:`quantbench.build`).

Example::

    >>> from quantbench.artifacts import quantize_to_file, load_artifact
    >>> quantize_to_file("resnet18", "static-int8", "r18-int8.pt")      # doctest: +SKIP
    >>> m = load_artifact("r18-int8.pt")                               # doctest: +SKIP
    >>> m(torch.randn(1, 3, 224, 224)).shape                           # doctest: +SKIP
    torch.Size([1, 1000])
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantbench import fileformat
from quantbench.errors import QuantbenchError, first_line
from quantbench.version import __version__

FORMAT = "quantbench-artifact"
FORMAT_VERSION = 1


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


def _atomic_write(dst: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then rename over ``dst``: never a partial file at ``dst``;
    a full disk is said as such (:func:`quantbench.files.atomic_write`)."""
    from quantbench.files import atomic_write

    atomic_write(dst, lambda tmp: write(str(tmp)))


def check_output(path: str | Path, force: bool) -> Path:
    """Refuse an existing file unless ``force``, and a database (the results store) always;
    make sure the directory is writable (:func:`quantbench.files.check_new_file`)."""
    from quantbench.files import check_new_file

    return check_new_file(path, force)


def save_artifact(art: Any, path: Path, meta: dict[str, Any]) -> int:
    """Write ``art`` to ``path`` atomically (no partial file on failure); return bytes."""
    if art.file is not None:  # the recipe wrote the file itself (.onnx, .pt2)
        suffix = Path(art.file).suffix
        if path.suffix != suffix:
            raise QuantbenchError(
                f"recipe {art.recipe} writes a {suffix} file: name the output *{suffix}"
            )
        _atomic_write(path, lambda tmp: shutil.copyfile(art.file, tmp))
    else:
        module = getattr(art.module, "_orig_mod", art.module)  # torch.compile wrapper
        payload = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "quantbench_version": __version__,
            **meta,
            "runtime": art.runtime,
            "state_dict": module.state_dict(),
        }
        import torch

        def save(tmp: str) -> None:
            # Through a Python file: a full disk is an OSError (ENOSPC), not torch's
            # "unexpected pos", and the archive's name is "archive", not the temp file's.
            with open(tmp, "wb") as f:
                torch.save(payload, f)

        _atomic_write(path, save)
    return path.stat().st_size


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
    """Quantize ``model`` with ``recipe`` and write the deployable artifact to ``output``,
    as ``run`` builds it (see :func:`quantbench.build.quantize` for the other settings).
    ``options`` are the model's (``num_classes``)."""
    from quantbench.build import quantize

    return quantize(
        model, recipe, output, force=force, model_options=options, weights=weights,
        engine=engine, seed=seed, calib_batches=calib_batches, calib_batch_size=calib_batch_size,
    )  # fmt: skip


def load_artifact(path: str | Path, trust_code: bool = False) -> Any:
    """Turn a file written by ``quantbench quantize`` back into a callable module.

    ``.onnx`` files come back as an ONNX Runtime session wrapped to take and return torch
    tensors; torch artifacts are rebuilt (architecture + recipe) and their weights loaded.

    A file can carry code: a ``.pt2`` program is unpickled by ``torch.export.load``, and
    a ``py:`` model's checkpoint holds its Python source, run to rebuild it. Such files
    are refused unless ``trust_code=True`` (as transformers' ``trust_remote_code``);
    ``.onnx`` files and the other checkpoints (read with ``weights_only=True``) load
    without it. A file that is not what its name says is refused in one line.
    """
    p = Path(path)
    if not p.is_file():
        raise QuantbenchError(f"artifact '{p}' does not exist")
    if p.suffix == ".onnx":
        return _load_onnx(p)
    if p.suffix == ".pt2":
        from quantbench.recipes.pt2e import load_pt2

        return fileformat.read_pt2(p, trust_code, load_pt2)
    obj = _read_checkpoint(p)
    return _rebuild(obj, p, trust_code)


def _load_onnx(p: Path) -> Any:
    try:
        from quantbench.recipes.onnx.runtime import OrtModule
    except ImportError as e:
        raise QuantbenchError(f"loading .onnx artifacts needs onnxruntime: {e}") from None
    with fileformat.expecting(p, "an ONNX model"):
        if p.stat().st_size == 0:
            raise fileformat.not_a(p, "an ONNX model")
        return OrtModule(str(p))


def _read_checkpoint(p: Path) -> dict[str, Any]:
    """A quantbench state_dict checkpoint, read with ``weights_only=True``."""
    obj = fileformat.torch_load(p, "a quantbench artifact (a torch checkpoint)")
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise QuantbenchError(
            f"'{p}' is not a quantbench artifact: a torch checkpoint without quantbench's "
            "metadata (a plain state_dict is given to a run as --weights PATH)"
        )
    version = obj.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise QuantbenchError(f"'{p}' was written by a newer quantbench (format {version!r})")
    for key, kind in (("model", str), ("recipe", str), ("engine", str), ("state_dict", dict)):
        if not isinstance(obj.get(key), kind):
            raise QuantbenchError(
                f"'{p}' is not a complete quantbench artifact: '{key}' is missing or not a "
                f"{kind.__name__}"
            )
    return obj


def _rebuild(obj: dict[str, Any], path: Path, trust_code: bool) -> Any:
    import torch

    from quantbench import models as zoo
    from quantbench.recipes import QuantContext, apply_recipe

    # Random weights suffice: every tensor is replaced by the artifact's state_dict.
    seed = obj.get("seed", 0)
    source, name = obj.get("model_source"), obj["model"]
    if source or name.startswith("py:"):
        source = source if isinstance(source, dict) else {}
        what = (
            f"the Python source of its model ({source.get('file')}:{source.get('obj')})"
            if source
            else f"the model {name}, whose file rebuilding it would import"
        )
        if not trust_code:
            raise QuantbenchError(
                f"'{path}' holds {what}, which rebuilding it would run; {fileformat.TRUST_HINT} "
                "(its weights alone load with torch.load(PATH, weights_only=True))"
            )
    try:
        if source:
            lm = _py_model(name, source, seed, obj.get("options") or {})
        else:
            lm = zoo.load_model(name, "random", seed, obj.get("options"))
        size = 16 if lm.family == zoo.TEXT else 32
        x = lm.make_inputs(1, size, seed=0)
        ctx = QuantContext(
            obj["engine"],
            [x],
            float_layers=frozenset(obj.get("float_layers") or ()),
            # qat-int8 rebuilds its structure in two steps (one observes); weights are
            # replaced below
            train_batches=[(x, torch.zeros(1, dtype=torch.long))],
            qat_steps=2,
        )
        if obj["recipe"] != "fp32":
            torch.backends.quantized.engine = obj["engine"]
        art = apply_recipe(obj["recipe"], lm, ctx, obj.get("recipe_options") or None)
    except QuantbenchError as e:
        raise QuantbenchError(f"artifact '{path}' cannot be rebuilt: {e}") from None
    except Exception as e:
        raise QuantbenchError(
            f"artifact '{path}' ({name} / {obj['recipe']}) cannot be rebuilt: {first_line(e)}"
        ) from None
    module = getattr(art.module, "_orig_mod", art.module)
    try:
        module.load_state_dict(obj["state_dict"], strict=True)
    except RuntimeError as e:
        why = first_line(e, with_type=False)
        raise QuantbenchError(f"artifact does not fit {name} / {obj['recipe']}: {why}") from None
    return art.module.eval() if hasattr(art.module, "eval") else art.module


def _py_model(name: str, source: dict[str, Any], seed: int, options: dict[str, Any]) -> Any:
    """A ``py:`` model rebuilt from the source text stored in its artifact: executed in a
    fresh module named after the file (no path is looked up, nothing is registered)."""
    import types

    import torch

    from quantbench import models as zoo

    file, attr = str(source.get("file") or "model.py"), str(source.get("obj") or "")
    stem = re.sub(r"\W", "_", Path(file).stem) or "model"
    mod = types.ModuleType(stem)
    mod.__file__ = file
    try:
        exec(compile(str(source.get("text", "")), file, "exec"), mod.__dict__)
        factory = getattr(mod, attr)
        kwargs = {"num_classes": int(options["num_classes"])} if "num_classes" in options else {}
        torch.manual_seed(seed)
        module = factory(**kwargs)
    except Exception as e:
        raise QuantbenchError(
            f"the model source stored in the artifact ({file}:{attr}) does not build: "
            f"{first_line(e)}"
        ) from None
    if not isinstance(module, torch.nn.Module):
        raise QuantbenchError(f"{file}:{attr} built a {type(module).__name__}, not a torch module")
    return zoo.LoadedModel(
        name=name, family=zoo.VISION, module=module.eval(), weights="the artifact's",
        random_weights=False, is_classifier=True, max_input_size=None,
        make_inputs=zoo._vision_inputs, description=f"{file}:{attr} (from the artifact)",
    )  # fmt: skip
