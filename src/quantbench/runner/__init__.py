"""Running an experiment, one concern per module.

- :mod:`~quantbench.runner.checks`: the settings checked against the world before
  anything runs (``build_spec``, ``spec_from_dict``);
- :mod:`~quantbench.runner.orchestrate`: the run (and resume): every model, the store,
  the exports and the report;
- :mod:`~quantbench.runner.launcher`: one model in a worker process (or inline), its
  messages, timeout and death reasons, the progress bar;
- :mod:`~quantbench.runner.pipeline`: measuring one model as stages over one context;
- :mod:`~quantbench.runner.cells`: what a cell records from an artifact (sizes, latency
  points, failures);
- :mod:`~quantbench.runner.fallback`: the accuracy-aware fallback search;
- :mod:`~quantbench.runner.messages`: what a worker tells its parent;
- :mod:`~quantbench.runner.process`: settings of the measuring process;
- :mod:`~quantbench.runner.outdir`: the output directory;
- :mod:`~quantbench.runner.ray_executor`: ``--executor ray``, a sweep across the nodes
  of a Ray cluster (what a node runs: :mod:`~quantbench.runner.ray_node`; selectors and
  node matching, without Ray: :mod:`~quantbench.runner.sweeps`).

The public names below are importable from here (``from quantbench.runner import run``)
but load lazily, so that importing one module (``outdir`` from ``sensitivity``) loads
no other.

Example::

    >>> from quantbench.runner.checks import build_spec
    >>> from quantbench.runner import run
    >>> result = run(build_spec(overrides={"models": "resnet18", "measure": "size"}))
    >>> result.out_dir / "report.md"                           # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "FIDELITY_CHUNK": "cells",
    "Fallback": "fallback", "fallback": "fallback", "judge_cached": "fallback",
    "death_reason": "launcher", "run_inline": "launcher", "run_isolated": "launcher",
    "Emit": "messages", "Message": "messages",
    "RunResult": "orchestrate", "recommendations": "orchestrate", "resume": "orchestrate",
    "run": "orchestrate", "run_metadata": "orchestrate",
    "prepare_out_dir": "outdir",
    "SweepResult": "ray_executor", "resume_sweep": "ray_executor", "run_sweep": "ray_executor",
    "STAGE_HOOKS": "pipeline", "measure_model": "pipeline", "recipes_for": "pipeline",
    "variants_for": "pipeline",
    "pin_cpus": "process", "quiet_libraries": "process",
}  # fmt: skip

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'quantbench.runner' has no attribute '{name}'")
    return getattr(importlib.import_module(f"quantbench.runner.{_PUBLIC[name]}"), name)
