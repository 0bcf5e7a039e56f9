"""OpenVINO recipes: the model converted to OpenVINO's IR (``.xml`` + ``.bin``), quantized
or weight-compressed by NNCF, compiled for OpenVINO's CPU plugin.

``ov-fp32`` is the converted model; ``ov-int8`` is ``nncf.quantize`` (static int8,
calibrated on the run's calibration data; ``model_type=TRANSFORMER`` for text models);
``ov-int8-weight-only`` and ``ov-int4-weight-only`` are ``nncf.compress_weights`` for
transformers. Each compiles its saved IR with the run's threads
(``INFERENCE_NUM_THREADS``) and f32 inference precision (on CPUs with bf16 the plugin
would otherwise run the fp32 baseline in bf16). Layers are kept in float through NNCF's
``ignored_scope`` (sensitivity, accuracy-aware fallback).

- :mod:`~quantbench.recipes.openvino.runtime`: :class:`OvModule`, :func:`save_ir`,
  :func:`load_ir`.
- :mod:`~quantbench.recipes.openvino.convert`: the one conversion per model every recipe
  shares, ``ignored_scope`` by torch layer name, what an IR holds.
- :mod:`~quantbench.recipes.openvino.recipes`: the recipes.

OpenVINO and NNCF are an optional extra (``pip install 'quantbench[openvino]'``): without
them the recipes are listed and report ``unsupported``; nothing imports them until a
recipe is applied or an IR is loaded.

Example::

    >>> from quantbench.models import load_model
    >>> from quantbench.recipes import QuantContext, apply_recipe
    >>> m = load_model("resnet18")
    >>> art = apply_recipe("ov-int8", m, QuantContext("x86", [m.make_inputs(2, 224)]))  # doctest: +SKIP
    >>> art.quantized_modules                                                            # doctest: +SKIP
    {'Convolution (int8)': 20, 'FakeQuantize': 29, 'MatMul (int8)': 1}
"""

from __future__ import annotations

from quantbench.recipes.openvino.recipes import OvFp32Config, OvInt8Config, OvWeightOnlyConfig
from quantbench.recipes.openvino.runtime import RUNTIME, OvModule, load_ir, save_ir

__all__ = [
    "RUNTIME",
    "OvFp32Config",
    "OvInt8Config",
    "OvModule",
    "OvWeightOnlyConfig",
    "load_ir",
    "save_ir",
]
