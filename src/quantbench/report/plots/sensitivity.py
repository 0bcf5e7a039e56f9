"""The figure of sensitivity.md (``quantbench sensitivity``): the most sensitive layers'
effects as bars. Which figures exist and their files: ``report.figures``
(``SENSITIVITY_FIGURES``).

Example::

    from quantbench.report.plots.sensitivity import plot_layer_effects
    plot_layer_effects(Path("out/sensitivity.png"), result)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantbench.report.plots.style import _pyplot, save_closed

TOP = 25  # layers drawn, most sensitive first
DPI = 110


def plot_layer_effects(path: Path, result: Any) -> bool:
    """The effect of each of the :data:`TOP` most sensitive layers of ``result`` (a
    :class:`quantbench.sensitivity.Sensitivity`); layers that failed are left out."""
    plt = _pyplot()
    rows = [e for e in result.layers if e.effect is not None][:TOP][::-1]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(rows) + 1.5))
    ax.barh([e.layer for e in rows], [e.effect for e in rows], color="tab:orange")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel(
        "score gained by keeping the layer in float"
        if result.mode == "float-one"
        else "score lost by quantizing only this layer"
    )
    ax.set_title(f"{result.model} · {result.recipe}: most sensitive layers", fontsize=10)
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    save_closed(fig, path, dpi=DPI)
    return True
