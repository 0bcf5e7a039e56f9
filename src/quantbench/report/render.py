"""report.md: the lab's sections, written from the result records only.

Every claim in the text is derived from the numbers passed in; nothing is re-measured
and nothing is hard-coded about how a model "usually" behaves.

Example::

    from quantbench.report.render import render_markdown
    text = render_markdown(run, results, figures={"size": Path("plots/size.png")})
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from quantbench.report.data import (
    BASELINE,
    INT8_ISA_FLAGS,
    SpeedupValue,
    find_cell,
    has_int8_isa,
    is_random_weights,
    mib,
    model_family,
    model_order,
    ok_cells,
    point_speedup,
    recipe_order,
    reference_point,
    sort_cells,
    to_ms,
    weights_by_model,
)
from quantbench.results import CellResult, LatencyPoint

FIDELITY_MIN = 0.99  # cosine / top-1 agreement below this gets a warning
SMALL_MS = 5.0  # below this median, fixed quantize/dequantize costs weigh heavily
FEW_INT8_FRACTION = 0.5  # under this share of int8 parameters, "few modules quantized"

# What each recipe does, in a sentence or two. Unknown recipes get a generic line.
RECIPE_DESCRIPTIONS: dict[str, str] = {
    "fp32": (
        "Baseline: the model as loaded, float32 weights and activations in eager PyTorch. "
        "Every other recipe is compared against it."
    ),
    "dynamic-int8": (
        "The lab's method: `torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, "
        "dtype=torch.qint8)`. The weights of every `nn.Linear` are stored as int8 with one "
        "scale per tensor; activations are quantized on the fly at each call and the "
        "results dequantized back to float. Convolutions, embeddings and normalisation "
        "layers stay in float."
    ),
    "static-int8": (
        "FX graph-mode post-training static quantization (`prepare_fx` / `convert_fx`): "
        "Conv/Linear + ReLU (and BatchNorm) are fused, weights are int8 per output channel, "
        "and activation scales and zero points are calibrated on {calib} before "
        "conversion, so the quantized parts run int8 from end to end."
    ),
}
_GENERIC_DESCRIPTION = (
    "No description registered for this recipe; the module counts below show what it changed."
)

_SECTION_TITLES = (
    "## 1. Models and model size",
    "## 2. How quantization was done",
    "## 3. Model size",
    "## 4. Latency",
    "## 5. Discussion",
    "## Environment",
)

_FIGURE_CAPTIONS = {
    "vision_input_size": "Vision models: latency vs image size",
    "vision_batch_size": "Vision models: latency vs batch size",
    "text_input_size": "Text models: latency vs sequence length",
    "text_batch_size": "Text models: latency vs batch size",
    "speedup": "Paired speedup vs fp32 at the reference shape",
}


# ----------------------------------------------------------------------------- format


def md_escape(value: Any) -> str:
    """Make ``value`` safe inside a markdown table cell (pipes escaped, one line)."""
    text = "" if value is None else str(value)
    text = text.replace("\\|", "|").replace("|", "\\|")
    return " ".join(text.split())


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A GitHub-flavoured markdown table; every cell is escaped."""
    out = ["| " + " | ".join(md_escape(h) for h in headers) + " |"]
    out.append("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        cells = [md_escape(c) for c in row]
        cells += [""] * (len(headers) - len(cells))
        out.append("| " + " | ".join(c if c else " " for c in cells) + " |")
    return out


def fmt_sig(x: float | None, sig: int = 3) -> str:
    """``x`` to ``sig`` significant figures, without scientific notation."""
    if x is None:
        return "—"
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return str(x)
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    if mag >= sig - 1:
        return f"{round(x, sig - 1 - mag):,.0f}"
    return f"{x:.{sig - 1 - mag}f}"


def fmt_mib(size_bytes: float | None) -> str:
    """Bytes as MiB with one decimal (more for tiny artifacts)."""
    if size_bytes is None:
        return "—"
    v = mib(size_bytes)
    return f"{v:.1f}" if v >= 0.1 or v == 0 else fmt_sig(v, 2)


def fmt_params(n: int | None) -> str:
    """Parameter count, e.g. 11.7M."""
    if n is None:
        return "—"
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.1f}{suffix}"
    return str(n)


def fmt_pct(f: float | None) -> str:
    """A fraction as a percentage."""
    return "—" if f is None else f"{100 * f:.1f}%"


def fmt_speedup(s: SpeedupValue | None) -> str:
    """``2.41x [2.30, 2.55]``; unpaired ratios are labelled as such."""
    if s is None:
        return "—"
    text = f"{s.median:.2f}x"
    if s.ci_low is not None and s.ci_high is not None:
        text += f" [{s.ci_low:.2f}, {s.ci_high:.2f}]"
    if not s.paired:
        text += " (unpaired)"
    return text


def fmt_counts(counts: dict[str, int], sep: str = " × ") -> str:
    """``{"Linear": 72}`` -> ``72 × Linear``, largest first; "nothing" when empty."""
    if not counts:
        return "nothing"
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if sep == " × ":
        return ", ".join(f"{n} × {name}" for name, n in items)
    return ", ".join(f"{name} {n}" for name, n in items)


def _unit_word(family: str | None) -> str:
    return {"vision": "px", "text": "tokens"}.get(family or "", "")


def fmt_shape(point: LatencyPoint, family: str | None) -> str:
    """``1 × 224 px`` / ``8 × 128 tokens``."""
    return f"{point.batch_size} × {point.input_size} {_unit_word(family)}".rstrip()


def _is_nan(x: float | None) -> bool:
    return isinstance(x, float) and math.isnan(x)


# ----------------------------------------------------------------------------- sections


def _header(run: dict[str, Any], results: list[CellResult]) -> list[str]:
    run_id = run.get("id") or "unnamed run"
    started, finished = run.get("started_at"), run.get("finished_at")
    date = str(started or finished or "not recorded")
    if started and finished:
        date = f"{started} → {finished}"
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    status_text = ", ".join(f"{n} {s}" for s, n in statuses.items()) or "none"
    rendered = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# quantbench report: {run_id}",
        "",
        f"- **Run id:** `{run_id}`",
        f"- **Date:** {date} (report rendered {rendered})",
    ]
    if run.get("quantbench_version"):
        lines.append(f"- **quantbench:** {run['quantbench_version']}")
    lines += [
        f"- **Cells:** {len(results)} ({status_text}); models: "
        + (", ".join(model_order(results)) or "none"),
        "",
    ]
    return lines + _weights_statement(run, results)


def _weights_statement(run: dict[str, Any], results: list[CellResult]) -> list[str]:
    weights = weights_by_model(run, results)
    models = model_order(results)
    random_models = [m for m in models if is_random_weights(weights.get(m))]
    unknown = [m for m in models if m not in weights]
    lines: list[str] = []
    if random_models:
        lines += [
            f"> ⚠️ **Weights: random for {', '.join(random_models)}.** For these models the "
            "size and latency numbers are valid, but accuracy and fidelity numbers do "
            "**not** reflect a trained model (random weights can even give degenerate "
            "outputs). Measure fidelity on trained weights.",
            ">",
        ]
    else:
        lines += ["> **Weights:** " + ("none recorded." if not models else "as listed."), ">"]
    for m in models:
        desc = weights.get(m, "not recorded")
        flag = " (random: accuracy/fidelity not meaningful)" if m in random_models else ""
        lines.append(f"> - `{m}`: {desc}{flag}")
    if unknown:
        lines += [
            ">",
            f"> Weights not recorded for {', '.join(unknown)}: treat their accuracy and "
            "fidelity numbers with care.",
        ]
    return lines + [""]


def _ratio_text(orig: int | None, quant: int | None) -> str:
    if not orig or quant is None:
        return "—"
    ratio = quant / orig
    if quant == 0:
        return f"{ratio:.2f}x"
    factor = orig / quant
    if abs(ratio - 1) < 0.005:
        return f"{ratio:.2f}x (no change)"
    if ratio < 1:
        return (
            f"{ratio:.2f}x ({factor:.1f}x smaller)"
            if factor >= 1.1
            else f"{ratio:.2f}x ({factor:.2f}x smaller)"
        )
    return f"{ratio:.2f}x ({ratio:.2f}x larger)"


def _section_models(results: list[CellResult]) -> list[str]:
    lines = [_SECTION_TITLES[0], ""]
    rows = []
    for model in model_order(results):
        base = find_cell(results, model, BASELINE)
        base_ok = base if base is not None and base.status == "ok" else None
        family = model_family(results, model) or "—"
        orig = base_ok.size_bytes if base_ok else None
        variants = [c for c in sort_cells(results) if c.model == model and c.recipe != BASELINE]
        if not variants:
            rows.append(
                [model, family, "fp32", fmt_mib(orig), "— (fp32 only)", "—", "—", "—",
                 fmt_pct(base_ok.int8_param_fraction) if base_ok else "—",
                 fmt_params(base_ok.params) if base_ok else "—"]
            )  # fmt: skip
            continue
        for c in variants:
            if c.status != "ok":
                rows.append(
                    [model, family, "fp32", fmt_mib(orig), c.recipe, f"*{c.status}*",
                     f"*{c.status}*", "—", "—", fmt_params(base_ok.params) if base_ok else "—"]
                )  # fmt: skip
                continue
            rows.append(
                [model, family, "fp32", fmt_mib(orig), c.recipe, fmt_counts(c.quantized_modules),
                 fmt_mib(c.size_bytes), _ratio_text(orig, c.size_bytes),
                 fmt_pct(c.int8_param_fraction),
                 fmt_params(c.params if c.params is not None else (base_ok.params if base_ok else None))]
            )  # fmt: skip
    if not rows:
        return lines + ["No results in this run.", ""]
    lines += md_table(
        ["Model", "Family", "Original precision", "Original size (MiB)", "Target precision",
         "Parts quantized", "Quantized size (MiB)", "Ratio (quantized/original)",
         "int8 params", "Params"],
        rows,
    )  # fmt: skip
    lines += [
        "",
        "Size is the bytes of the saved artifact (as `du` sees it). *int8 params* is the "
        "share of parameter bytes stored as int8.",
        "",
    ]
    return lines


def _calib_text(run: dict[str, Any]) -> str:
    spec = run.get("spec") or {}
    for key in ("calib_batches", "calibration_batches", "n_calib_batches", "calib"):
        val = spec.get(key) if isinstance(spec, dict) else None
        if isinstance(val, int) and not isinstance(val, bool):
            return f"{val} batch{'es' if val != 1 else ''} of inputs"
    return "a few batches of inputs (count in the run spec)"


def _section_method(run: dict[str, Any], results: list[CellResult]) -> list[str]:
    lines = [_SECTION_TITLES[1], ""]
    lines += [
        f"- **Quantized engine:** `{run.get('engine') or 'not recorded'}`",
        f"- **Threads:** {run.get('threads') if run.get('threads') is not None else 'not recorded'}",
        "",
        "Recipes in this run:",
        "",
    ]
    calib = _calib_text(run)
    if not results:
        lines.append("- none")
    for recipe in recipe_order(results):
        desc = RECIPE_DESCRIPTIONS.get(recipe, _GENERIC_DESCRIPTION).replace("{calib}", calib)
        lines.append(f"- **{recipe}**: {desc}")
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


def _compression(results: list[CellResult]) -> dict[str, dict[str, list[tuple[str, float]]]]:
    """family -> recipe -> [(model, quantized/original)]."""
    out: dict[str, dict[str, list[tuple[str, float]]]] = {}
    cells = ok_cells(results)
    for c in sort_cells(cells):
        if c.recipe == BASELINE or c.size_bytes is None:
            continue
        base = find_cell(cells, c.model, BASELINE)
        if base is None or not base.size_bytes:
            continue
        fam = c.family or model_family(results, c.model) or "other"
        out.setdefault(fam, {}).setdefault(c.recipe, []).append(
            (c.model, c.size_bytes / base.size_bytes)
        )
    return out


def _ordered_families(fams: Iterable[str]) -> list[str]:
    fams = list(fams)
    return [f for f in ("vision", "text") if f in fams] + sorted(
        f for f in fams if f not in ("vision", "text")
    )


def _image(key: str, figures: dict[str, Path], plots_rel: str, caption: str) -> list[str]:
    if key not in figures:
        return []
    return [f"![{caption}]({plots_rel}/{Path(figures[key]).name})", ""]


def _section_size(results: list[CellResult], figures: dict[str, Path], plots_rel: str) -> list[str]:
    lines = [_SECTION_TITLES[2], ""]
    lines += _image("size", figures, plots_rel, "Model size per recipe (MiB)")
    comp = _compression(results)
    if not comp:
        have_size = any(c.size_bytes is not None for c in ok_cells(results))
        lines.append(
            "No quantized size could be compared with an fp32 size in this run."
            if have_size
            else "Size was not measured in this run."
        )
        return lines + [""]
    for fam in _ordered_families(comp):
        models = list(dict.fromkeys(m for pairs in comp[fam].values() for m, _ in pairs))
        parts = []
        for recipe, pairs in comp[fam].items():
            ratios = [r for _, r in pairs]
            lo, hi = min(ratios), max(ratios)
            span = f"{lo:.2f}" if math.isclose(lo, hi, abs_tol=0.005) else f"{lo:.2f}–{hi:.2f}"
            parts.append(f"{recipe} leaves {span} of the fp32 size")
        lines.append(
            f"- **{fam}** ({len(models)} model{'s' if len(models) != 1 else ''}: "
            f"{', '.join(models)}): " + "; ".join(parts) + "."
        )
    return lines + [""]


def _section_latency(
    results: list[CellResult], figures: dict[str, Path], plots_rel: str
) -> list[str]:
    lines = [_SECTION_TITLES[3], ""]
    measured = [c for c in ok_cells(results) if c.latency]
    if not measured:
        return lines + ["Latency was not measured in this run.", ""]
    lines += [
        "Median of the timed forward passes (warm-up excluded) with its confidence "
        "interval; speedup is paired (variants timed in interleaved rounds, median of the "
        "per-round ratios) unless marked *unpaired*.",
        "",
    ]
    for key in ("vision_input_size", "vision_batch_size", "text_input_size", "text_batch_size"):
        lines += _image(key, figures, plots_rel, _FIGURE_CAPTIONS[key])
    lines += _image("speedup", figures, plots_rel, _FIGURE_CAPTIONS["speedup"])

    cells = ok_cells(results)
    recipes = {r: i for i, r in enumerate(recipe_order(results))}
    for model in model_order(measured):
        family = model_family(results, model)
        base = find_cell(cells, model, BASELINE)
        lines += [f"### {model}" + (f" ({family})" if family else ""), ""]
        rows = []
        mine = sorted((c for c in measured if c.model == model), key=lambda c: recipes[c.recipe])
        for c in mine:
            for p in sorted(c.latency, key=lambda p: (p.batch_size, p.input_size)):
                sp = "baseline" if c.recipe == BASELINE else fmt_speedup(point_speedup(p, base))
                verdict = "⚠️ **noisy**" if p.verdict == "noisy" else p.verdict
                rows.append(
                    [c.recipe, fmt_shape(p, family),
                     f"{fmt_sig(to_ms(p.median, p.unit))} [{fmt_sig(to_ms(p.ci_low, p.unit))}, "
                     f"{fmt_sig(to_ms(p.ci_high, p.unit))}]",
                     fmt_sig(to_ms(p.p90, p.unit)), p.n, verdict, sp]
                )  # fmt: skip
        lines += md_table(
            ["Recipe", "Shape (batch × input)", "Median ms [CI]", "p90 ms", "n", "Verdict",
             "Speedup vs fp32 [CI]"],
            rows,
        )  # fmt: skip
        missing = [c.recipe for c in cells if c.model == model and not c.latency]
        if missing:
            lines += ["", f"Latency not measured for: {', '.join(missing)}."]
        lines.append("")
    not_measured = [m for m in model_order(cells) if m not in model_order(measured)]
    if not_measured:
        lines += [f"Latency not measured for models: {', '.join(not_measured)}.", ""]
    return lines


# ----------------------------------------------------------------------------- discussion


def _speedups(cell: CellResult, base: CellResult | None) -> list[tuple[LatencyPoint, SpeedupValue]]:
    out = []
    for p in cell.latency:
        s = point_speedup(p, base)
        if s is not None:
            out.append((p, s))
    return out


def _few_modules_reason(cell: CellResult) -> str | None:
    quantized = sum(cell.quantized_modules.values())
    floats = sum(cell.float_modules.values())
    parts = fmt_counts(cell.quantized_modules)
    stayed = fmt_counts(cell.float_modules, sep=" ") if cell.float_modules else ""
    if quantized == 0:
        return "nothing was quantized, so the variant can only add overhead"
    frac = cell.int8_param_fraction
    few = (frac is not None and frac < FEW_INT8_FRACTION) or (
        frac is None and quantized <= 2 and floats > 5 * quantized
    )
    if not few:
        return None
    text = f"few modules were quantized (only {parts}"
    if frac is not None:
        text += f"; {fmt_pct(frac)} of parameters int8"
    text += ")"
    if stayed:
        text += f" while {stayed} stayed in float"
    return text + ", so there is little int8 compute to gain from"


def _discussion(run: dict[str, Any], results: list[CellResult]) -> list[str]:
    lines = [_SECTION_TITLES[4], ""]
    cells = ok_cells(results)

    # Compression.
    comp = _compression(results)
    lines += ["**Compression** (fp32 size / quantized size):", ""]
    if comp:
        for fam in _ordered_families(comp):
            for recipe, pairs in comp[fam].items():
                factors = [1 / r for _, r in pairs if r > 0]
                if not factors:
                    continue
                mean = statistics.fmean(factors)
                lo, hi = min(factors), max(factors)
                if len(factors) == 1:
                    extra = f" ({pairs[0][0]})"
                elif f"{lo:.2f}" == f"{hi:.2f}":
                    extra = f" (the same for all {len(factors)} models)"
                else:
                    extra = f" (range {lo:.2f}x–{hi:.2f}x over {len(factors)} models)"
                lines.append(f"- {fam}, {recipe}: {mean:.2f}x smaller on average{extra}.")
    else:
        lines.append("- No size comparison available.")
    lines.append("")

    # Speedup at the reference shape, with best and worst shapes.
    rows = []
    all_points: list[tuple[CellResult, LatencyPoint, SpeedupValue]] = []
    for c in sort_cells(cells):
        if c.recipe == BASELINE or not c.latency:
            continue
        base = find_cell(cells, c.model, BASELINE)
        sps = _speedups(c, base)
        all_points += [(c, p, s) for p, s in sps]
        ref = reference_point(c)
        ref_s = point_speedup(ref, base) if ref is not None else None
        best = max(sps, key=lambda ps: ps[1].median, default=None)
        worst = min(sps, key=lambda ps: ps[1].median, default=None)
        rows.append(
            [c.model, c.recipe, fmt_shape(ref, c.family) if ref else "—", fmt_speedup(ref_s),
             f"{fmt_shape(best[0], c.family)} ({best[1].median:.2f}x)" if best else "—",
             f"{fmt_shape(worst[0], c.family)} ({worst[1].median:.2f}x)" if worst else "—"]
        )  # fmt: skip
    lines += ["**Speedup vs fp32** at each model's reference shape:", ""]
    if rows:
        lines += md_table(
            ["Model", "Recipe", "Reference shape", "Speedup [CI]", "Best shape", "Worst shape"],
            rows,
        )
        lines.append("")
    else:
        lines += ["- No latency was measured for a quantized variant.", ""]
    if all_points:
        best_c, best_p, best_s = max(all_points, key=lambda t: t[2].median)
        worst_c, worst_p, worst_s = min(all_points, key=lambda t: t[2].median)
        lines += [
            f"Across the run, quantization helps most for {best_c.model} · {best_c.recipe} at "
            f"{fmt_shape(best_p, best_c.family)} ({fmt_speedup(best_s)}) and least for "
            f"{worst_c.model} · {worst_c.recipe} at {fmt_shape(worst_p, worst_c.family)} "
            f"({fmt_speedup(worst_s)}).",
            "",
        ]

    # Slower than fp32.
    lines += ["**Where a quantized variant is slower than fp32:**", ""]
    slow_lines = _slow_cases(run, cells, all_points)
    if not all_points:
        slow_lines = ["- Not applicable: no speedup vs fp32 was measured."]
    lines += slow_lines or ["- None: every measured quantized variant is at least as fast as fp32."]
    lines.append("")

    # Fidelity.
    lines += _fidelity(run, results)
    return lines


def _slow_cases(
    run: dict[str, Any],
    cells: list[CellResult],
    all_points: list[tuple[CellResult, LatencyPoint, SpeedupValue]],
) -> list[str]:
    host = run.get("host") or {}
    isa = has_int8_isa(host)
    out: list[str] = []
    for c in sort_cells(cells):
        slow = [(p, s) for cc, p, s in all_points if cc is c and s.median < 1.0]
        if not slow:
            continue
        n_total = sum(1 for cc, _, _ in all_points if cc is c)
        n_sig = sum(1 for _, s in slow if s.ci_high is not None and s.ci_high < 1.0)
        ordered = sorted(slow, key=lambda ps: ps[1].median)
        shape_texts = [f"{fmt_shape(p, c.family)}: {fmt_speedup(s)}" for p, s in ordered[:3]]
        if len(ordered) > 3:
            shape_texts.append(f"{len(ordered) - 3} more")
        if n_sig == len(slow):
            sig_text = "the CI is entirely below 1 at every one of them"
        elif n_sig:
            sig_text = f"the CI is entirely below 1 at {n_sig}; the others may be noise"
        else:
            sig_text = "the CI includes 1.0 at each, so this may be noise"
        reasons = []
        few = _few_modules_reason(c)
        if few:
            reasons.append(few)
        small = [p for p, _ in ordered if to_ms(p.median, p.unit) < SMALL_MS]
        if small:
            shapes = ", ".join(
                f"{fmt_shape(p, c.family)} takes {fmt_sig(to_ms(p.median, p.unit))} ms"
                for p in small[:3]
            )
            if len(small) > 3:
                shapes += f", and {len(small) - 3} more under {SMALL_MS:g} ms"
            reasons.append(
                "small shapes, where the fixed cost of quantizing/dequantizing activations "
                f"and dispatching int8 kernels dominates a short pass ({shapes})"
            )
        if isa is False:
            flags = ", ".join(str(f) for f in host.get("isa_flags") or []) or "none"
            reasons.append(
                f"the CPU has no VNNI/AMX int8 instructions (none of "
                f"{', '.join(INT8_ISA_FLAGS)} among its flags: {flags}), so int8 matrix "
                "multiplies gain little over fp32"
            )
        noisy = [p for p, _ in slow if p.verdict == "noisy"]
        if noisy:
            reasons.append(
                f"{len(noisy)} of these points {'is' if len(noisy) == 1 else 'are'} marked "
                "noisy, so the ratio is uncertain"
            )
        if not reasons:
            reasons.append(
                "no cause is evident from the recorded data (enough modules quantized, "
                "int8 ISA present or unknown, not a tiny shape); profile this cell"
            )
        plural = "s" if len(reasons) > 1 else ""
        out.append(
            f"- **{c.model} · {c.recipe}** is slower than fp32 at {len(slow)} of {n_total} "
            f"shapes ({sig_text}); slowest: {'; '.join(shape_texts)}. "
            f"Likely reason{plural}: {'; '.join(reasons)}."
        )
    return out


def _fidelity(run: dict[str, Any], results: list[CellResult]) -> list[str]:
    weights = weights_by_model(run, results)
    cells = [c for c in sort_cells(ok_cells(results)) if c.fidelity is not None]
    lines = ["**Fidelity** (outputs compared with fp32 on the same inputs):", ""]
    if not cells:
        return lines + ["- Fidelity was not measured in this run.", ""]
    rows = []
    warnings = []
    for c in cells:
        f = c.fidelity
        assert f is not None
        rows.append(
            [c.model, c.recipe, fmt_sig(f.cosine, 4) if f.cosine is not None else "—",
             fmt_sig(f.max_abs_err, 3), fmt_pct(f.top1_agreement), f.note or ""]
        )  # fmt: skip
        problems = []
        if _is_nan(f.cosine):
            problems.append("cosine is undefined (degenerate, e.g. all-zero, outputs)")
        elif f.cosine is not None and f.cosine < FIDELITY_MIN:
            problems.append(f"cosine {fmt_sig(f.cosine, 4)} < {FIDELITY_MIN}")
        if f.top1_agreement is not None and f.top1_agreement < FIDELITY_MIN:
            problems.append(f"top-1 agreement {fmt_pct(f.top1_agreement)} < {FIDELITY_MIN:.0%}")
        if problems:
            random_tag = " (random weights)" if is_random_weights(weights.get(c.model)) else ""
            warnings.append(
                f"- ⚠️ **{c.model} · {c.recipe}**{random_tag}: " + "; ".join(problems) + "."
            )
    lines += md_table(["Model", "Recipe", "Cosine", "Max abs err", "Top-1 agreement", "Note"], rows)
    lines.append("")
    lines += warnings or [f"- All measured variants keep cosine and top-1 ≥ {FIDELITY_MIN}."]
    random_models = [m for m in model_order(cells) if is_random_weights(weights.get(m))]
    if random_models:
        lines += [
            "",
            f"Fidelity for {', '.join(random_models)} was measured on random weights: it "
            "shows how the arithmetic differs, not how a trained model would fare.",
        ]
    return lines + [""]


def _environment(run: dict[str, Any]) -> list[str]:
    host = run.get("host") or {}
    lines = [_SECTION_TITLES[5], ""]
    flags = host.get("isa_flags")
    flag_text = ", ".join(f"`{f}`" for f in flags) if flags else "not recorded"
    isa = has_int8_isa(host)
    if isa is not None:
        flag_text += " (int8 dot-product ISA: " + ("yes" if isa else "**no**") + ")"
    lines += [
        f"- **CPU:** {host.get('cpu') or 'not recorded'}",
        f"- **Cores:** {host.get('cores') if host.get('cores') is not None else 'not recorded'}",
        f"- **ISA flags:** {flag_text}",
        f"- **OS:** {host.get('os') or 'not recorded'}",
    ]
    for k, v in host.items():
        if k not in ("cpu", "cores", "isa_flags", "os"):
            lines.append(f"- **{k}:** {v}")
    lines += [
        f"- **Quantized engine:** `{run.get('engine') or 'not recorded'}`",
        f"- **Threads:** {run.get('threads') if run.get('threads') is not None else 'not recorded'}",
        "",
    ]
    versions = run.get("versions") or {}
    if versions:
        lines += md_table(["Package", "Version"], [[k, v] for k, v in versions.items()])
    else:
        lines.append("Library versions not recorded.")
    return lines + [""]


def render_markdown(
    run: dict[str, Any],
    results: list[CellResult],
    figures: dict[str, Path] | None = None,
    plots_rel: str = "plots",
) -> str:
    """The full report.md text; ``figures`` maps figure keys to written files.

    >>> text = render_markdown({"id": "r1"}, [])
    >>> text.startswith("# quantbench report: r1")
    True
    """
    figures = figures or {}
    results = list(results)
    lines = _header(run, results)
    lines += _section_models(results)
    lines += _section_method(run, results)
    lines += _section_size(results, figures, plots_rel)
    lines += _section_latency(results, figures, plots_rel)
    lines += _discussion(run, results)
    lines += _environment(run)
    return "\n".join(lines).rstrip() + "\n"
