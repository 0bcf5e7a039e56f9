"""From a torch model to an OpenVINO model: ``openvino.convert_model`` (once per loaded
model, shared by every OpenVINO recipe and checked against torch), the names NNCF's
``ignored_scope`` needs for a torch layer, and what an IR holds (weights by precision).
"""

from __future__ import annotations

import re
import time
import warnings
import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from quantbench.errors import QuantbenchError, first_line

# The converted model must agree with torch before anything is measured on it.
MIN_CONVERT_COSINE = 0.999
# Ops whose weights NNCF quantizes or compresses, and the input that holds them.
_WEIGHT_INPUT = {"Convolution": 1, "GroupConvolution": 1, "MatMul": 1, "Gather": 0}
# What lies between a weight constant and the op that reads it (dequantization, layout).
_PASS_THROUGH = {"Convert", "Subtract", "Multiply", "Reshape", "Transpose", "FakeQuantize",
                 "FakeConvert", "Unsqueeze", "Squeeze"}  # fmt: skip
_LOW = {"i8": "int8", "u8": "int8", "i4": "int4", "u4": "int4", "nf4": "int4"}
# OpenVINO's element types as torch spells dtypes (the other recipes' bytes per dtype).
_DTYPE = {"f32": "float32", "f16": "float16", "bf16": "bfloat16", "i64": "int64",
          "i32": "int32", "i8": "int8", "u8": "uint8", "i4": "int4", "u4": "uint4"}  # fmt: skip


@dataclass
class Converted:
    """The shared conversion of one model: the OpenVINO model, the seconds it took, its
    check against torch, and notes (BatchNorm folded in torch first, or not)."""

    model: Any
    seconds: float
    check: dict[str, Any]
    notes: list[str] = field(default_factory=list)


_CONVERTED: weakref.WeakKeyDictionary[Any, Converted | str] = weakref.WeakKeyDictionary()


def _fold_batchnorm(module: Any, notes: list[str]) -> Any:
    """``module`` with BatchNorm folded into its convolutions, in torch: OpenVINO folds
    them itself but renames the convolutions (``Multiply_5466``), and NNCF's
    ``ignored_scope`` finds a layer by its name. Unchanged when it cannot be traced."""
    import torch

    if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        return module
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(module)
    except Exception as e:  # torch.fx tracing errors have many types
        notes.append(
            "BatchNorm not folded in torch (not traceable by torch.fx: "
            f"{first_line(e, with_type=False)}): convolutions OpenVINO folds BatchNorm into "
            "lose their names, and cannot be kept in float by name"
        )
        return module


def converted(model: Any, example: tuple, check_inputs: list[tuple]) -> Converted:
    """``model``'s OpenVINO model (every dim dynamic), converted and checked at the first
    call, then shared by every OpenVINO recipe applied to it. The caller must not change
    it: NNCF's ``compress_weights`` rewrites its input, so it is given a clone."""
    hit = _CONVERTED.get(model.module)
    if isinstance(hit, str):  # a failed conversion fails once, not once per recipe
        raise RuntimeError(hit)
    if hit is not None:
        return hit
    import openvino as ov
    import torch

    notes: list[str] = []
    try:
        source = model.module.eval()
        if model.family != "text":
            source = _fold_batchnorm(source, notes)
        t = time.perf_counter()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings, deprecation notes
            ov_model = ov.convert_model(source, example_input=tuple(example))
        seconds = time.perf_counter() - t
        check = check_model(ov_model, model.module, check_inputs)
    except Exception as e:
        _CONVERTED[model.module] = f"OpenVINO conversion failed: {first_line(e)}"
        raise
    _CONVERTED[model.module] = hit = Converted(ov_model, seconds, check, notes)
    return hit


def check_model(ov_model: Any, module: Any, inputs: list[tuple]) -> dict[str, Any]:
    """OpenVINO's output vs torch's on each input set; raise if they disagree."""
    import openvino as ov
    import torch

    from quantbench.recipes.onnx.export import check_against_torch
    from quantbench.recipes.openvino.runtime import DEVICE, compile_config

    compiled = ov.Core().compile_model(ov_model, DEVICE, compile_config(torch.get_num_threads()))

    def run(*x: Any) -> Any:
        return torch.from_numpy(compiled([t.numpy() for t in x])[compiled.output(0)].copy())

    return check_against_torch(module, run, inputs, MIN_CONVERT_COSINE, "the OpenVINO model")


def ignored_scope(ov_model: Any, layers: frozenset[str]) -> Any:
    """NNCF's ``IgnoredScope`` for torch layers (module names): every node converted from
    one or from its submodules (``__module.<name>/<aten op>/<OV op>``). A layer no node
    came from is an error: a layer asked to stay float must not be quietly quantized."""
    import nncf

    names = [op.get_friendly_name() for op in ov_model.get_ordered_ops()]
    patterns = []
    for layer in sorted(layers):
        pattern = r"__module\." + re.escape(layer) + r"[./].*"
        if not any(re.fullmatch(pattern, n) for n in names):
            raise QuantbenchError(f"layer {layer} is no node of the OpenVINO model")
        patterns.append(pattern)
    return nncf.IgnoredScope(patterns=patterns)


def _weight_type(node: Any) -> str | None:
    """The element type of the constant behind a weight input, through dequantization."""
    for _ in range(8):
        kind = node.get_type_name()
        if kind == "Constant":
            return node.get_element_type().get_type_name()
        if kind not in _PASS_THROUGH:
            return None
        node = node.input_value(0).get_node()
    return None


def ir_facts(ov_model: Any) -> dict[str, Any]:
    """What a model holds: weight ops by the precision of their weights (``quantized``:
    ``{"MatMul (int8)": 12}``, ``float``), activation quantizers (``FakeQuantize``),
    stored bytes per element type and the fraction of weight elements below 16 bits."""
    quant: Counter[str] = Counter()
    floats: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    total = low = 0
    for op in ov_model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "FakeQuantize":
            quant["FakeQuantize"] += 1
        elif kind == "Constant":
            et = op.get_element_type().get_type_name()
            by_type[_DTYPE.get(et, et)] += op.get_byte_size()
            n = int(op.get_output_size() and _numel(op))
            if n > 1 and len(op.get_output_shape(0)) > 1:
                total += n
                low += n if et in _LOW else 0
        if kind in _WEIGHT_INPUT and op.get_input_size() > _WEIGHT_INPUT[kind]:
            et = _weight_type(op.input_value(_WEIGHT_INPUT[kind]).get_node())
            if et is None:
                continue  # an activation x activation MatMul (attention)
            if et in _LOW:
                quant[f"{kind} ({_LOW[et]})"] += 1
            else:
                floats[kind] += 1
    return {
        "quantized": dict(sorted(quant.items())),
        "float": dict(sorted(floats.items())),
        "bytes_by_type": dict(by_type),
        "low_fraction": low / total if total else 0.0,
    }


def _numel(op: Any) -> int:
    n = 1
    for d in op.get_output_shape(0):
        n *= int(d)
    return n
