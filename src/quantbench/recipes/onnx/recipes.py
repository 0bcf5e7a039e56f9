"""The ONNX Runtime recipes: ``ort-fp32`` (the exported graph), ``ort-dynamic-int8``
(``quantize_dynamic``) and ``ort-static-int8`` (``quantize_static``, QDQ) with its
entropy / percentile calibration variants (``ort-int4-weight-only``: :mod:`.int4`)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantbench import cpu, waitpolicy
from quantbench.errors import QuantbenchError, UnsupportedError, first_line
from quantbench.recipes import Artifact, QuantContext, Recipe, recipe, register
from quantbench.recipes.eager import calibration_note
from quantbench.recipes.onnx.calibrate import CALIBRATE_METHODS, calibrate
from quantbench.recipes.onnx.export import Export, exported, graph_inputs
from quantbench.recipes.onnx.given import given_file
from quantbench.recipes.onnx.graph import given_nodes, graph_facts, layer_nodes, shield_float_nodes
from quantbench.recipes.onnx.runtime import PROVIDER, RUNTIME, OrtModule, require


def _artifact(
    recipe: str,
    path: Path,
    out_dir: str,
    exp: Export,
    quantize_s: float,
    notes: list[str],
    details: dict[str, Any],
) -> Artifact:
    # a quantized ONNX file given as the model takes its inputs as the file does
    module = exp.given.like(path, out_dir) if exp.given else OrtModule(path, cleanup_dir=out_dir)
    facts = graph_facts(path)
    return Artifact(
        recipe,
        module,
        runtime=RUNTIME,
        notes=notes,
        size_bytes=facts["size_bytes"],
        file=path,
        quantized_modules=facts["quantized"],
        float_modules=facts["float"],
        int8_param_fraction=facts["int8_param_fraction"],
        param_bytes_by_dtype=facts["param_bytes_by_dtype"],
        compile_s=exp.seconds + quantize_s,
        details={
            "provider": PROVIDER,
            "qdq_pairs": facts["qdq_pairs"],
            "opset": facts["opset"],
            "export_check": exp.check,
            "export_s": round(exp.seconds, 3),
            "quantize_s": round(quantize_s, 3),
            "intra_op_threads": module.threads,
            "spinning": waitpolicy.ort_readback(module.options),
            **details,
        },
    )


def _new_dir() -> tuple[str, Path]:
    d = tempfile.mkdtemp(prefix="quantbench-ort-")
    return d, Path(d) / "model.onnx"


def _preprocess(src: Path, scratch: str, notes: list[str]) -> Path:
    """onnxruntime's quant_pre_process (symbolic shape inference, graph cleanup), if it works."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = Path(scratch) / "pre.onnx"
    try:
        with _quiet(scratch):
            # auto_merge: let symbolic shape inference unify dims such as the tracer's
            # Min(max_positions, sequence) with sequence instead of giving up
            quant_pre_process(str(src), str(out), auto_merge=True)
        return out
    except Exception as e:
        first = first_line(e, with_type=False)
        notes.append(f"quant_pre_process failed ({first}); quantized the exported graph as is")
        return src


def _prepared(exp: Export, notes: list[str]) -> Path:
    """:func:`_preprocess` of the shared export, made once per export: every recipe, and
    every step of a fallback search, quantizes the same preprocessed graph."""
    hit = exp.cache.get("preprocessed")
    if hit is None or not hit[0].is_file():
        scratch = Path(tempfile.mkdtemp(prefix="pre-", dir=exp.path.parent))
        said: list[str] = []
        hit = exp.cache["preprocessed"] = (_preprocess(exp.path, str(scratch), said), said)
    notes += hit[1]
    return hit[0]


def _digest(batches: list[tuple]) -> str:
    h = hashlib.sha256()
    for b in batches:
        for t in b:
            a = t.detach().contiguous().numpy()
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def _calibrated(
    exp: Export, src: Path, op_types: tuple[str, ...] | None, method: str, names: list[str],
    batches: list[tuple],
) -> Path:  # fmt: skip
    """:func:`calibrate`'s cache for these settings and batches, computed once per export
    (the ranges depend on the fp32 graph alone, not on which nodes stay float)."""
    key = ("calibration", str(src), op_types, method, tuple(names), _digest(batches))
    hit = exp.cache.get(key)
    if hit is None or not hit.is_file():
        with tempfile.TemporaryDirectory(prefix="quantbench-ort-calib-") as scratch:
            with _quiet(scratch):
                made = calibrate(src, scratch, op_types, method, names, batches)
            fd, kept = tempfile.mkstemp(prefix="calib-", suffix=".json", dir=exp.path.parent)
            os.close(fd)
            hit = Path(shutil.copyfile(made, kept))
        exp.cache[key] = hit
    return hit


def _float_nodes(src: Path, model: Any, ctx: QuantContext, gemm_parts: bool = False) -> list[str]:
    """The nodes of ``src`` that ``ctx.float_layers`` (torch module names) became: what
    the quantizer is told to leave alone (``nodes_to_exclude``)."""
    if not ctx.float_layers:
        return []
    if given_file(model) is not None:  # an ONNX file's layers are its nodes' names
        return given_nodes(src, ctx.float_layers, gemm_parts)
    nodes = layer_nodes(src, model.module, ctx.float_layers, gemm_parts)
    return sorted({n for ns in nodes.values() for n in ns})


def _shield(path: Path, exclude: list[str], notes: list[str]) -> None:
    """:func:`shield_float_nodes`, said in a note when it had to."""
    shielded = shield_float_nodes(path, exclude) if exclude else []
    if shielded:
        notes.append(
            f"{len(shielded)} node(s) left float read a dequantized input: a copy (Sum) before "
            "each keeps onnxruntime's WeightBiasQuantization from giving them int8 weights "
            "at load"
        )


def _excluded(nodes: list[str]) -> dict[str, Any]:
    return {"float_nodes": nodes} if nodes else {}


@dataclass(frozen=True)
class OrtFp32Config:
    pass


@recipe(
    "ort-fp32",
    precision="fp32",
    runtime=RUNTIME,
    description="the model exported to ONNX and run by ONNX Runtime in fp32 (the ORT baseline)",
    config=OrtFp32Config(),
    quantizes=(),
    file_format="onnx",
    library="onnxruntime",
)
def _ort_fp32(model: Any, config: OrtFp32Config, ctx: QuantContext) -> Artifact:
    require()
    exp = exported(model, ctx)
    out_dir, path = _new_dir()
    try:
        os.link(exp.path, path)  # same bytes as the shared export, no copy
    except OSError:
        shutil.copyfile(exp.path, path)
    return _artifact("ort-fp32", path, out_dir, exp, 0.0, [], {})


@dataclass(frozen=True)
class OrtDynamicInt8Config:
    """``quantize_dynamic``: int8 weights, uint8 activations quantized per batch at run time.

    ``op_types`` None means MatMul + Gather (the embedding tables) for text models and
    Conv + MatMul + Gather for vision ones. ``reduce_range`` None means 7-bit weights only
    on x86 without VNNI, where u8*s8 products can saturate 16-bit accumulators.
    """

    per_channel: bool = True
    op_types: tuple[str, ...] | None = None
    reduce_range: bool | None = None
    preprocess: bool = True


def _reduce_range(setting: bool | None) -> bool:
    if setting is not None:
        return setting
    return not cpu.is_arm() and not cpu.has_vnni()


@recipe(
    "ort-dynamic-int8",
    precision="int8 weights (MatMul, Gather/embeddings, Conv), dynamic activations",
    runtime=RUNTIME,
    description=(
        "ONNX Runtime quantize_dynamic: per-channel int8 weights incl. embedding tables, uint8 "
        "activations quantized on the fly"
    ),
    config=OrtDynamicInt8Config(),
    float_layers=True,
    quantizes=("MatMul", "Gather", "Conv"),
    file_format="onnx",
    library="onnxruntime",
    baseline="ort-fp32",
)
def _ort_dynamic_int8(model: Any, config: OrtDynamicInt8Config, ctx: QuantContext) -> Artifact:
    require()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    exp = exported(model, ctx)
    out_dir, path = _new_dir()
    notes: list[str] = []
    op_types = config.op_types or (
        ("MatMul", "Gather", "Attention", "EmbedLayerNormalization")
        if model.family == "text"
        else ("Conv", "MatMul", "Gather")
    )
    reduce_range = _reduce_range(config.reduce_range)
    t = time.perf_counter()
    try:
        src = _prepared(exp, notes) if config.preprocess else exp.path
        exclude = _float_nodes(src, model, ctx, gemm_parts=True)
        with (
            tempfile.TemporaryDirectory(prefix="quantbench-ort-pre-") as scratch,
            _quiet(scratch),
        ):
            quantize_dynamic(
                str(src),
                str(path),
                op_types_to_quantize=list(op_types),
                per_channel=config.per_channel,
                reduce_range=reduce_range,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=exclude,
                extra_options={"MatMulConstBOnly": True},
            )
        _shield(path, exclude, notes)
    except Exception:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    quantize_s = time.perf_counter() - t
    try:
        art = _artifact(
            "ort-dynamic-int8", path, out_dir, exp, quantize_s, notes,
            {"per_channel": config.per_channel, "reduce_range": reduce_range,
             "op_types": list(op_types), "weight_type": "int8", "activation_type": "uint8",
             **_excluded(exclude)},
        )  # fmt: skip
    except Exception:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    if "ConvInteger" in art.quantized_modules:
        art.notes.append(
            "convolutions run as ConvInteger, which onnxruntime's CPU provider implements "
            "without fused int8 kernels: expect it slower than fp32; ort-static-int8 is the "
            "fast path for CNNs"
        )
    return art


@contextlib.contextmanager
def _quiet(workdir: str) -> Iterator[None]:
    """Run onnxruntime.quantization tools without their side effects on the run.

    They log advice through the root logger, calibrators print() progress, and a failed
    symbolic shape inference dumps ``sym_shape_infer_temp.onnx`` (+ data) into the
    current directory: run them inside the scratch directory.
    """
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.chdir(workdir),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


@dataclass(frozen=True)
class OrtStaticInt8Config:
    """``quantize_static`` in QDQ format with per-channel int8 weights.

    ``activation_type`` "auto" picks uint8 activations on x86 (VNNI's ``vpdpbusd`` and
    the AVX2 path multiply unsigned by signed bytes, so u8 activations x s8 weights run
    directly while s8 x s8 needs a shift and a compensation term) and int8 on ARM, whose
    dot-product instructions are signed x signed. ``calibrate_method``: minmax, entropy,
    percentile. ``op_types`` None means every op onnxruntime can quantize for vision
    models, and only the weight-bearing MatMul/Gemm/Gather for text ones: their attention
    masks hold -inf / float-min values that no 8-bit range can represent (entropy and
    percentile calibration fail on them, min/max would erase the padding).
    """

    calibrate_method: str = "minmax"
    per_channel: bool = True
    activation_type: str = "auto"
    reduce_range: bool = False
    op_types: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.calibrate_method not in CALIBRATE_METHODS:
            raise QuantbenchError(
                f"unknown calibrate_method '{self.calibrate_method}': "
                f"valid: {', '.join(CALIBRATE_METHODS)}"
            )
        if self.activation_type not in ("auto", "uint8", "int8"):
            raise QuantbenchError("activation_type must be auto, uint8 or int8")


# Weight-bearing ops quantize_static turns int8 (QDQ); vision models also get QDQ around
# activation-only ops (Add, pooling, ...).
_STATIC_QUANTIZES = ("Conv", "MatMul", "Gemm", "Gather")


@recipe(
    "ort-static-int8",
    precision="int8 weights and activations (QDQ)",
    runtime=RUNTIME,
    description=(
        "ONNX Runtime quantize_static, QDQ format: per-channel int8 weights, uint8 activations "
        "calibrated by min/max on sample batches"
    ),
    config=OrtStaticInt8Config(),
    float_layers=True,
    quantizes=_STATIC_QUANTIZES,
    file_format="onnx",
    library="onnxruntime",
    baseline="ort-fp32",
)
def _ort_static_int8(model: Any, config: OrtStaticInt8Config, ctx: QuantContext) -> Artifact:
    require()
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if not ctx.calib_inputs:
        raise UnsupportedError("ort-static-int8 needs calibration batches")
    exp = exported(model, ctx)
    act = config.activation_type
    if act == "auto":
        act = "int8" if cpu.is_arm() else "uint8"
    out_dir, path = _new_dir()
    notes: list[str] = []
    names, batches = graph_inputs(model, ctx)
    op_types = config.op_types or (("MatMul", "Gemm", "Gather") if model.family == "text" else None)
    t = time.perf_counter()
    try:
        src = _prepared(exp, notes)
        exclude = _float_nodes(src, model, ctx)
        cache = _calibrated(exp, src, op_types, config.calibrate_method, names, batches)
        with (
            tempfile.TemporaryDirectory(prefix="quantbench-ort-pre-") as scratch,
            _quiet(scratch),
        ):
            quantize_static(
                str(src),
                str(path),
                None,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(op_types) if op_types else None,
                per_channel=config.per_channel,
                reduce_range=config.reduce_range,
                activation_type=QuantType.QUInt8 if act == "uint8" else QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=getattr(
                    CalibrationMethod, CALIBRATE_METHODS[config.calibrate_method]
                ),
                calibration_cache_path=str(cache),
                nodes_to_exclude=exclude,
                extra_options={"ActivationSymmetric": act == "int8", "WeightSymmetric": True},
            )
        _shield(path, exclude, notes)
    except QuantbenchError:  # a float layer that is no node: not the quantizer's failure
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    except Exception as e:
        shutil.rmtree(out_dir, ignore_errors=True)
        first = first_line(e, with_type=False)
        raise UnsupportedError(f"onnxruntime static quantization failed: {first}") from e
    quantize_s = time.perf_counter() - t
    notes.append(
        calibration_note(ctx).replace("calibrated", f"calibrated ({config.calibrate_method})", 1)
    )
    suffix = "" if config.calibrate_method == "minmax" else f"-{config.calibrate_method}"
    try:
        return _artifact(
            f"ort-static-int8{suffix}", path, out_dir, exp, quantize_s, notes,
            {"format": "QDQ", "calibrate_method": config.calibrate_method,
             "op_types": list(op_types) if op_types else "all",
             "per_channel": config.per_channel, "weight_type": "int8", "activation_type": act,
             **_excluded(exclude)},
        )  # fmt: skip
    except Exception:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise


for _method, _how in (("entropy", "entropy (KL)"), ("percentile", "99.999th-percentile")):
    register(
        Recipe(
            name=f"ort-static-int8-{_method}",
            precision="int8 weights and activations (QDQ)",
            runtime=RUNTIME,
            description=(
                f"ort-static-int8 with activation ranges calibrated by {_how} instead of min/max"
            ),
            apply=_ort_static_int8,
            config=OrtStaticInt8Config(calibrate_method=_method),
            float_layers=True,
            quantizes=_STATIC_QUANTIZES,
            file_format="onnx",
            library="onnxruntime",
            baseline="ort-fp32",
        )
    )
