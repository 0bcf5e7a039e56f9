"""Drawing the figures of a run: latency sweeps (the lab's four figures), size, paired
speedup, achieved GFLOP/s against the machine's measured matmul rates, accuracy and the
trade-off. Which figures exist, their files and captions: ``report.figures``.

One colour per model and one line style / marker / hatch per recipe, the same in every
figure. matplotlib is imported inside the functions (Agg backend) so that importing
this module stays cheap. A figure with no data is not written (its function returns
False).

- :mod:`~quantbench.report.plots.style`: colours, recipe styles, :class:`PlotContext`,
  pyplot and the atomic PNG writer (what every figure shares);
- :mod:`~quantbench.report.plots.bars`: grouped horizontal bars and their recipe legend;
- :mod:`~quantbench.report.plots.latency`: latency sweeps and raw samples;
- :mod:`~quantbench.report.plots.size`: artifact size per model and recipe;
- :mod:`~quantbench.report.plots.speedup`: paired speedup bars and the speedup heatmap;
- :mod:`~quantbench.report.plots.compute`: achieved GFLOP/s vs the machine's rates;
- :mod:`~quantbench.report.plots.tradeoff`: accuracy / size vs latency, Pareto fronts.

Example::

    from quantbench.report.plots import plot_context, plot_size
    plot_size(Path("out/plots/size.png"), results, plot_context(results, run))
"""

from __future__ import annotations

from quantbench.report.plots.compute import plot_gflops
from quantbench.report.plots.latency import plot_latency_sweep, plot_samples
from quantbench.report.plots.size import plot_size
from quantbench.report.plots.speedup import plot_speedup, plot_speedup_heatmap
from quantbench.report.plots.style import (
    LOG_RANGE,
    PlotContext,
    _pyplot,
    _save,
    model_colors,
    plot_context,
    recipe_styles,
    save_png,
)
from quantbench.report.plots.tradeoff import pareto_front, plot_accuracy_pareto, plot_tradeoff

__all__ = [
    "LOG_RANGE",
    "PlotContext",
    "_pyplot",  # with _save: shared with report.plots_sweep
    "_save",
    "model_colors",
    "pareto_front",
    "plot_accuracy_pareto",
    "plot_context",
    "plot_gflops",
    "plot_latency_sweep",
    "plot_samples",
    "plot_size",
    "plot_speedup",
    "plot_speedup_heatmap",
    "plot_tradeoff",
    "recipe_styles",
    "save_png",
]
