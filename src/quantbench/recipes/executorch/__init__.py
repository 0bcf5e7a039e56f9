"""ExecuTorch recipes: the model lowered to the XNNPACK delegate as a ``.pte`` program.

``et-fp32`` lowers the model as is; ``et-int8`` quantizes it first with PT2E and
``XNNPACKQuantizer`` (static int8 for vision models, per-token dynamic int8 for
transformers). Both are timed through ExecuTorch's own runtime
(``executorch.runtime.Runtime``) on its thread pool sized to the run's threads, and
record what share of the graph XNNPACK took. The ``.pte`` file is what a user ships to a
phone or a board; its size is the file's bytes.

- :mod:`~quantbench.recipes.executorch.runtime`: :class:`EtModule`, a program as a module,
  and :func:`load_pte`.
- :mod:`~quantbench.recipes.executorch.lower`: export, quantize, lower, delegation share,
  the program check (imports ExecuTorch: only when a recipe is applied).
- :mod:`~quantbench.recipes.executorch.recipes`: the recipes.

ExecuTorch is an optional extra (``pip install 'quantbench[executorch]'``); without it the
recipes are listed and report ``unsupported``. Its import takes 10+ s, so nothing here
imports it until a recipe is applied or a ``.pte`` is loaded.

Example::

    >>> from quantbench.models import load_model
    >>> from quantbench.recipes import QuantContext, apply_recipe
    >>> m = load_model("resnet18")
    >>> art = apply_recipe("et-int8", m, QuantContext("x86", [m.make_inputs(2, 224)]))  # doctest: +SKIP
    >>> art.details["delegation"]["share"]                                               # doctest: +SKIP
    1.0
"""

from __future__ import annotations

from quantbench.recipes.executorch.recipes import EtFp32Config, EtInt8Config
from quantbench.recipes.executorch.runtime import RUNTIME, EtModule, load_pte

__all__ = ["RUNTIME", "EtFp32Config", "EtInt8Config", "EtModule", "load_pte"]
