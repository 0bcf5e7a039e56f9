"""Deployable artifacts: ``quantbench quantize`` writes them, :func:`load_artifact` reads them.

- ONNX Runtime recipes write a plain ``.onnx`` file: it runs in onnxruntime with no
  quantbench installed.
- ``pt2e-static-int8`` writes a ``.pt2`` file (``torch.export.save``): plain
  ``torch.export.load(path).module()`` runs it; :func:`load_artifact` also compiles it
  with Inductor freezing, as the recipe was measured.
- torch recipes write a checkpoint holding the quantized state_dict and what is needed
  to rebuild its structure (model, recipe, engine). It loads with
  ``torch.load(weights_only=True)`` — no pickled code — and :func:`load_artifact` turns
  it back into a callable module by rebuilding the architecture and loading the weights.

Example::

    >>> from quantbench.artifacts import quantize_to_file, load_artifact
    >>> quantize_to_file("resnet18", "static-int8", "r18-int8.pt")      # doctest: +SKIP
    >>> m = load_artifact("r18-int8.pt")                               # doctest: +SKIP
    >>> m(torch.randn(1, 3, 224, 224)).shape                           # doctest: +SKIP
    torch.Size([1, 1000])
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantbench import __version__
from quantbench.errors import QuantbenchError, UnsupportedError, first_line

FORMAT = "quantbench-artifact"
FORMAT_VERSION = 1


@dataclass
class Written:
    path: Path
    size_bytes: int
    recipe: str
    runtime: str


def _atomic_write(dst: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then rename over ``dst``: never a partial file at ``dst``."""
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        from quantbench.results import file_mode

        os.chmod(tmp, file_mode())  # an artifact to ship, not a private temp file
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_output(path: str | Path, force: bool) -> Path:
    """Refuse an existing file unless ``force``; make sure the directory is writable."""
    p = Path(path)
    if p.is_dir():
        raise QuantbenchError(f"output '{p}' is a directory; give a file path")
    if p.exists() and not force:
        raise QuantbenchError(f"output '{p}' exists; use --force to overwrite it")
    if not p.parent.exists():
        raise QuantbenchError(f"output directory '{p.parent}' does not exist")
    if not os.access(p.parent, os.W_OK):
        raise QuantbenchError(f"cannot write to output directory '{p.parent}'")
    return p


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

        _atomic_write(path, lambda tmp: torch.save(payload, tmp))
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
    """Quantize ``model`` with ``recipe`` and write the deployable artifact to ``output``."""
    from quantbench import env
    from quantbench import models as zoo
    from quantbench.recipes import QuantContext, apply_recipe, get_recipe
    from quantbench.shapes import ref_size_for

    get_recipe(recipe)  # unknown names fail before the model is built
    info = zoo.model_info(model)
    engine = env.check_engine(engine)
    path = check_output(output, force)
    lm = zoo.load_model(model, weights, seed, options)
    ref_size = ref_size_for(info.family)
    calib = [
        lm.make_inputs(calib_batch_size, ref_size, seed=1000 + i) for i in range(calib_batches)
    ]
    try:
        art = apply_recipe(recipe, lm, QuantContext(engine, calib))
    except UnsupportedError as e:
        raise QuantbenchError(f"recipe {recipe} does not apply to {model}: {e}") from None
    meta = {
        "model": model,
        "recipe": recipe,
        "engine": engine,
        "seed": seed,
        "options": dict(options or {}),
        "family": str(lm.family),
        "weights": lm.weights,
    }
    size = save_artifact(art, path, meta)
    return Written(path=path, size_bytes=size, recipe=recipe, runtime=art.runtime)


def load_artifact(path: str | Path) -> Any:
    """Turn a file written by ``quantbench quantize`` back into a callable module.

    ``.onnx`` files come back as an ONNX Runtime session wrapped to take and return torch
    tensors; torch artifacts are rebuilt (architecture + recipe) and their weights loaded.
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise QuantbenchError(f"artifact '{p}' does not exist")
    if p.suffix == ".onnx":
        try:
            from quantbench.recipes.onnx.runtime import OrtModule
        except ImportError as e:
            raise QuantbenchError(f"loading .onnx artifacts needs onnxruntime: {e}") from None
        return OrtModule(str(p))
    if p.suffix == ".pt2":
        from quantbench.recipes.pt2e import load_pt2

        try:
            return load_pt2(p)
        except Exception as e:
            raise QuantbenchError(
                f"'{p}' is not a loadable .pt2 program: {type(e).__name__}"
            ) from None
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise QuantbenchError(f"'{p}' is not a quantbench artifact: {type(e).__name__}") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise QuantbenchError(f"'{p}' is not a quantbench artifact")
    if obj.get("format_version", 0) > FORMAT_VERSION:
        raise QuantbenchError(
            f"'{p}' was written by a newer quantbench (format {obj['format_version']})"
        )
    return _rebuild(obj)


def _rebuild(obj: dict[str, Any]) -> Any:
    import torch

    from quantbench import models as zoo
    from quantbench.recipes import QuantContext, apply_recipe

    # Random weights suffice: every tensor is replaced by the artifact's state_dict.
    lm = zoo.load_model(obj["model"], "random", obj.get("seed", 0), obj.get("options"))
    size = 16 if lm.family == zoo.TEXT else 32
    ctx = QuantContext(obj["engine"], [lm.make_inputs(1, size, seed=0)])
    torch.backends.quantized.engine = obj["engine"]
    art = apply_recipe(obj["recipe"], lm, ctx)
    module = getattr(art.module, "_orig_mod", art.module)
    try:
        module.load_state_dict(obj["state_dict"], strict=True)
    except RuntimeError as e:
        why = first_line(e, with_type=False)
        raise QuantbenchError(
            f"artifact does not fit {obj['model']} / {obj['recipe']}: {why}"
        ) from None
    return art.module.eval() if hasattr(art.module, "eval") else art.module
