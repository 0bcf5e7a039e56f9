"""What an ``.onnx`` file holds: which ops were quantized and which stayed float,
initializer bytes by dtype, the int8 fraction and the file size (:func:`graph_facts`).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

# Ops that compute in (or convert to/from) 8-bit integers, as onnxruntime's quantizer
# writes them; plus any QLinear* op.
_INT8_OPS = {
    "MatMulInteger", "ConvInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul",
    "QuantizeLinear", "DequantizeLinear", "QGemm", "QAttention", "QEmbedLayerNormalization",
    "DynamicQuantizeLSTM", "GatherBlockQuantized", "MatMulNBits", "MatMulIntegerToFloat",
}  # fmt: skip
# Float ops that carry weights: what "stayed float" means, as for torch modules.
_WEIGHT_OPS = {"MatMul", "Gemm", "Conv", "ConvTranspose", "Gather", "Einsum", "Attention"}
_INT8_TYPES = {"int8", "uint8", "int4", "uint4"}  # integer weights of 8 bits or fewer
# Layout ops between a weight initializer and the op that uses it.
_PASS_THROUGH = {"Transpose", "Identity", "Cast", "Reshape", "Squeeze", "Unsqueeze"}


def _dtype_name(onnx: Any, data_type: int) -> str:
    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(data_type))
    except Exception:  # bfloat16 / float8 have no numpy dtype
        return onnx.TensorProto.DataType.Name(data_type).lower()


def _nbytes(onnx: Any, data_type: int, numel: int) -> int:
    if data_type in (onnx.TensorProto.INT4, onnx.TensorProto.UINT4):
        return (numel + 1) // 2  # two per byte
    return numel * _itemsize(onnx, data_type)


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
        by_dtype[name] += _nbytes(onnx, t.data_type, numel)
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
