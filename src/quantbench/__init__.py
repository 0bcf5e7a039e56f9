"""quantbench: quantize models and measure what it buys and costs."""

__version__ = "0.1.0"
