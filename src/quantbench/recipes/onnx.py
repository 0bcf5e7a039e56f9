"""ONNX Runtime recipes: the exported fp32 graph, dynamic int8 and static (QDQ) int8.

Each recipe exports the model with ``torch.onnx.export`` (the TorchScript exporter,
``dynamo=False``: it exports all eight seed models with dynamic batch, sequence length
and image size, where ``torch.export`` stops on Longformer's data-dependent shapes),
quantizes the graph with ``onnxruntime.quantization`` and wraps an
``onnxruntime.InferenceSession`` so that it runs as ``module(*tensors)``. The ``.onnx``
file is what a user ships; it runs in plain onnxruntime with no quantbench installed.

Example::

    >>> from quantbench.models import load_model
    >>> from quantbench.recipes import QuantContext, apply_recipe
    >>> m = load_model("resnet18")
    >>> art = apply_recipe("ort-static-int8", m, QuantContext("x86", [m.make_inputs(2, 224)]))
    >>> art.module(*m.make_inputs(1, 224)).shape                   # doctest: +SKIP
    torch.Size([1, 1000])
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import shutil
import tempfile
import time
import warnings
import weakref
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantbench.errors import QuantbenchError, UnsupportedError
from quantbench.recipes import Artifact, QuantContext, Recipe, register
from quantbench.recipes import eager as _eager

RUNTIME = "onnxruntime"
PROVIDER = "CPUExecutionProvider"
# 17: the first opset with LayerNormalization (one node instead of seven for every
# transformer norm) and well inside what onnxruntime's quantizer and kernels support.
OPSET = 17
INPUT_NAMES = {"vision": ("pixel_values",), "text": ("input_ids", "attention_mask")}
OUTPUT_NAME = "output"
# The exported graph must agree with torch before anything is measured on it.
_MIN_EXPORT_COSINE = 0.999

# Ops that compute in (or convert to/from) 8-bit integers, as onnxruntime's quantizer
# writes them; plus any QLinear* op.
_INT8_OPS = {
    "MatMulInteger", "ConvInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul",
    "QuantizeLinear", "DequantizeLinear", "QGemm", "QAttention", "QEmbedLayerNormalization",
    "DynamicQuantizeLSTM", "GatherBlockQuantized", "MatMulNBits", "MatMulIntegerToFloat",
}  # fmt: skip
# Float ops that carry weights: what "stayed float" means, as for torch modules.
_WEIGHT_OPS = {"MatMul", "Gemm", "Conv", "ConvTranspose", "Gather", "Einsum", "Attention"}
_INT8_TYPES = {"int8", "uint8"}
# Layout ops between a weight initializer and the op that uses it.
_PASS_THROUGH = {"Transpose", "Identity", "Cast", "Reshape", "Squeeze", "Unsqueeze"}


def _require() -> Any:
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise UnsupportedError("onnxruntime is not installed: pip install onnxruntime") from None
    return onnx, onnxruntime


# --------------------------------------------------------------------------- runtime


class OrtModule:
    """An ``onnxruntime.InferenceSession`` that runs like a torch module.

    ``module(*tensors)`` feeds the tensors (zero-copy ``.numpy()`` views for contiguous
    CPU tensors) in the graph's input order and returns the first output as a torch
    tensor (zero-copy too). Threads follow torch's: ``intra_op_num_threads =
    torch.get_num_threads()``, one inter-op thread, all graph optimizations.

    Example::

        >>> m = OrtModule("resnet18-int8.onnx")                          # doctest: +SKIP
        >>> m(torch.randn(1, 3, 224, 224)).shape                         # doctest: +SKIP
        torch.Size([1, 1000])
    """

    def __init__(
        self, path: str | os.PathLike, threads: int | None = None, cleanup_dir: str | None = None
    ) -> None:
        import onnxruntime as ort  # ImportError here is the caller's "not installed"
        import torch

        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads or torch.get_num_threads())
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3  # errors only: QDQ graphs log harmless fusion warnings
        # Idle ORT worker threads busy-wait by default; with several sessions alive and
        # variants timed in interleaved rounds they would steal the cores from whatever
        # runs next (torch eager ran 20x slower beside three spinning sessions).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = str(path)
        self.threads = so.intra_op_num_threads
        self.session = ort.InferenceSession(self.path, so, providers=[PROVIDER])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [self.session.get_outputs()[0].name]
        if cleanup_dir is not None:
            # the artifact's temporary directory lives exactly as long as its module
            weakref.finalize(self, shutil.rmtree, cleanup_dir, True)

    def __call__(self, *tensors: Any) -> Any:
        import torch

        feeds = {n: t.detach().numpy() for n, t in zip(self.input_names, tensors, strict=True)}
        return torch.from_numpy(self.session.run(self.output_names, feeds)[0])

    def eval(self) -> OrtModule:
        return self

    def state_dict(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        return f"OrtModule({self.path!r}, threads={self.threads})"


# --------------------------------------------------------------------------- export


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


def _dynamic_axes(family: str) -> dict[str, dict[int, str]]:
    if family == "text":
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
    names = INPUT_NAMES["text" if model.family == "text" else "vision"]
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
            dynamic_axes=_dynamic_axes(model.family),
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
    return model.make_inputs(1, int(example[0].shape[-1]) + 32, seed=4321)


def _compare(ref: Any, out: Any) -> dict[str, Any]:
    import numpy as np

    if tuple(ref.shape) != tuple(out.shape):
        return {"shape": list(out.shape), "expected_shape": list(ref.shape), "cosine": 0.0}
    a = ref.detach().double().flatten().numpy()
    b = out.detach().double().flatten().numpy()
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    # all-zero outputs (a random MobileNetV2 can give them) agree only with zeros
    cos = float(a @ b / (na * nb)) if na and nb else float(na == nb)
    return {
        "shape": list(out.shape),
        "max_abs_err": float(np.abs(a - b).max()) if a.size else 0.0,
        "cosine": round(cos, 8),
    }


def export_check(model: Any, module: Any, inputs: list[tuple]) -> dict[str, Any]:
    """ORT output vs torch fp32 on each input set; raise if the graph disagrees."""
    import torch

    checks = []
    for x in inputs:
        with torch.inference_mode():
            ref = model.module(*x)
        c = _compare(ref, module(*x))
        c["input_shape"] = [list(t.shape) for t in x]
        checks.append(c)
        if c["cosine"] < _MIN_EXPORT_COSINE:
            raise RuntimeError(
                f"the exported ONNX graph disagrees with torch at input shape "
                f"{c['input_shape']}: {c}"
            )
    worst = min(checks, key=lambda c: c["cosine"])
    return {
        "cosine": worst["cosine"],
        "max_abs_err": max(c.get("max_abs_err", 0.0) for c in checks),
        "points": checks,
    }


@dataclass
class _Export:
    path: Path
    seconds: float
    check: dict[str, Any]


# One fp32 export per loaded model, shared by every ORT recipe applied to it (Longformer
# takes ~20 s to export); dropped, and its directory removed, with the model.
_EXPORTS: weakref.WeakKeyDictionary[Any, _Export | str] = weakref.WeakKeyDictionary()


def _example_inputs(model: Any, ctx: QuantContext) -> tuple:
    # Batch 2 at the calibration size: a traced batch of 1 can bake the batch into reshapes.
    size = 16 if model.family == "text" else 64
    if ctx.calib_inputs:
        size = int(ctx.calib_inputs[0][0].shape[-1])
    return model.make_inputs(2, size, seed=1234)


def _exported(model: Any, ctx: QuantContext) -> _Export:
    hit = _EXPORTS.get(model.module)
    if isinstance(hit, str):  # a failed export fails once, not once per recipe
        raise RuntimeError(hit)
    if hit is not None and hit.path.is_file():
        return hit
    d = tempfile.mkdtemp(prefix="quantbench-onnx-export-")
    try:
        example = _example_inputs(model, ctx)
        t = time.perf_counter()
        path = export_onnx(model, Path(d) / "fp32.onnx", example)
        seconds = time.perf_counter() - t
        check = export_check(model, OrtModule(path), [example, _second_inputs(model, example)])
    except Exception as e:
        shutil.rmtree(d, ignore_errors=True)
        text = str(e).strip().splitlines()
        _EXPORTS[model.module] = (
            f"ONNX export failed: {type(e).__name__}: {text[0] if text else ''}"
        )
        raise
    weakref.finalize(model.module, shutil.rmtree, d, True)
    _EXPORTS[model.module] = exp = _Export(path, seconds, check)
    return exp


# --------------------------------------------------------------------------- graph facts


def _dtype_name(onnx: Any, data_type: int) -> str:
    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(data_type))
    except Exception:  # bfloat16 / float8 have no numpy dtype
        return onnx.TensorProto.DataType.Name(data_type).lower()


def _itemsize(onnx: Any, data_type: int) -> int:
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(data_type).itemsize
    except Exception:
        return 1


def graph_facts(path: str | os.PathLike) -> dict[str, Any]:
    """What was quantized in an ``.onnx`` file: op counts, initializer bytes by dtype, size."""
    import onnx

    path = Path(path)
    m = onnx.load(str(path), load_external_data=False)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def weight_source(name: str) -> tuple[str | None, bool]:
        """(dtype of the initializer behind ``name``, whether a DequantizeLinear is on the way),
        looking through the layout ops the exporter leaves on shared weights (ALBERT)."""
        for _ in range(8):
            if name in inits:
                return _dtype_name(onnx, inits[name].data_type), False
            src = producer.get(name)
            if src is None:
                return None, False
            if src.op_type == "DequantizeLinear":
                return None, True
            if src.op_type not in _PASS_THROUGH:
                return None, False
            name = src.input[0]
        return None, False

    quantized: Counter[str] = Counter()
    floating: Counter[str] = Counter()
    qdq_pairs = 0
    for n in g.node:
        op = n.op_type
        if op in _INT8_OPS or op.startswith("QLinear"):
            quantized[op] += 1
            if op == "QuantizeLinear" and any(
                c.op_type == "DequantizeLinear" for c in consumers.get(n.output[0], [])
            ):
                qdq_pairs += 1
        elif op in _WEIGHT_OPS:
            w = n.input[0] if op == "Gather" else (n.input[1] if len(n.input) > 1 else "")
            dtype, dequantized = weight_source(w)
            if dequantized:
                quantized[f"{op} (QDQ)"] += 1  # runs as an int8 kernel after ORT's fusion
            elif dtype in _INT8_TYPES:
                quantized[f"{op} (int8 table)"] += 1
            elif dtype is not None and dtype.startswith(("float", "bfloat")):
                floating[op] += 1

    by_dtype: Counter[str] = Counter()
    total = int8 = 0
    files = {path}
    for t in g.initializer:
        numel = 1
        for d in t.dims:
            numel *= int(d)
        name = _dtype_name(onnx, t.data_type)
        by_dtype[name] += numel * _itemsize(onnx, t.data_type)
        if t.data_location == onnx.TensorProto.EXTERNAL:
            loc = next((e.value for e in t.external_data if e.key == "location"), None)
            if loc:
                files.add(path.parent / loc)
        if numel <= 1:  # scales and zero points
            continue
        total += numel
        if name in _INT8_TYPES:
            int8 += numel
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), None)
    return {
        "quantized": dict(sorted(quantized.items())),
        "float": dict(sorted(floating.items())),
        "qdq_pairs": qdq_pairs,
        "param_bytes_by_dtype": dict(by_dtype),
        "int8_param_fraction": int8 / total if total else 0.0,
        "size_bytes": sum(os.path.getsize(f) for f in files if f.is_file()),
        "opset": opset,
    }


def _artifact(
    recipe: str,
    path: Path,
    out_dir: str,
    exp: _Export,
    quantize_s: float,
    notes: list[str],
    details: dict[str, Any],
) -> Artifact:
    module = OrtModule(path, cleanup_dir=out_dir)
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
            "allow_spinning": False,
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
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        notes.append(f"quant_pre_process failed ({first}); quantized the exported graph as is")
        return src


def _vnni() -> bool:
    from quantbench import env

    return any("vnni" in f for f in env.isa_flags())


def _is_arm() -> bool:
    return platform.machine().lower() in ("arm64", "aarch64") or platform.machine().startswith(
        "arm"
    )


# --------------------------------------------------------------------------- recipes


@dataclass(frozen=True)
class OrtFp32Config:
    pass


def _ort_fp32(model: Any, config: OrtFp32Config, ctx: QuantContext) -> Artifact:
    _require()
    exp = _exported(model, ctx)
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
    return not _is_arm() and not _vnni()


def _ort_dynamic_int8(model: Any, config: OrtDynamicInt8Config, ctx: QuantContext) -> Artifact:
    _require()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    exp = _exported(model, ctx)
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
        with tempfile.TemporaryDirectory(prefix="quantbench-ort-pre-") as scratch:
            src = _preprocess(exp.path, scratch, notes) if config.preprocess else exp.path
            with _quiet(scratch):
                quantize_dynamic(
                    str(src),
                    str(path),
                    op_types_to_quantize=list(op_types),
                    per_channel=config.per_channel,
                    reduce_range=reduce_range,
                    weight_type=QuantType.QInt8,
                    extra_options={"MatMulConstBOnly": True},
                )
    except Exception:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    quantize_s = time.perf_counter() - t
    try:
        art = _artifact(
            "ort-dynamic-int8", path, out_dir, exp, quantize_s, notes,
            {"per_channel": config.per_channel, "reduce_range": reduce_range,
             "op_types": list(op_types), "weight_type": "int8", "activation_type": "uint8"},
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


_CALIBRATE = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


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
        if self.calibrate_method not in _CALIBRATE:
            raise QuantbenchError(
                f"unknown calibrate_method '{self.calibrate_method}': "
                f"valid: {', '.join(_CALIBRATE)}"
            )
        if self.activation_type not in ("auto", "uint8", "int8"):
            raise QuantbenchError("activation_type must be auto, uint8 or int8")


def _calibration_reader(names: list[str], batches: list[tuple]) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = [
                {n: t.detach().contiguous().numpy() for n, t in zip(names, b, strict=True)}
                for b in batches
            ]
            self.rewind()

        def get_next(self) -> dict[str, Any] | None:
            return next(self._it, None)

        def rewind(self) -> None:
            self._it = iter(self.feeds)

    return Reader()


def _calibrate(
    src: Path,
    scratch: str,
    op_types: tuple[str, ...] | None,
    method: str,
    names: list[str],
    batches: list[tuple],
) -> Path:
    """Activation ranges by ``method``, written as the cache ``quantize_static`` reads.

    Calibrating here rather than inside ``quantize_static`` is what makes ``entropy``
    differ from ``minmax``: ``quantize_static`` cannot pass the histogram size, and the
    entropy calibrator's defaults (128 bins, 128 quantized bins) leave only the full
    range to choose from.

    The calibrators keep every intermediate output of every batch they are given until
    they reduce them (Longformer: over 22 GiB for 8 batches of 4 x 512 tokens), so they
    are fed one sample at a time; min/max and histograms merge across calls, so the
    ranges are the same.
    """
    from onnxruntime.quantization import CalibrationMethod, create_calibrator, save_tensors_data

    options: dict[str, Any] = {
        "minmax": {},
        "entropy": {"num_bins": 512, "num_quantized_bins": 128},
        "percentile": {"num_bins": 2048, "percentile": 99.999},
    }[method]
    calibrator = create_calibrator(
        src,
        list(op_types) if op_types else None,
        augmented_model_path=str(Path(scratch) / "augmented.onnx"),
        calibrate_method=getattr(CalibrationMethod, _CALIBRATE[method]),
        extra_options=options,
    )
    try:
        for b in batches:
            for i in range(int(b[0].shape[0])):
                calibrator.collect_data(
                    _calibration_reader(names, [tuple(t[i : i + 1] for t in b)])
                )
        ranges = calibrator.compute_data()
    finally:
        del calibrator
    cache = Path(scratch) / "calibration.json"
    save_tensors_data(ranges, cache)
    return cache


def _ort_static_int8(model: Any, config: OrtStaticInt8Config, ctx: QuantContext) -> Artifact:
    _require()
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if not ctx.calib_inputs:
        raise UnsupportedError("ort-static-int8 needs calibration batches")
    exp = _exported(model, ctx)
    act = config.activation_type
    if act == "auto":
        act = "int8" if _is_arm() else "uint8"
    out_dir, path = _new_dir()
    notes: list[str] = []
    names = list(INPUT_NAMES["text" if model.family == "text" else "vision"])
    op_types = config.op_types or (("MatMul", "Gemm", "Gather") if model.family == "text" else None)
    t = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="quantbench-ort-pre-") as scratch:
            src = _preprocess(exp.path, scratch, notes)
            with _quiet(scratch):
                cache = _calibrate(
                    src, scratch, op_types, config.calibrate_method, names, ctx.calib_inputs
                )
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
                        CalibrationMethod, _CALIBRATE[config.calibrate_method]
                    ),
                    calibration_cache_path=str(cache),
                    extra_options={"ActivationSymmetric": act == "int8", "WeightSymmetric": True},
                )
    except Exception as e:
        shutil.rmtree(out_dir, ignore_errors=True)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UnsupportedError(f"onnxruntime static quantization failed: {first}") from e
    quantize_s = time.perf_counter() - t
    notes.append(
        _eager.calibration_note(ctx).replace(
            "calibrated", f"calibrated ({config.calibrate_method})", 1
        )
    )
    suffix = "" if config.calibrate_method == "minmax" else f"-{config.calibrate_method}"
    try:
        return _artifact(
            f"ort-static-int8{suffix}", path, out_dir, exp, quantize_s, notes,
            {"format": "QDQ", "calibrate_method": config.calibrate_method,
             "op_types": list(op_types) if op_types else "all",
             "per_channel": config.per_channel, "weight_type": "int8", "activation_type": act},
        )  # fmt: skip
    except Exception:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise


register(Recipe(
    "ort-fp32", "fp32", RUNTIME,
    "the model exported to ONNX and run by ONNX Runtime in fp32 (the ORT baseline)",
    _ort_fp32, OrtFp32Config(),
))  # fmt: skip
register(Recipe(
    "ort-dynamic-int8", "int8 weights (MatMul, Gather/embeddings, Conv), dynamic activations",
    RUNTIME,
    "ONNX Runtime quantize_dynamic: per-channel int8 weights incl. embedding tables, uint8 "
    "activations quantized on the fly",
    _ort_dynamic_int8, OrtDynamicInt8Config(),
))  # fmt: skip
register(Recipe(
    "ort-static-int8", "int8 weights and activations (QDQ)", RUNTIME,
    "ONNX Runtime quantize_static, QDQ format: per-channel int8 weights, uint8 activations "
    "calibrated by min/max on sample batches",
    _ort_static_int8, OrtStaticInt8Config(),
))  # fmt: skip
for _method, _how in (("entropy", "entropy (KL)"), ("percentile", "99.999th-percentile")):
    register(Recipe(
        f"ort-static-int8-{_method}", "int8 weights and activations (QDQ)", RUNTIME,
        f"ort-static-int8 with activation ranges calibrated by {_how} instead of min/max",
        _ort_static_int8, OrtStaticInt8Config(calibrate_method=_method),
    ))  # fmt: skip
