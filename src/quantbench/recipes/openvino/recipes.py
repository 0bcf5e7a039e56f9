"""The OpenVINO recipes: ``ov-fp32`` (the converted model), ``ov-int8`` (``nncf.quantize``,
static int8 calibrated on the run's data) and the weight-only ``ov-int8-weight-only`` /
``ov-int4-weight-only`` (``nncf.compress_weights``)."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from quantbench.errors import QuantbenchError, UnsupportedError, first_line
from quantbench.recipes import Artifact, QuantContext, Recipe, recipe, register
from quantbench.recipes.openvino.runtime import EXTRA, RUNTIME, require

PRESETS = ("auto", "performance", "mixed")
WEIGHT_MODES = ("int8_asym", "int8_sym", "int4_sym", "int4_asym")


@dataclass(frozen=True)
class OvFp32Config:
    pass


@dataclass(frozen=True)
class OvInt8Config:
    """``nncf.quantize``: per-channel int8 weights, int8 activations calibrated on the
    run's calibration data (one input at a time, as NNCF expects). ``preset`` auto is
    NNCF's default (performance: symmetric activations; mixed for transformers, with
    ``model_type=TRANSFORMER``, which also applies SmoothQuant)."""

    preset: str = "auto"
    fast_bias_correction: bool = True

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise QuantbenchError(f"ov-int8 preset must be one of {', '.join(PRESETS)}")


@dataclass(frozen=True)
class OvWeightOnlyConfig:
    """``nncf.compress_weights``: weights of MatMul and embedding (Gather) layers stored
    in ``mode`` and dequantized as they are read; activations stay float. ``group_size``
    0 is NNCF's default (128 for int4; per channel for int8); a layer whose input does
    not divide by it gets the largest power of two >= 32 that does (NNCF's ADJUST)."""

    BITS: ClassVar[str] = "int8"
    mode: str = "int8_asym"
    group_size: int = 0
    ratio: float = 1.0

    def __post_init__(self) -> None:
        modes = [m for m in WEIGHT_MODES if m.startswith(self.BITS)]
        if self.mode not in modes:
            raise QuantbenchError(
                f"ov-{self.BITS}-weight-only mode must be one of {', '.join(modes)}"
            )
        if self.group_size < 0 or not 0 < self.ratio <= 1:
            raise QuantbenchError("group_size must be >= 0 and ratio in (0, 1]")


@dataclass(frozen=True)
class OvInt4WeightOnlyConfig(OvWeightOnlyConfig):
    """:class:`OvWeightOnlyConfig` for int4 (``mode`` int4_sym or int4_asym)."""

    BITS: ClassVar[str] = "int4"
    mode: str = "int4_sym"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """NNCF logs INFO lines and draws progress bars on every call: keep them off the
    run's terminal (a failure still reaches the caller as an exception)."""
    import warnings

    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _converted(model: Any, ctx: QuantContext) -> Any:
    require()
    from quantbench.recipes.onnx.export import _example_inputs, _second_inputs
    from quantbench.recipes.openvino.convert import converted

    example = _example_inputs(model, ctx)
    return converted(model, example, [example, _second_inputs(model, example)])


def _artifact(name: str, ov_model: Any, conv: Any, quantize_s: float, notes: list[str],
              details: dict[str, Any]) -> Artifact:  # fmt: skip
    """Save ``ov_model`` as an IR in a fresh directory and compile that file (what ships
    is what is measured)."""
    import nncf
    import openvino as ov

    from quantbench.recipes.openvino.convert import ir_facts
    from quantbench.recipes.openvino.runtime import OvModule, save_ir

    out_dir = tempfile.mkdtemp(prefix="quantbench-ov-")
    xml = Path(out_dir) / "model.xml"
    try:
        size = save_ir(ov_model, xml)
        module = OvModule(xml, cleanup_dir=out_dir)
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    facts = ir_facts(ov_model)
    return Artifact(
        name, module, runtime=RUNTIME,
        notes=[*conv.notes, "size: the IR's .xml and .bin files (weights as stored, no fp16 "
               "compression)", *notes],
        size_bytes=size, file=xml, quantized_modules=facts["quantized"],
        float_modules=facts["float"], int8_param_fraction=facts["low_fraction"],
        param_bytes_by_dtype=facts["bytes_by_type"], compile_s=conv.seconds + quantize_s,
        details={
            "device": "CPU", "threads": module.threads, "compiled": module.settings,
            "convert_check": conv.check, "convert_s": round(conv.seconds, 3),
            "quantize_s": round(quantize_s, 3), "openvino": ov.get_version(),
            "nncf": nncf.__version__, **details,
        },
    )  # fmt: skip


def _scope(ov_model: Any, ctx: QuantContext) -> dict[str, Any]:
    from quantbench.recipes.openvino.convert import ignored_scope

    if not ctx.float_layers:
        return {}
    return {"ignored_scope": ignored_scope(ov_model, ctx.float_layers)}


@recipe(
    "ov-fp32",
    precision="fp32",
    runtime=RUNTIME,
    description=(
        "OpenVINO: openvino.convert_model -> IR, compiled for the CPU plugin in f32 with "
        "the run's threads (the OpenVINO baseline)"
    ),
    config=OvFp32Config(),
    file_format="openvino-ir",
    library=EXTRA,
)
def _ov_fp32(model: Any, config: OvFp32Config, ctx: QuantContext) -> Artifact:
    conv = _converted(model, ctx)
    return _artifact("ov-fp32", conv.model, conv, 0.0, [], {})


@recipe(
    "ov-int8",
    precision="int8 weights and activations",
    runtime=RUNTIME,
    description=(
        "OpenVINO + NNCF: nncf.quantize (per-channel int8 weights, int8 activations "
        "calibrated on sample inputs; model_type TRANSFORMER for text) -> IR"
    ),
    config=OvInt8Config(),
    float_layers=True,
    quantizes=("Conv", "MatMul", "Gather"),
    file_format="openvino-ir",
    library=EXTRA,
    baseline="ov-fp32",
)
def _ov_int8(model: Any, config: OvInt8Config, ctx: QuantContext) -> Artifact:
    if not ctx.calib_inputs:
        raise UnsupportedError("ov-int8 needs calibration batches")
    conv = _converted(model, ctx)
    import nncf

    # NNCF collects statistics one input at a time
    items = [tuple(t[i : i + 1].cpu().numpy() for t in b) for b in ctx.calib_inputs
             for i in range(int(b[0].shape[0]))]  # fmt: skip
    kw: dict[str, Any] = _scope(conv.model, ctx)
    if model.family == "text":
        kw["model_type"] = nncf.ModelType.TRANSFORMER
    if config.preset != "auto":
        kw["preset"] = nncf.QuantizationPreset(config.preset)
    t = time.perf_counter()
    try:
        with _quiet():
            q = nncf.quantize(conv.model, nncf.Dataset(items), subset_size=len(items),
                              fast_bias_correction=config.fast_bias_correction, **kw)  # fmt: skip
    except Exception as e:
        raise UnsupportedError(f"nncf.quantize failed: {first_line(e)}") from e
    from quantbench.recipes.eager import calibration_note

    details = {"preset": config.preset, "model_type": "transformer" if model.family == "text"
               else "default", "calibration_samples": len(items)}  # fmt: skip
    if ctx.float_layers:
        details["ignored_scope"] = sorted(ctx.float_layers)
    return _artifact("ov-int8", q, conv, time.perf_counter() - t, [calibration_note(ctx)], details)


def _weight_only(model: Any, config: OvWeightOnlyConfig, ctx: QuantContext) -> Artifact:
    name = f"ov-{config.BITS}-weight-only"  # the config's class holds the recipe's width
    if model.family != "text":
        raise UnsupportedError(
            f"{name} compresses transformers' MatMul and embedding weights; use ov-int8 for "
            "vision models"
        )
    conv = _converted(model, ctx)
    import nncf
    from nncf.quantization.advanced_parameters import (
        AdvancedCompressionParameters,
        GroupSizeFallbackMode,
    )

    kw: dict[str, Any] = _scope(conv.model, ctx)
    if config.group_size:
        kw["group_size"] = config.group_size
    if config.mode.startswith("int4"):
        kw["ratio"] = config.ratio
    adv = AdvancedCompressionParameters(group_size_fallback_mode=GroupSizeFallbackMode.ADJUST)
    t = time.perf_counter()
    try:
        with _quiet():
            # compress_weights rewrites the model it is given: the shared one stays fp32
            q = nncf.compress_weights(
                conv.model.clone(), mode=nncf.CompressWeightsMode(config.mode),
                advanced_parameters=adv, **kw,
            )  # fmt: skip
    except Exception as e:
        raise UnsupportedError(f"nncf.compress_weights failed: {first_line(e)}") from e
    notes = [
        "weights only: activations stay float; OpenVINO's CPU plugin may quantize the "
        "activations of compressed MatMuls on the fly (DYNAMIC_QUANTIZATION_GROUP_SIZE)"
    ]
    details: dict[str, Any] = {"mode": config.mode, "group_size": config.group_size or "nncf default",
                               "ratio": config.ratio}  # fmt: skip
    if ctx.float_layers:
        details["ignored_scope"] = sorted(ctx.float_layers)
    return _artifact(name, q, conv, time.perf_counter() - t, notes, details)


for _mode, _what in (("int8_asym", "int8 (asymmetric, per channel)"),
                     ("int4_sym", "int4 (symmetric, groups of 128 by default)")):  # fmt: skip
    register(
        Recipe(
            name=f"ov-{_mode[:4]}-weight-only",
            precision=f"{_what[:4]} weights, float activations",
            runtime=RUNTIME,
            description=(
                f"OpenVINO + NNCF: nncf.compress_weights, MatMul and embedding weights in "
                f"{_what}, float activations (transformers) -> IR"
            ),
            apply=_weight_only,
            config=OvWeightOnlyConfig() if _mode == "int8_asym" else OvInt4WeightOnlyConfig(),
            float_layers=True,
            quantizes=("MatMul", "Gather"),
            file_format="openvino-ir",
            library=EXTRA,
            families=("text",),
            baseline="ov-fp32",
        )
    )
