"""## 2. How quantization was done: engine, what each recipe does, what stayed in float,
and the cells that did not produce results."""

from __future__ import annotations

from typing import Any

from quantbench.report.context import ReportContext
from quantbench.report.data import (
    BASELINE,
    ok_cells,
    recipe_order,
    registered_recipe,
    sort_cells,
    stored_variant,
)
from quantbench.report.fmt import fmt_counts, md_code, md_escape, md_table
from quantbench.variants import TRANSFORMS

GENERIC_DESCRIPTION = (
    "No description registered for this recipe; the module counts below show what it changed."
)
# Said after a transform's meaning (``variants.TRANSFORMS``) in this report.
_TRANSFORM_WHERE = {"fallback": " (the layers are listed in section 6)"}


def calib_text(run: dict[str, Any]) -> str:
    """How many calibration batches the spec asked for, in words."""
    spec = run.get("spec") or {}
    for key in ("calib_batches", "calibration_batches", "n_calib_batches", "calib"):
        val = spec.get(key) if isinstance(spec, dict) else None
        if isinstance(val, int) and not isinstance(val, bool):
            return f"{val} batch{'es' if val != 1 else ''} of inputs"
    return "a few batches of inputs (count in the run spec)"


def recipe_text(name: str) -> str:
    """What a stored recipe (or variant) name did: a plain recipe's explanation; else its
    base recipe's one-line description and what each transform adds; else a generic line.
    May hold ``{calib}``."""
    recipe = registered_recipe(name)
    variant = stored_variant(name)
    if variant.name == name and variant.is_base:
        explanation = recipe.explanation if recipe is not None else None
        if explanation:
            return explanation
    if recipe is None:
        return GENERIC_DESCRIPTION
    text = recipe.description
    for t in variant.transforms:  # none for a name with an unknown transform
        text += "; " + TRANSFORMS[t] + _TRANSFORM_WHERE.get(t, "")
    return text[:1].upper() + text[1:] + "."


def method(ctx: ReportContext) -> list[str]:
    """Engine and threads, each recipe in words, then per cell what was quantized."""
    run, results = ctx.run, ctx.results
    threads = run.get("threads")
    lines = [
        f"- **Quantized engine:** {md_code(run.get('engine') or 'not recorded')}",
        f"- **Threads:** {md_escape(threads if threads is not None else 'not recorded')}",
        "",
        "Recipes in this run:",
        "",
    ]
    calib = calib_text(run)
    if not results:
        lines.append("- none")
    for recipe in recipe_order(results):
        text = recipe_text(recipe).replace("{calib}", calib)
        lines.append(f"- **{md_escape(recipe)}**: {text}")  # text: quantbench's own words
    lines.append("")

    float_rows = []
    for c in sort_cells(ok_cells(results)):
        if c.recipe == BASELINE:
            continue
        float_rows.append(
            [c.model, c.recipe, fmt_counts(c.quantized_modules),
             fmt_counts(c.float_modules, sep=" ") if c.float_modules else "nothing recorded",
             "; ".join(c.notes)]
        )  # fmt: skip
    if float_rows:
        lines += ["What was quantized and what stayed in float:", ""]
        lines += md_table(["Model", "Recipe", "Quantized", "Stayed in float", "Notes"], float_rows)
        lines.append("")

    # what loading a model had to say (an ONNX file's collapsed sweep, the dims it chose):
    # its fp32 cell's notes that no other cell of the model repeats
    others = {(c.model, n) for c in results if c.recipe != BASELINE for n in c.notes}
    said = [[c.model, "; ".join(n for n in c.notes if (c.model, n) not in others)]
            for c in sort_cells(results) if c.recipe == BASELINE]  # fmt: skip
    said = [row for row in said if row[1]]
    if said:
        lines += ["Notes on the models as loaded (their fp32 cells):", ""]
        lines += md_table(["Model", "Notes"], said)
        lines.append("")

    failed = [c for c in sort_cells(results) if c.status != "ok"]
    if failed:
        lines += ["Cells that did not produce results (each recorded with its reason):", ""]
        lines += md_table(
            ["Model", "Recipe", "Status", "Reason"],
            [[c.model, c.recipe, c.status, c.error or "no reason recorded"] for c in failed],
        )
    else:
        lines.append("Every cell ran (no unsupported, error or timeout cells).")
    return lines + [""]
