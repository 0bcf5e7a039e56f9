"""compat; remove after merge: the PyTorch 2 recipes moved to
:mod:`~quantbench.recipes.compile` (``compile_artifact``), :mod:`~quantbench.recipes.torchao`,
:mod:`~quantbench.recipes.pt2e` (``load_pt2``) and :mod:`~quantbench.recipes.half`.
``quantbench.runner`` still imports ``compile_artifact`` from here."""

from __future__ import annotations

from quantbench.recipes.compile import compile_artifact
from quantbench.recipes.half import HalfConfig
from quantbench.recipes.pt2e import PT2_META, Pt2eStaticConfig, load_pt2
from quantbench.recipes.torchao import TorchaoConfig

__all__ = [
    "PT2_META",
    "HalfConfig",
    "Pt2eStaticConfig",
    "TorchaoConfig",
    "compile_artifact",
    "load_pt2",
]
