"""The ``openvino-ir`` format: the IR an ``ov-*`` recipe wrote (``.xml`` and its ``.bin``),
copied as it is.

It runs in plain OpenVINO (``core.read_model``) with no quantbench installed; loading it
runs no code. Loaded, it is the model compiled for the CPU plugin with torch's thread
count and f32 precision, wrapped to take and return torch tensors
(:class:`~quantbench.recipes.openvino.runtime.OvModule`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load(path: Path, trust_code: bool) -> Any:
    """The IR at ``path`` (its ``.bin`` beside it), compiled (``trust_code`` is not needed)."""
    from quantbench.recipes.openvino.runtime import load_ir

    return load_ir(path)
