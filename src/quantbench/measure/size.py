"""Size: bytes of the saved state_dict (what ``du`` shows) and parameter bytes by dtype."""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

_INT8_DTYPES = {"qint8", "quint8", "int8", "uint8"}

# Float modules that hold weights worth reporting when they stay unquantized.
_FLOAT_KINDS = (
    "Linear", "Conv1d", "Conv2d", "Conv3d", "Embedding", "EmbeddingBag", "LayerNorm",
    "BatchNorm1d", "BatchNorm2d", "GroupNorm",
)  # fmt: skip


def state_dict_bytes(module: Any) -> int:
    """Bytes of ``torch.save(module.state_dict())``, the file the lab measured with ``du``."""
    import torch

    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    return buf.tell()


def _tensors(obj: Any) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


def param_bytes_by_dtype(module: Any) -> dict[str, int]:
    """Bytes of state_dict tensors per dtype; packed int8 weights are unpacked to count."""
    out: Counter[str] = Counter()
    for t in _tensors(module.state_dict()):
        out[str(t.dtype).replace("torch.", "")] += t.numel() * t.element_size()
    return dict(out)


def int8_fraction(module: Any) -> float:
    """Fraction of stored weight elements (not bytes) held in an 8-bit integer dtype."""
    total = int8 = 0
    for t in _tensors(module.state_dict()):
        if t.numel() <= 1:  # scales and zero points
            continue
        n = t.numel()
        total += n
        if str(t.dtype).replace("torch.", "") in _INT8_DTYPES:
            int8 += n
    return int8 / total if total else 0.0


def count_params(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def _is_quantized(m: Any) -> bool:
    """A quantized module that holds weights (not packing helpers, stubs or dropout)."""
    mod = type(m).__module__
    if not mod.startswith(("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized")):
        return False
    name = m._get_name()
    return "PackedParams" not in name and any(k in name for k in ("Linear", "Conv", "Embedding"))


def quantized_modules(module: Any) -> dict[str, int]:
    """Counts of quantized module types, e.g. ``{"DynamicQuantizedLinear": 73}``."""
    c: Counter[str] = Counter()
    for m in module.modules():
        if _is_quantized(m):
            c[m._get_name()] += 1
    return dict(sorted(c.items()))


def float_modules(module: Any) -> dict[str, int]:
    """Counts of weight-holding modules that stayed in float."""
    c: Counter[str] = Counter()
    for m in module.modules():
        name = type(m).__name__
        if not _is_quantized(m) and name in _FLOAT_KINDS:
            c[name] += 1
    return dict(sorted(c.items()))


_PARTS = [
    ("attention", ("attention", "attn", "query", "key", "value")),
    ("feed-forward", ("intermediate", "ffn", "mlp", "output.dense", "ffn_output")),
    ("embeddings", ("embedding",)),
    ("pooler", ("pooler",)),
    ("classifier", ("classifier", "fc", "head")),
]


def quantized_parts(module: Any) -> dict[str, int]:
    """Where quantized modules sit, e.g. ``{"attention": 48, "feed-forward": 24}``."""
    c: Counter[str] = Counter()
    for path, m in module.named_modules():
        if not _is_quantized(m):
            continue
        low = path.lower()
        part = next((p for p, keys in _PARTS if any(k in low for k in keys)), None)
        if part is None:
            part = "backbone" if "conv" in m._get_name().lower() else "other"
        c[part] += 1
    return dict(c.most_common())


def qdq_boundaries(module: Any) -> int | None:
    """Float<->int8 conversions per forward pass: quantize and dequantize points.

    FX-converted graphs count their ``quantize_per_tensor`` / ``dequantize`` nodes;
    eager dynamic-int8 modules quantize their input and dequantize their output each, so
    they count two per dynamic module. None when neither applies.
    """
    import torch

    graph = getattr(module, "graph", None)
    if isinstance(graph, torch.fx.Graph):
        n = 0
        for node in graph.nodes:
            t = node.target
            name = t if isinstance(t, str) else getattr(t, "__name__", str(t))
            if "quantize_per" in name or name == "dequantize":
                n += 1
        return n
    dyn = sum(1 for m in module.modules() if _is_quantized(m) and "Dynamic" in m._get_name())
    return 2 * dyn if dyn else None
