"""ONNX Runtime recipes: the exported fp32 graph, dynamic int8, static (QDQ) int8 and int4.

Each recipe exports the model with ``torch.onnx.export`` (the TorchScript exporter,
``dynamo=False``: it exports all eight seed models with dynamic batch, sequence length
and image size, where ``torch.export`` stops on Longformer's data-dependent shapes),
quantizes the graph with ``onnxruntime.quantization`` and wraps an
``onnxruntime.InferenceSession`` so that it runs as ``module(*tensors)``. The ``.onnx``
file is what a user ships; it runs in plain onnxruntime with no quantbench installed.

- :mod:`~quantbench.recipes.onnx.runtime`: :class:`OrtModule`, the session as a module.
- :mod:`~quantbench.recipes.onnx.export`: :func:`export_onnx`, :func:`export_check`, and
  the fp32 export every ORT recipe of a model shares.
- :mod:`~quantbench.recipes.onnx.graph`: :func:`graph_facts`, what a graph quantized.
- :mod:`~quantbench.recipes.onnx.calibrate`: activation ranges for static int8.
- :mod:`~quantbench.recipes.onnx.recipes`: the recipes themselves.
- :mod:`~quantbench.recipes.onnx.int4`: ``ort-int4-weight-only`` (``MatMulNBits``), with
  :mod:`~quantbench.recipes.onnx.gptq`, its weight rounding.

onnx and onnxruntime are imported when a recipe is applied: without them the recipes are
listed and report ``unsupported``.

Example::

    >>> from quantbench.models import load_model
    >>> from quantbench.recipes import QuantContext, apply_recipe
    >>> m = load_model("resnet18")
    >>> art = apply_recipe("ort-static-int8", m, QuantContext("x86", [m.make_inputs(2, 224)]))
    >>> art.module(*m.make_inputs(1, 224)).shape                   # doctest: +SKIP
    torch.Size([1, 1000])
"""

from __future__ import annotations

from quantbench.recipes.onnx.export import (
    INPUT_NAMES,
    OPSET,
    OUTPUT_NAME,
    export_check,
    export_onnx,
)
from quantbench.recipes.onnx.graph import graph_facts
from quantbench.recipes.onnx.int4 import OrtInt4Config
from quantbench.recipes.onnx.recipes import (
    OrtDynamicInt8Config,
    OrtFp32Config,
    OrtStaticInt8Config,
)
from quantbench.recipes.onnx.runtime import PROVIDER, RUNTIME, OrtModule

__all__ = [
    "INPUT_NAMES",
    "OPSET",
    "OUTPUT_NAME",
    "PROVIDER",
    "RUNTIME",
    "OrtDynamicInt8Config",
    "OrtFp32Config",
    "OrtInt4Config",
    "OrtModule",
    "OrtStaticInt8Config",
    "export_check",
    "export_onnx",
    "graph_facts",
]
