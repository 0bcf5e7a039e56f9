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
