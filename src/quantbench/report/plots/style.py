"""What every figure of a run shares: one colour per model and one line style / marker /
hatch per recipe (the same in every figure), the run's :class:`PlotContext`, the pyplot
handle (Agg backend, imported on first use) and the atomic PNG writer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantbench.recipes import RecipeStyle
from quantbench.report.data import (
    host_microbench,
    model_order,
    recipe_order,
    registered_recipe,
    stored_variant,
)
from quantbench.results import CellResult
from quantbench.shapes import ref_sizes

LOG_RANGE = 20.0  # use a log axis when max/min exceeds this
_DPI = 120


_EXTRA_LINESTYLES: list[Any] = ["-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 3))]
_EXTRA_MARKERS = ["D", "v", "P", "X", "*", "h", "<", ">"]
_EXTRA_HATCHES = ["...", "\\\\\\", "+++", "ooo", "---", "|||"]


def _declared_style(name: str) -> RecipeStyle | None:
    """The style a plain recipe declares (a variant such as ``x+fallback`` gets its own)."""
    variant = stored_variant(name)
    if variant.name != name or not variant.is_base:
        return None
    recipe = registered_recipe(name)
    style = recipe.style if recipe is not None else None
    return style


def recipe_styles(recipes: Sequence[str]) -> dict[str, RecipeStyle]:
    """A distinct, stable style per recipe (recipes that declare one always look the same)."""
    out: dict[str, RecipeStyle] = {}
    i = 0
    for r in recipes:
        declared = _declared_style(r)
        if declared is not None:
            out[r] = declared
        else:
            out[r] = RecipeStyle(
                _EXTRA_LINESTYLES[i % len(_EXTRA_LINESTYLES)],
                _EXTRA_MARKERS[i % len(_EXTRA_MARKERS)],
                _EXTRA_HATCHES[i % len(_EXTRA_HATCHES)],
            )
            i += 1
    return out


def model_colors(models: Sequence[str]) -> dict[str, Any]:
    """A distinct colour per model (tab10, then tab20 for many models)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(models) <= 10 else "tab20"]
    return {m: cmap(i % cmap.N) for i, m in enumerate(models)}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@dataclass
class PlotContext:
    """What every figure of a run shares: colours and recipe styles, the reference input
    sizes (the spec's, see ``quantbench.shapes``) and the machine's micro-benchmark."""

    colors: dict[str, Any]
    recipes: dict[str, RecipeStyle]
    recipe_list: list[str]
    sizes: Mapping[str, int]
    bench: dict[str, Any] | None = None
    limits: Any = None  # report.limits.Limits: the roofline and time figures' data


def plot_context(results: list[CellResult], run: dict[str, Any] | None = None) -> PlotContext:
    """The context of ``results``; ``run`` (the run metadata) gives the reference sizes and
    the micro-benchmark (without it: the lab's sizes, no machine rates)."""
    # Styles come from the whole run, so a model keeps its colour across figures.
    recipes = recipe_order(results)
    return PlotContext(
        model_colors(model_order(results)),
        recipe_styles(recipes),
        recipes,
        ref_sizes((run or {}).get("spec")),
        host_microbench(run),
        _limits(run, results),
    )


def _limits(run: dict[str, Any] | None, results: list[CellResult]) -> Any:
    from quantbench.report.limits import limits

    return limits(run or {}, results, ref_sizes((run or {}).get("spec")))


def _save(fig: Any, path: Path) -> None:
    save_closed(fig, path, dpi=_DPI, bbox_inches="tight")


def save_closed(fig: Any, path: Path, **savefig: Any) -> None:
    """:func:`save_png`, then close ``fig`` (whether or not it could be saved)."""
    import matplotlib.pyplot as plt

    try:
        save_png(fig, path, **savefig)
    finally:
        plt.close(fig)


def save_png(fig: Any, path: Path, **savefig: Any) -> None:
    """Write ``fig`` to ``path`` as PNG atomically: a reader never sees half a file, and a
    figure that fails to save leaves the previous one (or none) behind."""
    from quantbench.files import atomic_write

    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", **savefig))
