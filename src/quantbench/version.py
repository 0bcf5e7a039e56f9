"""quantbench's version: a module of its own, so that any module may read it without
importing the package's API (``quantbench/__init__`` loads :mod:`quantbench.api`)."""

__version__ = "0.1.0"
