"""A ``state_dict`` checkpoint back into a callable module: rebuild, then load the weights.

The architecture is built again with random weights (every tensor is replaced), the
recipe is applied to give it the quantized structure (the checkpoint's engine, settings and
float layers), and the checkpoint's state_dict is loaded into it. A ``py:`` model is
rebuilt from the source text its checkpoint holds, which runs that code: only with
``trust_code``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from quantbench import fileformat
from quantbench.errors import QuantbenchError, first_line


def rebuild(obj: dict[str, Any], path: Path, trust_code: bool) -> Any:
    """The module ``obj`` (a checkpoint read from ``path``) describes, its weights loaded."""
    _check_trust(obj, path, trust_code)
    if _library(obj["recipe"]) == "torchao":
        return _assign(obj, path)
    art = _structure(obj, path)
    name = obj["model"]
    module = getattr(art.module, "_orig_mod", art.module)
    try:
        module.load_state_dict(obj["state_dict"], strict=True)
    except RuntimeError as e:
        why = first_line(e, with_type=False)
        raise QuantbenchError(f"artifact does not fit {name} / {obj['recipe']}: {why}") from None
    return art.module.eval() if hasattr(art.module, "eval") else art.module


def _check_trust(obj: dict[str, Any], path: Path, trust_code: bool) -> None:
    """Refuse, unless ``trust_code``, a checkpoint whose rebuilding runs code: one that holds
    its model's source, or names a ``py:`` model file that rebuilding would import."""
    source, name = obj.get("model_source"), obj["model"]
    if not (source or name.startswith("py:")) or trust_code:
        return
    source = source if isinstance(source, dict) else {}
    what = (
        f"the Python source of its model ({source.get('file')}:{source.get('obj')})"
        if source
        else f"the model {name}, whose file rebuilding it would import"
    )
    raise QuantbenchError(
        f"'{path}' holds {what}, which rebuilding it would run; {fileformat.TRUST_HINT} "
        "(its weights alone load with torch.load(PATH, weights_only=True))"
    )


@contextmanager
def _rebuilding(obj: dict[str, Any], path: Path) -> Iterator[None]:
    """Any failure while the architecture is rebuilt, as one line naming the artifact."""
    try:
        yield
    except QuantbenchError as e:
        raise QuantbenchError(f"artifact '{path}' cannot be rebuilt: {e}") from None
    except Exception as e:
        raise QuantbenchError(
            f"artifact '{path}' ({obj['model']} / {obj['recipe']}) cannot be rebuilt: "
            f"{first_line(e)}"
        ) from None


def _structure(obj: dict[str, Any], path: Path) -> Any:
    """The recipe's artifact on the rebuilt architecture (random weights suffice: every
    tensor is replaced by the checkpoint's state_dict)."""
    import torch

    from quantbench import models as zoo
    from quantbench.recipes import QuantContext, apply_recipe

    with _rebuilding(obj, path):
        lm = _skeleton(obj)
        size = 16 if lm.family == zoo.TEXT else 32
        x = lm.make_inputs(1, size, seed=0)
        ctx = QuantContext(
            obj["engine"],
            [x],
            float_layers=frozenset(obj.get("float_layers") or ()),
            # qat-int8 rebuilds its structure in two steps (one observes); weights are
            # replaced afterwards
            train_batches=[(x, torch.zeros(1, dtype=torch.long))],
            qat_steps=2,
        )
        if obj["recipe"] != "fp32":
            torch.backends.quantized.engine = obj["engine"]
        return apply_recipe(obj["recipe"], lm, ctx, obj.get("recipe_options") or None)


def _skeleton(obj: dict[str, Any]) -> Any:
    """The float architecture of ``obj``'s model, random weights (every tensor is replaced)."""
    from quantbench import models as zoo

    seed, name = obj.get("seed", 0), obj["model"]
    source = obj.get("model_source")
    if isinstance(source, dict):
        lm = _py_model(name, source, seed, obj.get("options") or {})
        return _as_recorded(lm, obj.get("inputs")) if obj.get("family") == "tensor" else lm
    return zoo.load_model(name, "random", seed, obj.get("options"))


def _as_recorded(lm: Any, record: Any) -> Any:
    """A tensor-family model as it was measured: its inputs' names, shapes and dtypes from
    the checkpoint's record (called by name where the data named its inputs)."""
    import dataclasses

    from quantbench.models.tensor import TENSOR, RecordInputs, called_by_name

    if not isinstance(record, list) or not all(isinstance(r, dict) for r in record):
        raise QuantbenchError("it records no inputs for a tensor model (written by an older "
                              "quantbench: quantize it again)")  # fmt: skip
    names = tuple(str(r.get("name")) for r in record)
    return dataclasses.replace(
        lm, family=TENSOR, module=called_by_name(lm.module, names),
        make_inputs=RecordInputs(tuple(record)), input_names=names,
    )  # fmt: skip


def _library(recipe: str) -> str:
    from quantbench.recipes import get_recipe

    try:
        return get_recipe(recipe).library
    except QuantbenchError:
        return ""


def _assign(obj: dict[str, Any], path: Path) -> Any:
    """A torchao checkpoint without quantizing again: its state_dict holds torchao's tensor
    subclasses (int8 data + scales), which ``load_state_dict(assign=True)`` puts in the
    float skeleton as they are. Compiled, as measured, at its first call (lazily)."""
    from quantbench.recipes import get_recipe
    from quantbench.recipes.compile import compile_module, dynamic_for

    name, recipe = obj["model"], obj["recipe"]
    with _rebuilding(obj, path):
        lm = _skeleton(obj)
        module = lm.module.eval()
    try:
        module.load_state_dict(obj["state_dict"], strict=True, assign=True)
    except RuntimeError as e:
        why = first_line(e, with_type=False)
        raise QuantbenchError(f"artifact does not fit {name} / {recipe}: {why}") from None
    config = get_recipe(recipe, obj.get("recipe_options") or None).config
    if not getattr(config, "compile", False):
        return module
    inductor = {"freezing": True} if getattr(config, "freezing", False) else {}
    compiled, _, _ = compile_module(module, [], inductor, dynamic_for(lm.family))
    return compiled


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
