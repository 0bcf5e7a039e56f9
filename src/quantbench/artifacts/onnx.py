"""The ``onnx`` format: the ``.onnx`` file an ONNX Runtime recipe wrote, copied as it is.

It runs in onnxruntime with no quantbench installed; loading it runs no code. Loaded, it
is an ONNX Runtime session wrapped to take and return torch tensors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantbench import fileformat
from quantbench.artifacts.formats import get_format
from quantbench.errors import QuantbenchError


def load(path: Path, trust_code: bool) -> Any:
    """An ONNX Runtime session on ``path`` (``trust_code`` is not needed: no code runs)."""
    try:
        from quantbench.recipes.onnx.runtime import OrtModule
    except ImportError as e:
        raise QuantbenchError(f"loading .onnx artifacts needs onnxruntime: {e}") from None
    what = get_format("onnx").what
    with fileformat.expecting(path, what):
        if path.stat().st_size == 0:
            raise fileformat.not_a(path, what)
        return OrtModule(str(path))
