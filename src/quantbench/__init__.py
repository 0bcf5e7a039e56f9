"""quantbench: quantize models and measure what it buys and costs.

The Python API is the CLI's commands as functions (see :mod:`quantbench.api`)::

    import quantbench

    if __name__ == "__main__":  # workers re-import the script
        result = quantbench.run(models=["resnet18"], recipes=["static-int8"])
        quantbench.quantize("resnet18", "static-int8", "r18-int8.pt")
        module = quantbench.load_artifact("r18-int8.pt")

Heavy libraries load only when a function is called.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from quantbench.errors import QuantbenchError, UnsupportedError
from quantbench.version import __version__

_API = ("run", "quantize", "compare", "load_artifact", "model")
__all__ = [*_API, "QuantbenchError", "UnsupportedError", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        from quantbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'quantbench' has no attribute '{name}'")


class _Package(types.ModuleType):
    """The package, whose API names stay the API's: importing the submodule
    ``quantbench.compare`` (as any comparison does) would otherwise bind the module over
    the function, and ``quantbench.compare(...)`` would fail the second time."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _API and isinstance(value, types.ModuleType):
            return  # the submodule stays reachable as sys.modules["quantbench.compare"]
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
