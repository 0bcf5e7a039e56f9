"""A run's settings: pure data, checked on their own, in sections.

One typed model (:class:`RunSpec`, pydantic) is shared by the CLI flags, the YAML file
and Python overrides: the same flat names everywhere (a key ``min_time_s`` is the flag
``--min-time-s``), the same checks, one-line errors. Inside, settings live in sections,
one module each, and code reads them there (``spec.timing.min_runs``):

- :mod:`~quantbench.settings.target`: models, weights, seed, device, engine;
- :mod:`~quantbench.settings.quant`: recipes, their options, +compile / +fallback,
  calibration batches, QAT;
- :mod:`~quantbench.settings.sweep`: input-size and batch sweeps, the reference shape;
- :mod:`~quantbench.settings.judge`: what is measured, fidelity and accuracy bars;
- :mod:`~quantbench.settings.data`: evaluation, calibration and training data;
- :mod:`~quantbench.settings.timing`: warm-up, passes, time budgets, threads;
- :mod:`~quantbench.settings.output`: output directory, store, artifacts;
- :mod:`~quantbench.settings.launch`: worker processes, executor, Ray nodes.

Around them: :mod:`~quantbench.settings.runspec` (the sections as one flat-outside model,
the JSON Schema), :mod:`~quantbench.settings.model_ref` (a model entry),
:mod:`~quantbench.settings.presets`, :mod:`~quantbench.settings.load` (defaults < preset
< file < overrides), :mod:`~quantbench.settings.values` (value kinds) and
:mod:`~quantbench.settings.base` (one-line errors, CLI metadata).

Nothing here imports models, recipes or the runner: the checks that need them (a
recipe's name, a model's limits, a weights file, a dataset, the engine, Ray selectors)
run with the run, in :mod:`quantbench.runner.checks`.

Example::

    >>> from quantbench.settings import load_spec
    >>> spec = load_spec(preset="quick", overrides={"measure": ["size"]})
    >>> [m.name for m in spec.target.models], spec.judge.measure
    (['resnet18', 'distilbert'], ['size'])
"""

from __future__ import annotations

from quantbench.settings.base import Cli, Settings
from quantbench.settings.judge import MEASURES
from quantbench.settings.load import load_spec, load_yaml
from quantbench.settings.model_ref import ModelRef, model_entry
from quantbench.settings.output import default_out_dir
from quantbench.settings.presets import PRESETS
from quantbench.settings.quant import LAB_RECIPES
from quantbench.settings.runspec import FIELDS, SECTION_OF, SECTIONS, RunSpec, json_schema
from quantbench.settings.sweep import (
    BATCH_SIZES_ALIAS,
    DEFAULT_BATCH_SIZES,
    DEFAULT_IMAGE_SIZES,
    DEFAULT_SEQ_LENS,
    LAB_REF_BATCH,
    LAB_REF_SIZES,
)
from quantbench.settings.target import DEVICES, LAB_MODELS
from quantbench.settings.values import parse_int_list, parse_name_list

__all__ = [
    "BATCH_SIZES_ALIAS",
    "DEFAULT_BATCH_SIZES",
    "DEFAULT_IMAGE_SIZES",
    "DEFAULT_SEQ_LENS",
    "DEVICES",
    "FIELDS",
    "LAB_MODELS",
    "LAB_RECIPES",
    "LAB_REF_BATCH",
    "LAB_REF_SIZES",
    "MEASURES",
    "PRESETS",
    "SECTIONS",
    "SECTION_OF",
    "Cli",
    "ModelRef",
    "RunSpec",
    "Settings",
    "default_out_dir",
    "json_schema",
    "load_spec",
    "load_yaml",
    "model_entry",
    "parse_int_list",
    "parse_name_list",
]
