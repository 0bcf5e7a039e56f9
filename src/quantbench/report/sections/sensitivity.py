"""The sections of sensitivity.md (``quantbench sensitivity``): what was measured and how,
its figure, then the layers ranked by their effect.

Their order is the registry ``quantbench.report.render.SENSITIVITY_SECTIONS``; the record is
``quantbench.sensitivity.Sensitivity``.
"""

from __future__ import annotations

from quantbench.report.context import SensitivityContext
from quantbench.report.fmt import cell_name, md_code, md_escape, md_table


def header(ctx: SensitivityContext) -> list[str]:
    """Title, mode (what an effect means), metric, weights, calibration, the two scores
    every effect is taken against, and the figure."""
    result = ctx.result
    what = (
        "every layer quantized except the one named: the effect is how much keeping it in "
        "float wins back"
        if result.mode == "float-one"
        else "only the layer named quantized: the effect is what quantizing it alone costs"
    )
    return [
        f"# Layer sensitivity: {cell_name(result)}",
        "",
        f"- **Mode:** {md_escape(result.mode)} ({what})",
        f"- **Metric:** {md_escape(result.metric)}",
        f"- **Weights:** {md_escape(ctx.weights)}",
        f"- **Calibration:** {md_escape(ctx.calib_source)}",
        f"- **fp32:** {result.fp32_score:.4f}; **fully quantized:** {result.quantized_score:.4f}",
        f"- **Time:** {result.seconds:.1f} s for {len(result.layers)} layers",
        "",
        *ctx.figures.lines("sensitivity_header"),
    ]


def ranking(ctx: SensitivityContext) -> list[str]:
    """The layers, most sensitive first: type, parameters, score and effect (or error)."""
    rows = []
    for i, e in enumerate(ctx.result.layers, 1):
        score = f"{e.score:.4f}" if e.score is not None else "—"
        effect = f"{e.effect:+.4f}" if e.effect is not None else f"error: {e.error}"
        rows.append([i, md_code(e.layer), e.kind, f"{e.params:,}", score, effect])
    return md_table(["Rank", "Layer", "Type", "Params", "Score", "Effect"], rows)
