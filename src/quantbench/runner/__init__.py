"""Running an experiment, one concern per module.

- :mod:`~quantbench.runner.checks`: the settings checked against the world before
  anything runs (``build_spec``, ``spec_from_dict``);
- :mod:`~quantbench.runner.lifecycle`: the run and its resume, for every executor: the
  store, the locks, the runs begun or reopened, models dispatched, cells kept,
  interruption and faults, the final records and reports;
- :mod:`~quantbench.runner.executors`: where models are measured, one protocol and a
  registry by name: ``local`` (a worker process per model, or inline), ``ray`` (the
  nodes of a Ray cluster: what a node runs, :mod:`~quantbench.runner.ray_node`; joining
  with a deadline, :mod:`~quantbench.runner.ray_connect`; selectors and node matching,
  without Ray, :mod:`~quantbench.runner.sweeps`);
- :mod:`~quantbench.runner.books`: what a run keeps while it goes (record, cells,
  exports, what the store lacks);
- :mod:`~quantbench.runner.collector`: a model's messages made into its cells;
- :mod:`~quantbench.runner.messages`: what a worker tells its parent;
- :mod:`~quantbench.runner.progress`: the progress bar;
- :mod:`~quantbench.runner.pipeline`: measuring one model as stages over one context;
- :mod:`~quantbench.runner.cells`: what a cell records from an artifact (sizes, latency
  points, failures);
- :mod:`~quantbench.runner.fallback`: the accuracy-aware fallback search;
- :mod:`~quantbench.runner.process`: settings of the measuring process;
- :mod:`~quantbench.runner.guard`: the ``__main__`` guard worker processes need.

The public names below are importable from here (``from quantbench.runner import run``)
but load lazily, so that importing one module (``checks`` from the CLI) loads
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
    "death_reason": "executors.local", "measure_here": "executors.local",
    "Executor": "executors", "executor_names": "executors", "get_executor": "executors",
    "Emit": "messages", "Message": "messages",
    "RunResult": "books", "SweepResult": "books", "recommendations": "books",
    "run_metadata": "books",
    "resume": "lifecycle", "run": "lifecycle",
    "STAGE_HOOKS": "pipeline", "measure_model": "pipeline", "recipes_for": "pipeline",
    "variants_for": "pipeline",
    "pin_cpus": "process", "quiet_libraries": "process",
}  # fmt: skip

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'quantbench.runner' has no attribute '{name}'")
    return getattr(importlib.import_module(f"quantbench.runner.{_PUBLIC[name]}"), name)
