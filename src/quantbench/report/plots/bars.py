"""Grouped horizontal bars (one group per model, one bar per recipe, a status note where
a cell has no value) and the recipe legend under them: what the bar figures share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from quantbench.report.plots.style import PlotContext

# (recipe, value or status text, (ci_low, ci_high) or None)
_Bar = tuple[str, "float | str", "tuple[float, float] | None"]


def _grouped_barh(
    ax: Any,
    groups: list[str],
    bars: dict[str, list[_Bar]],
    style: PlotContext,
    fmt: Callable[[float], str],
    label_offset: float,
) -> list[str]:
    """Horizontal bars, one group per model (top to bottom), one bar per recipe.

    A bar whose value is a string (a cell's status, e.g. "unsupported") is drawn as a
    grey note in its slot, so a missing bar is never mistaken for a zero.
    """
    recipes_used = [
        r for r in style.recipe_list if any(rec == r for g in groups for rec, _, _ in bars[g])
    ]
    k = max(1, len(recipes_used))
    height = 0.8 / k
    for gi, model in enumerate(groups):
        for recipe, value, ci in bars[model]:
            ri = recipes_used.index(recipe)
            y = gi - 0.4 + height * (ri + 0.5)
            if isinstance(value, str):
                ax.text(
                    label_offset,
                    y,
                    f"{recipe}: {value}",
                    va="center",
                    ha="left",
                    fontsize=7.5,
                    style="italic",
                    color="0.35",
                )
                continue
            xerr = None
            if ci is not None:
                xerr = [[max(0.0, value - ci[0])], [max(0.0, ci[1] - value)]]
            ax.barh(
                y,
                value,
                height=height * 0.92,
                color=style.colors[model],
                edgecolor="0.2",
                linewidth=0.6,
                hatch=style.recipes[recipe].hatch,
                xerr=xerr,
                error_kw={"capsize": 3, "elinewidth": 1, "ecolor": "0.1"},
            )
            end = ci[1] if ci is not None else value
            ax.text(
                end + label_offset,
                y,
                f"{fmt(value)}  {recipe}",
                va="center",
                ha="left",
                fontsize=7.5,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.5},
            )
    ax.set_yticks(range(len(groups)))
    ax.set_yticklabels(groups)
    ax.set_ylim(len(groups) - 0.5, -0.5)
    return recipes_used


def _recipe_patch_legend(
    ax: Any, recipes: list[str], style: PlotContext, extra: Sequence[Any] = ()
) -> None:
    """Recipe legend (hatches) below the axes, where it cannot hide a bar or label.

    ``extra`` handles (e.g. reference lines) are appended to the same legend.
    """
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor="0.85", edgecolor="0.2", hatch=style.recipes[r].hatch, label=r)
        for r in recipes
    ] + list(extra)
    from matplotlib.transforms import offset_copy

    # A fixed gap in points below the axes (under the x label), whatever the figure height.
    below = offset_copy(ax.transAxes, fig=ax.figure, y=-36, units="points")
    ax.legend(
        handles=handles,
        title="recipe (hatch); colour = model" + ("; dashed = machine rate" if extra else ""),
        fontsize=8,
        title_fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        bbox_transform=below,
        ncol=max(1, min(len(handles), 6 if extra else 4)),
        frameon=False,
    )
