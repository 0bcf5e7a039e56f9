"""The ``pt2`` format: the ``torch.export.save`` program ``pt2e-static-int8`` wrote.

Plain ``torch.export.load(path).module()`` runs it once ``import
torch.ao.quantization.fx._decomposed`` has registered its quantize/dequantize ops.
:func:`load` also compiles it with Inductor freezing, as it was measured. Loading a
``.pt2`` unpickles what the archive holds, so it needs ``trust_code=True``; a file that is
no such archive is refused first, in one line, without unpickling anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantbench import fileformat


def load(path: Path, trust_code: bool) -> Any:
    """The program at ``path``, compiled as the recipe compiled it (``trust_code`` only)."""
    from quantbench.recipes.pt2e import load_pt2

    return fileformat.read_pt2(path, trust_code, load_pt2)
