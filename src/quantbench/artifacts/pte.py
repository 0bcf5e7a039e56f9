"""The ``pte`` format: the ExecuTorch program an ``et-*`` recipe wrote, copied as it is.

It runs in ExecuTorch's runtime with no quantbench installed (on a phone or a board too);
loading it runs no Python code. Loaded, it is the program wrapped to take and return
torch tensors (:class:`~quantbench.recipes.executorch.runtime.EtModule`), on a thread pool
of torch's thread count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load(path: Path, trust_code: bool) -> Any:
    """``path`` in ExecuTorch's runtime (``trust_code`` is not needed: no code runs)."""
    from quantbench.recipes.executorch.runtime import load_pte

    return load_pte(path)
