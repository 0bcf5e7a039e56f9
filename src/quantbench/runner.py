"""Run an experiment: the public names of :mod:`quantbench.run`, where the code lives.

Kept so that ``from quantbench.runner import run`` (the CLI, benchmarks, examples, user
scripts) goes on working; see :mod:`quantbench.run.orchestrate` for what a run does.

Example::

    >>> from quantbench.spec import build_spec
    >>> from quantbench.runner import run
    >>> result = run(build_spec(overrides={"models": "resnet18", "measure": "size"}))
    >>> result.out_dir / "report.md"                           # doctest: +SKIP
"""

from __future__ import annotations

from quantbench.run.cells import FIDELITY_CHUNK
from quantbench.run.fallback import Fallback, fallback, judge_cached
from quantbench.run.launcher import death_reason, run_inline, run_isolated
from quantbench.run.messages import Emit, Message
from quantbench.run.orchestrate import RunResult, recommendations, resume, run, run_metadata
from quantbench.run.outdir import prepare_out_dir
from quantbench.run.pipeline import STAGE_HOOKS, measure_model, recipes_for, variants_for
from quantbench.run.process import pin_cpus, quiet_libraries

__all__ = [
    "FIDELITY_CHUNK",
    "STAGE_HOOKS",
    "Emit",
    "Fallback",
    "Message",
    "RunResult",
    "death_reason",
    "fallback",
    "judge_cached",
    "measure_model",
    "pin_cpus",
    "prepare_out_dir",
    "quiet_libraries",
    "recipes_for",
    "recommendations",
    "resume",
    "run",
    "run_inline",
    "run_isolated",
    "run_metadata",
    "variants_for",
]
