"""fp32 ONNX export: ``torch.onnx.export`` with dynamic shapes, the Longformer patches
the exporter needs, the check that the exported graph agrees with torch, and the one
export per loaded model that every ORT recipe shares.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
import warnings
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantbench.errors import QuantbenchError, first_line
from quantbench.recipes import QuantContext
from quantbench.recipes.onnx.given import given_file
from quantbench.recipes.onnx.runtime import OrtModule

# 17: the first opset with LayerNormalization (one node instead of seven for every
# transformer norm) and well inside what onnxruntime's quantizer and kernels support.
OPSET = 17
INPUT_NAMES = {"vision": ("pixel_values",), "text": ("input_ids", "attention_mask")}
OUTPUT_NAME = "output"
# The exported graph must agree with torch before anything is measured on it.
_MIN_EXPORT_COSINE = 0.999


def _longformer_chunk(hidden_states: Any, window_overlap: int, onnx_export: bool = False) -> Any:
    import torch

    # Overlapping chunks of 2w with step w, built from reshapes and a concat: the same
    # values as transformers' ``as_strided`` view, which the exporter gets wrong (max abs
    # error ~0.2 on random weights), and unlike ``unfold`` it keeps the length dynamic.
    b, n, d = hidden_states.shape
    x = hidden_states.reshape(b, n // window_overlap, window_overlap, d)
    return torch.cat([x[:, :-1], x[:, 1:]], dim=2)


def _longformer_probs_value(self: Any, attn_probs: Any, value: Any, window_overlap: int) -> Any:
    import torch

    # transformers' LongformerSelfAttention._sliding_chunks_matmul_attn_probs_value with
    # its ``as_strided`` chunking (3w chunks, step w) written as reshapes and a concat.
    batch_size, seq_len, num_heads, head_dim = value.size()
    w = window_overlap
    chunked_attn_probs = attn_probs.transpose(1, 2).reshape(
        batch_size * num_heads, seq_len // w, w, 2 * w + 1
    )
    value = value.transpose(1, 2).reshape(batch_size * num_heads, seq_len, head_dim)
    padded = torch.nn.functional.pad(value, (0, 0, w, w), value=-1)
    x = padded.reshape(batch_size * num_heads, seq_len // w + 2, w, head_dim)
    chunked_value = torch.cat([x[:, :-2], x[:, 1:-1], x[:, 2:]], dim=2)
    chunked_attn_probs = self._pad_and_diagonalize(chunked_attn_probs)
    context = torch.einsum("bcwd,bcdh->bcwh", (chunked_attn_probs, chunked_value))
    return context.view(batch_size, num_heads, seq_len, head_dim).transpose(1, 2)


@contextlib.contextmanager
def _exportable(module: Any) -> Iterator[None]:
    """Swap model code the exporter mistranslates for equivalent code, during export only."""
    if not any(type(m).__name__ == "LongformerSelfAttention" for m in module.modules()):
        yield
        return
    from transformers.models.longformer import modeling_longformer as ml

    cls = ml.LongformerSelfAttention
    saved = {k: cls.__dict__[k] for k in ("_chunk", "_sliding_chunks_matmul_attn_probs_value")}
    cls._chunk = staticmethod(_longformer_chunk)
    cls._sliding_chunks_matmul_attn_probs_value = _longformer_probs_value
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(cls, k, v)


def input_names(model: Any) -> tuple[str, ...]:
    """The graph's input names: the family's, or a tensor model's own (made unique)."""
    if model.family != "tensor":
        return INPUT_NAMES["text" if model.family == "text" else "vision"]
    names: list[str] = []
    for n in model.input_names:
        n = re.sub(r"\W", "_", n) or "input"
        names.append(n if n not in names and n != OUTPUT_NAME else f"{n}_{len(names)}")
    return tuple(names)


def _dynamic_axes(model: Any) -> dict[str, dict[int, str]]:
    if model.family == "tensor":
        axes = dict(zip(input_names(model), model.dynamic_dims, strict=True))
        return {**axes, OUTPUT_NAME: {0: "batch"}}
    if model.family == "text":
        return {
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            OUTPUT_NAME: {0: "batch"},
        }
    return {"pixel_values": {0: "batch", 2: "height", 3: "width"}, OUTPUT_NAME: {0: "batch"}}


def export_onnx(
    model: Any, path: str | os.PathLike, example_inputs: tuple, opset: int = OPSET
) -> Path:
    """Export ``model.module`` (a :class:`~quantbench.models.LoadedModel`) to ``path``.

    Inputs are named ``pixel_values`` (vision) or ``input_ids``, ``attention_mask``
    (text), the output ``output``; batch, sequence length and image height/width are
    dynamic. Exporter errors propagate with the exporter's message.

    Example::

        >>> m = load_model("resnet18")                                  # doctest: +SKIP
        >>> export_onnx(m, "r18.onnx", m.make_inputs(2, 224))           # doctest: +SKIP
        PosixPath('r18.onnx')
    """
    import torch

    path = Path(path)
    names = input_names(model)
    if len(example_inputs) != len(names):
        raise QuantbenchError(
            f"export of {model.name} expects {len(names)} inputs ({', '.join(names)}), "
            f"got {len(example_inputs)}"
        )
    with (
        warnings.catch_warnings(),
        torch.inference_mode(False),
        torch.no_grad(),
        _exportable(model.module),
    ):
        warnings.simplefilter("ignore")  # tracer warnings about Python ints, deprecation notes
        torch.onnx.export(
            model.module,
            tuple(example_inputs),
            str(path),
            input_names=list(names),
            output_names=[OUTPUT_NAME],
            dynamic_axes=_dynamic_axes(model),
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    return path


def _second_inputs(model: Any, example: tuple) -> tuple:
    """Another shape (batch 1, other size; text with padding) to catch baked-in shapes."""
    if model.family == "text":
        seq = int(example[0].shape[1])
        other = seq // 2 if seq >= 8 else seq + 3
        if model.max_input_size:
            other = min(other, model.max_input_size)
        ids, mask = model.make_inputs(1, other, seed=4321)
        mask = mask.clone()
        mask[:, other - other // 3 :] = 0  # trailing padding: the mask must be honoured
        return ids, mask
    if model.family == "tensor":  # batch 1, and the named dims at another size
        return model.make_inputs(1, (model.ref_input_size or 1) + 3, seed=4321)
    return model.make_inputs(1, int(example[0].shape[-1]) + 32, seed=4321)


def _compare(ref: Any, out: Any) -> dict[str, Any]:
    import numpy as np

    if tuple(ref.shape) != tuple(out.shape):
        return {"shape": list(out.shape), "expected_shape": list(ref.shape), "cosine": 0.0}
    a = ref.detach().double().flatten().cpu().numpy()
    b = out.detach().double().flatten().cpu().numpy()
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    # all-zero outputs (a random MobileNetV2 can give them) agree only with zeros
    cos = float(a @ b / (na * nb)) if na and nb else float(na == nb)
    return {
        "shape": list(out.shape),
        "max_abs_err": float(np.abs(a - b).max()) if a.size else 0.0,
        "cosine": round(cos, 8),
    }


def check_against_torch(
    reference: Any, run: Any, inputs: list[tuple], min_cosine: float, what: str
) -> dict[str, Any]:
    """``run(*x)`` (an exported or converted graph) vs ``reference(*x)`` (torch fp32) on
    each input set; raise if they disagree. A model of one fixed input size (a ViT) does
    not run at another shape in torch either: that point is skipped, not failed (the
    first input set must run)."""
    import torch

    checks = []
    for i, x in enumerate(inputs):
        shape = [list(t.shape) for t in x]
        try:
            with torch.inference_mode():
                ref = reference(*x)
        except Exception as e:
            if i == 0:
                raise
            checks.append({"input_shape": shape, "skipped": f"torch: {first_line(e)}"})
            continue
        c = {**_compare(ref, run(*x)), "input_shape": shape}
        checks.append(c)
        if c["cosine"] < min_cosine:
            raise RuntimeError(f"{what} disagrees with torch at input shape {shape}: {c}")
    compared = [c for c in checks if "cosine" in c]
    return {
        "cosine": min(c["cosine"] for c in compared),
        "max_abs_err": max(c.get("max_abs_err", 0.0) for c in compared),
        "points": checks,
    }


def export_check(model: Any, module: Any, inputs: list[tuple]) -> dict[str, Any]:
    """ORT output vs torch fp32 on each input set; raise if the graph disagrees."""
    return check_against_torch(
        model.module, module, inputs, _MIN_EXPORT_COSINE, "the exported ONNX graph"
    )


@dataclass
class Export:
    """The shared fp32 export of one model: its file, the seconds it took, its check, and
    what recipes derive from it alone (``cache``: the preprocessed graph, calibration
    ranges), made once and reused by every recipe and every fallback step."""

    path: Path
    seconds: float
    check: dict[str, Any]
    cache: dict[Any, Any] = field(default_factory=dict)
    given: Any = None  # the GivenOnnx session, when the model is an ONNX file


# One fp32 export per loaded model, shared by every ORT recipe applied to it (Longformer
# takes ~20 s to export); dropped, and its directory removed, with the model.
_EXPORTS: weakref.WeakKeyDictionary[Any, Export | str] = weakref.WeakKeyDictionary()


def _example_inputs(model: Any, ctx: QuantContext) -> tuple:
    # Batch 2 at the calibration size: a traced batch of 1 can bake the batch into reshapes.
    size = 16 if model.family == "text" else 64
    if model.family == "tensor":
        return model.make_inputs(2, model.ref_input_size or 1, seed=1234)
    if ctx.calib_inputs:
        size = int(ctx.calib_inputs[0][0].shape[-1])
    return model.make_inputs(2, size, seed=1234)


def _given_copy(given: Any, d: str) -> Export:
    """An ONNX file given as the model, where an export would be: a copy in ``d`` (the
    recipes write next to it), its external data inlined when it fits in one file."""
    import onnx

    path = Path(d) / "fp32.onnx"
    if len(given.files) == 1:
        shutil.copyfile(given.onnx_file, path)
    else:
        m = onnx.load(given.onnx_file)  # with its external data
        big = m.ByteSize() >= 2**31 - 2**20  # protobuf's 2 GiB limit for one file
        onnx.save_model(m, str(path), save_as_external_data=big, location="fp32.onnx.data")
    check = {"source": "the ONNX file as given: no export, nothing to check against torch"}
    return Export(path, 0.0, check, given=given)


def graph_inputs(model: Any, ctx: QuantContext) -> tuple[list[str], list[tuple]]:
    """The graph's input names and ``ctx``'s calibration batches as the graph takes them."""
    given = given_file(model)
    if given is None:
        return list(input_names(model)), ctx.calib_inputs
    return list(given.input_names), [given.feeds(b) for b in ctx.calib_inputs]


def exported(model: Any, ctx: QuantContext) -> Export:
    """``model``'s fp32 export, made (and checked against torch) at the first call; for an
    ONNX file given as the model, a copy of the file."""
    hit = _EXPORTS.get(model.module)
    if isinstance(hit, str):  # a failed export fails once, not once per recipe
        raise RuntimeError(hit)
    if hit is not None and hit.path.is_file():
        return hit
    d = tempfile.mkdtemp(prefix="quantbench-onnx-export-")
    if given_file(model) is not None:
        try:
            exp = _given_copy(model.module, d)
        except Exception:
            shutil.rmtree(d, ignore_errors=True)
            raise
        weakref.finalize(model.module, shutil.rmtree, d, True)
        _EXPORTS[model.module] = exp
        return exp
    try:
        example = _example_inputs(model, ctx)
        t = time.perf_counter()
        path = export_onnx(model, Path(d) / "fp32.onnx", example)
        seconds = time.perf_counter() - t
        check = export_check(model, OrtModule(path), [example, _second_inputs(model, example)])
    except Exception as e:
        shutil.rmtree(d, ignore_errors=True)
        _EXPORTS[model.module] = f"ONNX export failed: {first_line(e)}"
        raise
    weakref.finalize(model.module, shutil.rmtree, d, True)
    _EXPORTS[model.module] = exp = Export(path, seconds, check)
    return exp
