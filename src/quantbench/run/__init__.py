"""Running an experiment, one concern per module.

- :mod:`~quantbench.run.orchestrate`: the run (and resume): every model, the store, the
  exports and the report;
- :mod:`~quantbench.run.launcher`: one model in a worker process (or inline), its
  messages, timeout and death reasons, the progress bar;
- :mod:`~quantbench.run.pipeline`: measuring one model as stages over one context;
- :mod:`~quantbench.run.cells`: what a cell records from an artifact (sizes, latency
  points, failures);
- :mod:`~quantbench.run.fallback`: the accuracy-aware fallback search;
- :mod:`~quantbench.run.messages`: what a worker tells its parent;
- :mod:`~quantbench.run.process`: settings of the measuring process;
- :mod:`~quantbench.run.outdir`: the output directory.

The public names stay importable from :mod:`quantbench.runner`. This package re-exports
nothing, so importing one module (``outdir`` from ``sensitivity``) loads no other.
"""
