"""quantbench: quantize models and measure what it buys and costs."""

__version__ = "0.1.0"


def load_artifact(path):  # noqa: ANN001, ANN201 - thin lazy re-export
    """Load a file written by ``quantbench quantize`` as a callable module (see artifacts)."""
    from quantbench.artifacts import load_artifact as _load

    return _load(path)
