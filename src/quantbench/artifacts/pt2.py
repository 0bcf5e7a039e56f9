"""The ``pt2`` format: a ``torch.export.save`` program.

Two recipes' files: the program ``pt2e-static-int8`` wrote (copied as it is), and the
portable file of a model given as a module (:func:`export_module`: fp32, fp16, bf16 and
torchao recipes of a ``mem:`` model, whose class no other process has).

Plain ``torch.export.load(path).module()`` runs it (after ``import
torch.ao.quantization.fx._decomposed`` for PT2E's quantize/dequantize ops, ``import
torchao`` for torchao's tensors). :func:`load` also compiles it lazily where it was
measured compiled, and takes the inputs by position or by name. Loading a ``.pt2``
unpickles what the archive holds, so it needs ``trust_code=True``; a file that is no such
archive is refused first, in one line, without unpickling anything.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from quantbench import fileformat
from quantbench.errors import QuantbenchError, UnsupportedError, first_line


def load(path: Path, trust_code: bool) -> Any:
    """The program at ``path``, run as it was measured (``trust_code`` only)."""
    return fileformat.read_pt2(path, trust_code, _load)


def _load(path: Path) -> Any:
    import torch

    from quantbench.artifacts.contract import CallLike
    from quantbench.recipes.compile import compile_module, dynamic_for
    from quantbench.recipes.pt2e import PT2_META, _pt2e_quantizer, register_quantized_ops

    register_quantized_ops()
    with contextlib.suppress(ImportError):
        import transformers.modeling_outputs  # noqa: F401  (output classes a program may return)
    extra = {PT2_META: ""}
    ep = torch.export.load(str(path), extra_files=extra)
    try:
        meta = json.loads(extra[PT2_META] or "{}")
    except json.JSONDecodeError:
        meta = {}
    meta = meta if isinstance(meta, dict) else {}
    names = program_inputs(ep)
    module = ep.module()
    if meta.get("compile", True):
        # The passes that lower quantize/dequantize pairs to oneDNN int8 kernels register
        # when the quantizer's module is imported: without them the graph runs fp32 math.
        with contextlib.suppress(UnsupportedError):
            _pt2e_quantizer()
        inductor = {"freezing": bool(meta.get("freezing", True))}
        module, _, _ = compile_module(module, [], inductor, dynamic_for(meta.get("family", "")))
    return CallLike(module, names)


def program_inputs(ep: Any) -> list[str]:
    """The names of an exported program's user inputs, in order (the model's own
    ``forward`` parameters: export names its placeholders after them)."""
    from torch.export.graph_signature import InputKind

    return [s.arg.name for s in ep.graph_signature.input_specs if s.kind == InputKind.USER_INPUT]


def export_module(art: Any, example: tuple, model: Any, path: Path) -> None:
    """``art``'s module as a ``.pt2`` program at ``path`` (atomically), exported on
    ``example`` with the dims PT2E's program varies for ``model`` (a LoadedModel).
    A module ``torch.export`` cannot capture or save is refused in one line that says why
    (torch.ao's eager int8 modules hold packed params it cannot serialize)."""
    import torch

    from quantbench.files import atomic_write
    from quantbench.recipes.pt2e import PT2_META, _dynamic_shapes, _quiet_export, _shape_mode
    from quantbench.strictjson import dumps

    module = getattr(art.module, "_orig_mod", art.module)
    if not isinstance(module, torch.nn.Module):
        raise QuantbenchError(f"{art.recipe} runs on {art.runtime}: no torch module to export")
    if int(example[0].shape[0]) == 1:  # a dynamic dim whose example is 1 is specialised
        example = tuple(torch.cat([t, t]) for t in example)
    compiled = bool(art.details.get("compiled"))
    meta = {"family": str(model.family), "recipe": art.recipe, "compile": compiled,
            "freezing": bool(art.details.get("freezing"))}  # fmt: skip
    try:
        with _quiet_export(), torch.no_grad(), _shape_mode(model):
            ep = torch.export.export(
                module.eval(), example, dynamic_shapes=_dynamic_shapes(model, len(example)),
                strict=False,
            )  # fmt: skip
            ep.example_inputs = None

            def save(tmp: Path) -> None:
                torch.export.save(ep, str(tmp), extra_files={PT2_META: dumps(meta)})

            atomic_write(path, save)
    except (OSError, QuantbenchError):  # the disk's faults, as every writer reports them
        raise
    except Exception as e:
        raise UnsupportedError(f"torch.export cannot capture it: {first_line(e)}") from None
