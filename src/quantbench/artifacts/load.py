"""Reading an artifact back: :func:`load_artifact`, for any format in the table.

Example::

    >>> from quantbench.artifacts import load_artifact
    >>> m = load_artifact("r18-int8.pt")                               # doctest: +SKIP
    >>> m(torch.randn(1, 3, 224, 224)).shape                           # doctest: +SKIP
    torch.Size([1, 1000])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantbench.artifacts.formats import format_for_path
from quantbench.errors import QuantbenchError


def load_artifact(path: str | Path, trust_code: bool = False) -> Any:
    """Turn a file written by ``quantbench quantize`` back into a callable module.

    ``.onnx`` files come back as an ONNX Runtime session wrapped to take and return torch
    tensors; torch artifacts are rebuilt (architecture + recipe) and their weights loaded.

    A file can carry code: a ``.pt2`` program is unpickled by ``torch.export.load``, and
    a ``py:`` model's checkpoint holds its Python source, run to rebuild it. Such files
    are refused unless ``trust_code=True`` (as transformers' ``trust_remote_code``);
    ``.onnx`` files and the other checkpoints (read with ``weights_only=True``) load
    without it. A file that is not what its name says is refused in one line.
    """
    p = Path(path)
    if not p.is_file():
        raise QuantbenchError(f"artifact '{p}' does not exist")
    fmt = format_for_path(p)
    if p.suffix != fmt.extension and not fmt.any_name:  # a companion (an IR's .bin)
        raise QuantbenchError(f"'{p}' is part of {fmt.what}: load its {fmt.extension} file")
    return fmt.impl().load(p, trust_code)
