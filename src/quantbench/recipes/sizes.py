"""What a torch artifact weighs, from its state_dict: the bytes of ``torch.save``, stored
bytes per dtype, and the fraction of weight elements held in int8.

The torchao, PT2E and half-precision recipes fill their artifacts' sizes with
:func:`fill_sizes`, from the state_dict of what actually runs.
"""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

from quantbench.recipes import Artifact


def _flat(t: Any) -> list[Any]:
    """Plain tensors behind ``t``: tensor subclasses (torchao) are unflattened."""
    if hasattr(t, "__tensor_flatten__") and type(t).__name__ != "Tensor":
        names, _ = t.__tensor_flatten__()
        out = []
        for n in names:
            inner = getattr(t, n)
            if inner is not None:
                out += _flat(inner)
        return out
    return [t]


def state_stats(state: dict[str, Any]) -> tuple[int, dict[str, int], float]:
    """(bytes of ``torch.save(state)``, stored bytes per dtype, int8 element fraction)."""
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    by_dtype: Counter[str] = Counter()
    total = int8 = 0
    for v in state.values():
        if not isinstance(v, torch.Tensor):
            continue
        for t in _flat(v):
            dt = str(t.dtype).replace("torch.", "")
            by_dtype[dt] += t.numel() * t.element_size()
            if t.numel() > 1:  # scales and zero points do not count as weights
                total += t.numel()
                int8 += t.numel() if dt in ("int8", "uint8", "qint8", "quint8") else 0
    return buf.tell(), dict(by_dtype), (int8 / total if total else 0.0)


def fill_sizes(art: Artifact, state: dict[str, Any]) -> Artifact:
    """Set ``art``'s size, bytes per dtype and int8 fraction from ``state``; return it."""
    art.size_bytes, art.param_bytes_by_dtype, art.int8_param_fraction = state_stats(state)
    return art
