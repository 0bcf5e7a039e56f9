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

from quantbench.measure.latency import NOISY_REL_CI, NOISY_REL_STD, TimingPolicy
from quantbench.report.data import (
    BASELINE,
    INT8_ISA_FLAGS,
    SpeedupValue,
    bench_ratio,
    cpu_ranges,
    find_cell,
    has_int8_isa,
    host_microbench,
    is_random_weights,
    memory_value,
    mib,
    model_family,
    model_order,
    ok_cells,
    point_gflops,
    point_gflops_per_s,
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
SETTLE_REL = TimingPolicy().settle_rel  # warm-up settles when two passes agree this well
BARELY_FASTER = 1.2  # reference-shape speedup under this counts as "barely faster"
MATMUL_BOUND_FRACTION = 0.5  # fp32 at under this share of the machine's matmul rate: not GEMM-bound
BUSY_LOAD_PER_CORE = 0.5  # load average above this per core: the machine was busy

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
    "## 6. Accuracy on real data",
)

_FIGURE_CAPTIONS = {
    "vision_input_size": "Vision models: latency vs image size",
    "vision_batch_size": "Vision models: latency vs batch size",
    "text_input_size": "Text models: latency vs sequence length",
    "text_batch_size": "Text models: latency vs batch size",
    "speedup": "Paired speedup vs fp32 at the reference shape",
    "gflops": "Achieved GFLOP/s at the reference shape vs the machine's matmul rates",
    "accuracy": "Accuracy vs latency, with the Pareto front",
    "tradeoff": "Size vs latency vs accuracy per model",
    "heatmap": "Speedup vs fp32 over batch size × input size",
    "samples": "Raw latency samples at the reference shape",
}
MEMORY_TITLE = "### Memory and time to prepare"


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


def _registered_description(recipe: str) -> str:
    """The recipe registry's own one-line description, for recipes not described here."""
    base, _, suffix = recipe.partition("+")
    try:
        from quantbench.recipes import get_recipe

        text = get_recipe(base).description
    except Exception:
        return _GENERIC_DESCRIPTION
    if suffix == "compile":
        text += "; run through torch.compile (compile time reported apart from latency)"
    elif suffix == "fallback":
        text += (
            "; accuracy-aware fallback: its most sensitive layers kept in float, one at a "
            "time, until the accuracy bar is met (the layers are listed in section 6)"
        )
    return text[:1].upper() + text[1:] + "."


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
        desc = RECIPE_DESCRIPTIONS.get(recipe) or _registered_description(recipe)
        desc = desc.replace("{calib}", calib)
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


def _spec_number(spec: dict[str, Any], key: str) -> float | None:
    val = spec.get(key)
    if isinstance(val, bool) or not isinstance(val, (int, float)):
        return None
    return float(val) if math.isfinite(val) else None


def _plural(n: float, word: str) -> str:
    return f"{n:g} {word}" if n == 1 else f"{n:g} {word}{'es' if word.endswith('s') else 's'}"


def timing_policy_text(run: dict[str, Any]) -> str | None:
    """The timing policy of ``run['spec']`` in one paragraph; None when none is recorded."""
    spec = run.get("spec")
    if not isinstance(spec, dict):
        return None
    warmup, max_warmup = _spec_number(spec, "warmup"), _spec_number(spec, "max_warmup")
    max_warmup_s = _spec_number(spec, "max_warmup_s")
    min_runs, min_time = _spec_number(spec, "min_runs"), _spec_number(spec, "min_time_s")
    max_time = _spec_number(spec, "max_time_s")
    if all(v is None for v in (warmup, max_warmup, min_runs, min_time, max_time)):
        return None
    settle = _spec_number(spec, "settle_rel") or SETTLE_REL
    parts = []
    if warmup is not None:
        if max_warmup is not None and max_warmup > warmup:
            cap = f"at most {max_warmup:g}"
            if max_warmup_s is not None:
                cap += f" or {max_warmup_s:g} s"
            parts.append(
                f"Warm-up: at least {_plural(warmup, 'pass')} per variant, then more until two "
                f"consecutive passes of every variant agree within {settle:.0%}, {cap}; "
                "warm-up passes are excluded from the statistics."
            )
        else:
            parts.append(
                f"Warm-up: {_plural(warmup, 'pass')} per variant, excluded from the statistics."
            )
    timed = []
    if min_runs is not None:
        timed.append(f"at least {_plural(min_runs, 'pass')}")
    if min_time is not None and min_time > 0:
        timed.append(f"at least {min_time:g} s of timed passes")
    if timed or max_time is not None:
        text = "Timed: " + (" and ".join(timed) + " per variant at each point" if timed else "")
        if max_time is not None:
            text += (", " if timed else "each point ") + f"capped at {max_time:g} s of timing"
            if min_runs is not None:
                text += f" per point (the {min_runs:g} passes always complete)"
            else:
                text += " per point"
        parts.append(text + ".")
    parts.append(
        "The variants of a model are timed in interleaved rounds at each point, so drift "
        "hits them alike."
    )
    if "timeout_s" in spec:
        timeout = _spec_number(spec, "timeout_s")
        parts.append(
            f"Each model is stopped after {timeout:g} s."
            if timeout is not None
            else "No per-model timeout."
        )
    return " ".join(parts)


def _noisy_count_text(points: list[LatencyPoint]) -> str:
    rule = (
        f"std ≥ {NOISY_REL_STD:.0%} of the mean or median CI wider than {NOISY_REL_CI:.0%} "
        "of the median"
    )
    noisy = sum(1 for p in points if p.verdict == "noisy")
    if not noisy:
        return f"All {len(points)} points are stable (none has {rule})."
    verb, their = ("is", "its speedup") if noisy == 1 else ("are", "their speedups")
    return f"**{noisy} of {len(points)} points {verb} noisy** ({rule}): treat {their} with care."


def _section_latency(
    run: dict[str, Any], results: list[CellResult], figures: dict[str, Path], plots_rel: str
) -> list[str]:
    lines = [_SECTION_TITLES[3], ""]
    measured = [c for c in ok_cells(results) if c.latency]
    if not measured:
        return (
            lines
            + ["Latency was not measured in this run.", ""]
            + _memory_work(run, results, figures, plots_rel)
        )
    policy = timing_policy_text(run)
    if policy:
        lines += [f"**Timing policy.** {policy}", ""]
    lines += [
        "Median of the timed forward passes (warm-up excluded) with its confidence "
        "interval; speedup is paired (variants timed in interleaved rounds, median of the "
        "per-round ratios) unless marked *unpaired*. "
        + _noisy_count_text([p for c in measured for p in c.latency]),
        "",
    ]
    if any(point_gflops(p) for c in measured for p in c.latency):
        lines += [
            "*GFLOP* is the work of one forward pass at that shape, counted on the fp32 model "
            "(the same work for every variant); *GFLOP/s* is that work divided by the median "
            "time, so for int8 variants it is an fp32-equivalent rate.",
            "",
        ]
    for key in ("vision_input_size", "vision_batch_size", "text_input_size", "text_batch_size"):
        lines += _image(key, figures, plots_rel, _FIGURE_CAPTIONS[key])
    for key in ("speedup", "heatmap", "samples"):
        lines += _image(key, figures, plots_rel, _FIGURE_CAPTIONS[key])

    cells = ok_cells(results)
    recipes = {r: i for i, r in enumerate(recipe_order(results))}
    for model in model_order(measured):
        family = model_family(results, model)
        base = find_cell(cells, model, BASELINE)
        lines += [f"### {model}" + (f" ({family})" if family else ""), ""]
        mine = sorted((c for c in measured if c.model == model), key=lambda c: recipes[c.recipe])
        points = [
            (c, p)
            for c in mine
            for p in sorted(c.latency, key=lambda p: (p.batch_size, p.input_size))
        ]
        show_p99 = any(_finite(p.p99) for _, p in points)
        show_work = any(point_gflops(p) for _, p in points)
        rows = []
        for c, p in points:
            sp = "baseline" if c.recipe == BASELINE else fmt_speedup(point_speedup(p, base))
            verdict = "⚠️ **noisy**" if p.verdict == "noisy" else p.verdict
            row: list[Any] = [
                c.recipe, fmt_shape(p, family),
                f"{fmt_sig(to_ms(p.median, p.unit))} [{fmt_sig(to_ms(p.ci_low, p.unit))}, "
                f"{fmt_sig(to_ms(p.ci_high, p.unit))}]",
                fmt_sig(to_ms(p.p90, p.unit)),
            ]  # fmt: skip
            if show_p99:
                row.append(fmt_sig(to_ms(p.p99, p.unit)) if _finite(p.p99) else "—")
            if show_work:
                row += [fmt_sig(point_gflops(p)), fmt_sig(point_gflops_per_s(p))]
            rows.append([*row, p.n, verdict, sp])
        headers = ["Recipe", "Shape (batch × input)", "Median ms [CI]", "p90 ms"]
        headers += ["p99 ms"] if show_p99 else []
        headers += ["GFLOP", "GFLOP/s"] if show_work else []
        lines += md_table([*headers, "n", "Verdict", "Speedup vs fp32 [CI]"], rows)
        missing = [c.recipe for c in cells if c.model == model and not c.latency]
        if missing:
            lines += ["", f"Latency not measured for: {', '.join(missing)}."]
        lines.append("")
    not_measured = [m for m in model_order(cells) if m not in model_order(measured)]
    if not_measured:
        lines += [f"Latency not measured for models: {', '.join(not_measured)}.", ""]
    return lines + _memory_work(run, results, figures, plots_rel)


def _finite(x: float | None) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _ref_shape_text(run: dict[str, Any], results: list[CellResult]) -> str:
    """``batch 4 × the reference input size (224 px for vision, 128 tokens for text)``."""
    spec = run.get("spec") if isinstance(run.get("spec"), dict) else {}
    batch = _spec_number(spec, "fidelity_batch_size")
    fams = {c.family for c in results}
    sizes = []
    for fam, key, unit in (("vision", "ref_image_size", "px"), ("text", "ref_seq_len", "tokens")):
        size = _spec_number(spec, key)
        if fam in fams and size is not None:
            sizes.append(f"{size:g} {unit} for {fam}")
    text = f"batch {batch:g} × " if batch is not None else ""
    text += "the reference input size"
    return text + (f" ({', '.join(sizes)})" if sizes else "")


# (key, header, description); "first" columns are per model, shown on its first row.
_MEMORY_COLUMNS = (
    ("load_s", "Load s", "time to load or build the model (once per model, on its first row)"),
    ("quantize_s", "Quantize s", "time to apply the recipe"),
    ("rss_bytes", "Added by artifact (MiB)",
     "resident memory the variant added when it was built (for fp32: what loading the model "
     "added)"),
    ("inference_peak_bytes", "Inference peak (MiB)",
     "peak RSS of one forward pass at {shape} above the RSS just before it (activations, "
     "workspaces)"),
    ("process_peak_bytes", "RSS peak in that pass (MiB)",
     "peak RSS of the worker process during that pass"),
    ("peak_rss_bytes", "Worker peak RSS (MiB)",
     "peak RSS of the worker over all variants of the model (on its first row)"),
)  # fmt: skip


def _memory_value(cell: CellResult, key: str) -> float | None:
    if key in ("load_s", "quantize_s", "peak_rss_bytes"):
        value = getattr(cell, key, None)
        return float(value) if _finite(value) else None
    value = memory_value(cell, key)
    return None if value is None else float(value)


def _memory_work(
    run: dict[str, Any], results: list[CellResult], figures: dict[str, Path], plots_rel: str
) -> list[str]:
    """### Memory and time to prepare: per cell, with the achieved-GFLOP/s figure."""
    cells = sort_cells(ok_cells(results))
    first_of_model = {}
    for c in cells:
        first_of_model.setdefault(c.model, c)
    values: dict[str, list[float | None]] = {}
    for key, _, _ in _MEMORY_COLUMNS:
        per_model = key in ("load_s", "peak_rss_bytes")
        values[key] = [
            _memory_value(c, key) if not per_model or first_of_model[c.model] is c else None
            for c in cells
        ]
    shown = [col for col in _MEMORY_COLUMNS if any(v is not None for v in values[col[0]])]
    if not shown and "gflops" not in figures:
        return []
    lines = [MEMORY_TITLE, ""]
    if shown:
        shape = _ref_shape_text(run, results)
        lines += [
            "; ".join(f"*{header}*: {desc.replace('{shape}', shape)}" for _, header, desc in shown)
            + ". RSS differences are approximate: the allocator can reuse freed memory, so "
            "0 means no measurable growth.",
            "",
        ]
        rows = []
        for i, c in enumerate(cells):
            row: list[Any] = [c.model, c.recipe]
            for key, _, _ in shown:
                v = values[key][i]
                if v is None:
                    row.append("—")
                elif key.endswith("_s"):
                    row.append(fmt_sig(v, 3))
                else:
                    row.append(fmt_mib(v))
            rows.append(row)
        lines += md_table(["Model", "Recipe", *(h for _, h, _ in shown)], rows)
        lines.append("")
    if "gflops" in figures:
        lines += _image("gflops", figures, plots_rel, _FIGURE_CAPTIONS["gflops"])
        bench = host_microbench(run)
        text = (
            "Achieved GFLOP/s at each model's reference shape (fp32-equivalent for int8 variants)"
        )
        if bench:
            refs = []
            if _finite(bench.get("fp32_gflops")):
                refs.append(f"fp32 Linear {fmt_sig(bench['fp32_gflops'])} GFLOP/s")
            if _finite(bench.get("int8_gops")):
                refs.append(f"dynamic int8 Linear {fmt_sig(bench['int8_gops'])} GOP/s")
            text += "; dashed lines: the machine's measured matmul rates (" + ", ".join(refs) + ")"
        lines += [text + ".", ""]
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

    # Barely faster at the reference shape (and not already discussed as slower).
    slow_cells = {id(c) for c, _, s in all_points if s.median < 1.0}
    barely = _barely_faster(run, cells, slow_cells)
    if barely:
        lines += [
            f"**Where a quantized variant is barely faster** (under {BARELY_FASTER:g}x at the "
            "reference shape):",
            "",
            *barely,
            "",
        ]

    # Achieved compute vs the machine's micro-benchmark.
    lines += _achieved_compute(run, cells)

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
    bench = host_microbench(run)
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
        base = find_cell(cells, c.model, BASELINE)
        evidence = _compute_evidence(c, ordered[0][0], base, bench)
        if not reasons and not evidence:
            reasons.append(
                "no cause is evident from the recorded data (enough modules quantized, "
                "int8 ISA present or unknown, not a tiny shape); profile this cell"
            )
        plural = "s" if len(reasons) > 1 else ""
        text = (
            f"- **{c.model} · {c.recipe}** is slower than fp32 at {len(slow)} of {n_total} "
            f"shapes ({sig_text}); slowest: {'; '.join(shape_texts)}."
        )
        if reasons:
            text += f" Likely reason{plural}: {'; '.join(reasons)}."
        if evidence:
            text += f" Evidence: {evidence}."
        winner = _winner_at(cells, c.model, ordered[0][0])
        if winner is not None:
            text += (
                f" At {fmt_shape(ordered[0][0], c.family)} **{winner[0]}** is the fastest "
                f"variant ({winner[1]:.2f}x fp32): use it instead."
            )
        out.append(text)
    return out


def _winner_at(
    cells: list[CellResult], model: str, point: LatencyPoint
) -> tuple[str, float] | None:
    """The recipe with the best paired speedup (> 1) for ``model`` at ``point``'s shape."""
    best: tuple[str, float] | None = None
    for c in cells:
        if c.model != model or c.recipe == BASELINE:
            continue
        p = _same_shape(c, point)
        sp = p.speedup.median if p is not None and p.speedup is not None else 0.0
        if sp > 1.0 and (best is None or sp > best[1]):
            best = (c.recipe, sp)
    return best


def _same_shape(cell: CellResult | None, point: LatencyPoint) -> LatencyPoint | None:
    if cell is None or cell.status != "ok":
        return None
    for p in cell.latency:
        if (p.batch_size, p.input_size) == (point.batch_size, point.input_size):
            return p
    return None


def _bench_rate(bench: dict[str, Any] | None, key: str) -> float | None:
    v = (bench or {}).get(key)
    return float(v) if _finite(v) and not isinstance(v, bool) and v > 0 else None


def _compute_evidence(
    cell: CellResult,
    point: LatencyPoint,
    base: CellResult | None,
    bench: dict[str, Any] | None,
) -> str | None:
    """Achieved GFLOP/s of fp32 and of the variant at ``point``, against the micro-benchmark."""
    shape = fmt_shape(point, cell.family)
    base_point = _same_shape(base, point)
    fp32_rate = point_gflops_per_s(base_point) if base_point is not None else None
    rate = point_gflops_per_s(point)
    fp32_peak, int8_peak = _bench_rate(bench, "fp32_gflops"), _bench_rate(bench, "int8_gops")
    parts = []
    if fp32_rate is not None:
        text = f"fp32 reaches {fmt_sig(fp32_rate)} GFLOP/s at {shape}"
        if fp32_peak is not None:
            frac = fp32_rate / fp32_peak
            text += (
                f", {frac:.0%} of the machine's measured fp32 matmul rate "
                f"({fmt_sig(fp32_peak)} GFLOP/s)"
            )
            if frac < MATMUL_BOUND_FRACTION:
                text += (
                    ", so this pass is limited by something other than matrix-multiply "
                    "throughput (memory traffic, small or non-matmul operators, per-operator "
                    "overhead), which faster int8 matrix multiplies do not remove"
                )
            else:
                text += ", so this pass is largely bound by matrix-multiply throughput"
        parts.append(text)
    if rate is not None:
        text = f"{cell.recipe} reaches {fmt_sig(rate)} GFLOP/s fp32-equivalent"
        if fp32_rate is None:
            text += f" at {shape}"
        if int8_peak is not None:
            text += (
                f" ({rate / int8_peak:.0%} of the machine's int8 Linear rate, "
                f"{fmt_sig(int8_peak)} GOP/s)"
            )
        parts.append(text)
    ratio = bench_ratio(bench)
    if parts and ratio is not None and ratio < BARELY_FASTER:
        parts.append(
            f"this machine's int8 Linear runs only {ratio:.2f}x as fast as fp32 in the "
            "micro-benchmark"
        )
    return "; ".join(parts) or None


def _barely_faster(run: dict[str, Any], cells: list[CellResult], skip: set[int]) -> list[str]:
    """Variants at least as fast as fp32 but under BARELY_FASTER at the reference shape."""
    bench = host_microbench(run)
    out = []
    for c in sort_cells(cells):
        if c.recipe == BASELINE or not c.latency or id(c) in skip:
            continue
        base = find_cell(cells, c.model, BASELINE)
        ref = reference_point(c)
        s = point_speedup(ref, base) if ref is not None else None
        if ref is None or s is None or not 1.0 <= s.median < BARELY_FASTER:
            continue
        reasons = []
        few = _few_modules_reason(c)
        if few:
            reasons.append(few)
        evidence = _compute_evidence(c, ref, base, bench)
        text = f"- **{c.model} · {c.recipe}**: {fmt_speedup(s)} at {fmt_shape(ref, c.family)}."
        if reasons:
            text += f" Likely reason: {'; '.join(reasons)}."
        if evidence:
            text += f" Evidence: {evidence}."
        if not reasons and not evidence:
            text += " No cause is evident from the recorded data."
        out.append(text)
    return out


def _achieved_compute(run: dict[str, Any], cells: list[CellResult]) -> list[str]:
    """The machine's int8:fp32 ceiling and each cell's achieved rate at its reference shape."""
    bench = host_microbench(run)
    fp32_peak, int8_peak = _bench_rate(bench, "fp32_gflops"), _bench_rate(bench, "int8_gops")
    ratio = bench_ratio(bench)
    rows = []
    above = []
    for c in sort_cells(cells):
        ref = reference_point(c)
        if ref is None:
            continue
        rate = point_gflops_per_s(ref)
        base = find_cell(cells, c.model, BASELINE)
        s = point_speedup(ref, base) if c.recipe != BASELINE else None
        if s is not None and ratio is not None and ratio > 0 and s.median > ratio:
            above.append(f"{c.model} · {c.recipe} ({s.median:.2f}x at {fmt_shape(ref, c.family)})")
        if rate is None:
            continue
        peak, what = (
            (fp32_peak, "fp32 Linear") if c.recipe == BASELINE else (int8_peak, "int8 Linear")
        )
        share = f"{rate / peak:.0%} of {what}" if peak is not None else "—"
        rows.append([c.model, c.recipe, fmt_shape(ref, c.family), fmt_sig(point_gflops(ref)),
                     fmt_sig(rate), share])  # fmt: skip
    if not rows and bench is None:
        return []
    title = "**Achieved compute" + (" vs the machine's matmul rates" if bench else "") + ":**"
    lines = [title, ""]
    if bench is not None:
        shape = bench.get("shape")
        shape_text = (
            "×".join(str(x) for x in shape)
            if isinstance(shape, (list, tuple)) and len(shape) == 3
            else "shape not recorded"
        )
        threads = bench.get("threads")
        setup = f"one Linear layer, M×K×N = {shape_text}" + (
            f", {threads} threads" if threads is not None else ""
        )
        rates = ", ".join(
            t
            for t in (
                f"fp32 {fmt_sig(fp32_peak)} GFLOP/s" if fp32_peak is not None else "",
                f"dynamic int8 {fmt_sig(int8_peak)} GOP/s" if int8_peak is not None else "",
            )
            if t
        )
        text = f"- Micro-benchmark at the start of the run ({setup}): {rates}."
        if ratio is not None and ratio >= 1:
            text += (
                f" So this machine's int8 Linear runs {ratio:.2f}x faster than fp32 at most "
                "(at that shape): the realistic ceiling for GEMM-dominated models. Speedups "
                "above it come from other changes than faster int8 matrix multiplies, such as "
                "fused conv+relu, smaller memory traffic, or matrix shapes where fp32 is less "
                "efficient than in the micro-benchmark."
            )
        elif ratio is not None:
            text += (
                f" int8 Linear is slower than fp32 on this machine ({ratio:.2f}x), so int8 "
                "matrix multiplies cannot be expected to speed a model up here; any speedup "
                "comes from other changes (fused operators, smaller memory traffic)."
            )
        lines.append(text)
        if ratio is not None and above:
            lines.append(
                f"- Above that {ratio:.2f}x ceiling at the reference shape: "
                + ", ".join(above)
                + "."
            )
        elif ratio is not None and any(c.recipe != BASELINE and c.latency for c in cells):
            lines.append(f"- No variant exceeds the {ratio:.2f}x ceiling at the reference shape.")
        lines.append("")
    if rows:
        headers = ["Model", "Recipe", "Reference shape", "GFLOP", "GFLOP/s achieved"]
        have_share = any(row[-1] != "—" for row in rows)
        if have_share:
            headers.append("Share of the machine's rate")
        lines += md_table(headers, [row if have_share else row[:-1] for row in rows])
        lines += ["", "GFLOP/s of int8 variants is fp32-equivalent (fp32 FLOPs / median time)."]
        if have_share:
            lines[-1] += (
                " The share compares fp32 with the measured fp32 Linear rate and int8 variants "
                "with the measured int8 Linear rate; a model far below the machine's rate is "
                "limited by something other than matrix-multiply throughput."
            )
        else:
            lines[-1] += (
                " No micro-benchmark was recorded with this run, so the achieved rates cannot "
                "be compared with the machine's capability."
            )
        lines.append("")
    return lines


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
        if k not in ("cpu", "cores", "isa_flags", "os", "microbench", "load_avg"):
            lines.append(f"- **{k}:** {'not recorded' if v is None else v}")
    if "load_avg" in host:
        lines.append(f"- **Load average at start:** {_load_text(host)}")
    bench = host_microbench(run)
    if bench is not None:
        lines.append(f"- **Matmul micro-benchmark:** {_bench_text(bench)}")
    elif "microbench" in host:
        lines.append("- **Matmul micro-benchmark:** not run (latency not measured, or it failed)")
    lines += [
        f"- **Quantized engine:** `{run.get('engine') or 'not recorded'}`",
        f"- **Threads:** {run.get('threads') if run.get('threads') is not None else 'not recorded'}",
    ]
    if "affinity" in run:
        cpus = run.get("affinity")
        lines.append(
            f"- **CPU affinity at start:** CPUs {cpu_ranges(cpus)} ({len(set(cpus))})"
            if isinstance(cpus, (list, tuple)) and cpus
            else "- **CPU affinity at start:** not available on this platform"
        )
    if "pinned" in run:
        threads = run.get("threads")
        lines.append(
            "- **Pinned:** "
            + (
                "yes (each model's worker pinned to "
                + (f"{threads} CPU{'s' if threads != 1 else ''}" if threads else "its CPUs")
                + ")"
                if run.get("pinned")
                else "no (the OS may move the worker between CPUs)"
            )
        )
    policy = timing_policy_text(run)
    if policy:
        lines.append(f"- **Timing policy:** {policy}")
    lines.append("")
    versions = run.get("versions") or {}
    if versions:
        lines += md_table(["Package", "Version"], [[k, v] for k, v in versions.items()])
    else:
        lines.append("Library versions not recorded.")
    return lines + [""]


def _load_text(host: dict[str, Any]) -> str:
    load = host.get("load_avg")
    if not _finite(load) or isinstance(load, bool):
        return "not recorded"
    cores = host.get("cores")
    text = f"{load:.2f} (1-minute average"
    if isinstance(cores, int) and cores > 0:
        text += f", {cores} cores)"
        if load > BUSY_LOAD_PER_CORE * cores:
            text += " ⚠️ the machine was busy: timings may be noisy; trust paired speedups more"
        return text
    return text + ")"


def _bench_text(bench: dict[str, Any]) -> str:
    fp32, int8 = _bench_rate(bench, "fp32_gflops"), _bench_rate(bench, "int8_gops")
    ratio = bench_ratio(bench)
    parts = []
    if fp32 is not None:
        parts.append(f"fp32 {fmt_sig(fp32)} GFLOP/s")
    if int8 is not None:
        parts.append(f"int8 {fmt_sig(int8)} GOP/s")
    text = ", ".join(parts)
    shape = bench.get("shape")
    setup = ["dynamic int8 Linear vs fp32 Linear"]
    if isinstance(shape, (list, tuple)) and len(shape) == 3:
        setup.append("M×K×N = " + "×".join(str(x) for x in shape))
    if bench.get("threads") is not None:
        setup.append(f"{bench['threads']} threads")
    text += f" ({', '.join(setup)})"
    if ratio is not None:
        text += f": int8:fp32 = {ratio:.2f}x"
    return text


def _recommendations(run: dict[str, Any], results: list[CellResult]) -> list[str]:
    """The table the report opens with: what to ship per model, and why the others lost."""
    from quantbench.best import DEFAULT_MIN_COSINE, DEFAULT_MIN_TOP1, recommend

    spec = run.get("spec") or {}
    min_cos = spec.get("min_cosine", DEFAULT_MIN_COSINE)
    min_top1 = spec.get("min_top1", DEFAULT_MIN_TOP1)
    refs = {"vision": spec.get("ref_image_size", 224), "text": spec.get("ref_seq_len", 128)}
    recs = recommend(results, ref_sizes=refs, min_cosine=min_cos, min_top1=min_top1)
    if not recs:
        return []

    def fid(c: Any) -> str:
        if c is None:
            return "—"
        if c.accuracy is not None:
            rel = f" ({c.accuracy_relative:.1%} of fp32)" if c.accuracy_relative else ""
            return f"{c.metric} {c.accuracy:.4f}{rel}"
        if c.recipe == "fp32":
            return "—"
        text = f"cos {c.cosine:.4f}" if c.cosine is not None else "cos n/a"
        return text + (f", top-1 {c.top1:.1%}" if c.top1 is not None else "")

    rows = []
    for model, r in recs.items():
        f, sm = r.fastest, r.smallest
        shape = f"{r.reference[0]} × {r.reference[1]}" if r.reference else "—"
        speed = "—"
        if f is not None and f.speedup is not None:
            ci = f" [{f.speedup_ci[0]:.2f}, {f.speedup_ci[1]:.2f}]" if f.speedup_ci else ""
            speed = f"{f.speedup:.2f}x{ci}"
        lost = [
            f"{c.recipe}: {c.why_not}"
            for c in r.candidates
            if c is not f and c is not sm and c.why_not
        ]
        rows.append([
            model, shape, f.recipe if f else "—", speed,
            f"{f.size_ratio:.2f}" if f and f.size_ratio is not None else "—", fid(f),
            sm.recipe if sm else "—",
            f"{sm.size_ratio:.2f}" if sm and sm.size_ratio is not None else "—",
            "; ".join(lost) or "—",
        ])  # fmt: skip
    lines = [
        "## Recommendation",
        "",
        f"Per model, the fastest and the smallest variant that keep fidelity: on real data "
        f"(section 6), the task metric within the accuracy bar; otherwise cosine to fp32 "
        f"≥ {min_cos} and top-1 agreement ≥ {min_top1:.0%} for classifiers. Speed is the "
        "paired speedup vs fp32 at the reference shape (batch × input size); size ratio is "
        "the artifact's size over fp32's.",
        "",
    ]
    lines += md_table(
        ["Model", "Reference shape", "Fastest", "Speedup [CI]", "Size ratio", "Fidelity / accuracy",
         "Smallest", "Size ratio", "Why the others lost"],
        rows,
    )  # fmt: skip
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
    lines += _recommendations(run, results)
    lines += _image("tradeoff", figures, plots_rel, _FIGURE_CAPTIONS["tradeoff"])
    lines += _section_models(results)
    lines += _section_method(run, results)
    lines += _section_size(results, figures, plots_rel)
    lines += _section_latency(run, results, figures, plots_rel)
    lines += _discussion(run, results)
    lines += _section_accuracy(run, results, figures, plots_rel)
    lines += _environment(run)
    return "\n".join(lines).rstrip() + "\n"


def _metric_text(acc: dict[str, Any] | None) -> str:
    if not acc or acc.get("value") is None:
        return "—"
    v, rel = acc["value"], acc.get("relative")
    if acc.get("metric") == "spearman":
        return f"Spearman {v:.4f}"
    text = f"{acc.get('metric')} {v:.2%}"
    return text + (f" ({rel:.1%} of fp32)" if rel is not None else "")


def _fallback_lines(results: list[CellResult]) -> list[str]:
    """What each ``<recipe>+fallback`` kept in float, what it cost, and the ranking."""
    lines: list[str] = []
    for c in sort_cells(results):
        if not c.recipe.endswith("+fallback") or c.status != "ok":
            continue
        base = find_cell(results, c.model, c.recipe.removesuffix("+fallback"))
        kept = c.details.get("float_layers") or []
        cost = []
        if base and base.size_bytes and c.size_bytes:
            cost.append(f"size {fmt_mib(base.size_bytes)} → {fmt_mib(c.size_bytes)} MiB")
        bp, cp = (reference_point(base) if base else None), reference_point(c)
        if bp and cp:
            cost.append(
                f"latency {fmt_sig(to_ms(bp.median, bp.unit))} → "
                f"{fmt_sig(to_ms(cp.median, cp.unit))} ms at the reference shape"
            )
        steps = "; ".join(
            f"+{md_escape(n)} → {v:.4f}" if v is not None else f"+{md_escape(n)}"
            for n, v in c.details.get("fallback_steps") or []
        )
        if c.accuracy:
            result, met = _metric_text(c.accuracy), bool(c.accuracy.get("passes"))
        else:
            f = c.fidelity
            result = f"cosine {fmt_sig(f.cosine, 4)}" if f and f.cosine is not None else "—"
            if f and f.top1_agreement is not None:
                result += f", top-1 agreement {fmt_pct(f.top1_agreement)}"
            met = bool(c.details.get("meets_bar"))
        lines += [
            f"**{md_escape(c.model)} · {c.recipe}:** kept {len(kept)} layer(s) in float "
            f"({', '.join(f'`{md_escape(k)}`' for k in kept)}); {result}, "
            f"{'meets' if met else 'still misses'} the bar. "
            f"Cost: {', '.join(cost) or 'not measured'}. Steps: {steps}.",
            "",
        ]
        sens = c.details.get("sensitivity") or []
        if sens:
            lines += md_table(
                ["Layer (most sensitive first)", "Type", "Cosine won back in float"],
                [[f"`{md_escape(n)}`", k, f"{e:+.4f}" if e is not None else "—"]
                 for n, k, e in sens],
            )  # fmt: skip
            lines.append("")
    return lines


def _section_accuracy(
    run: dict[str, Any], results: list[CellResult], figures: dict[str, Path], plots_rel: str
) -> list[str]:
    """Task metrics per variant, the bar, what fallback kept in float, and the Pareto plot."""
    from quantbench.best import bar_text

    cells = [c for c in sort_cells(results) if c.accuracy]
    if not cells:
        fallback = _fallback_lines(results)
        if not fallback:
            return []
        return [
            "## 6. Accuracy-aware fallback", "",
            "No evaluation data was given, so the bar was fidelity to fp32 on the same "
            "inputs (cosine and top-1 agreement, as in the recommendation table).", "",
            *fallback,
        ]  # fmt: skip
    spec = run.get("spec") or {}
    drop = float(spec.get("max_accuracy_drop", 0.01))
    lines = [
        _SECTION_TITLES[6], "",
        f"Each variant is scored on the evaluation data; it **passes** when its metric stays "
        f"at or above {bar_text(drop)} of fp32's (`--max-accuracy-drop {drop:g}`). For sentence "
        "embeddings the metric is the Spearman correlation between the fp32 and the variant's "
        "pairwise-similarity matrices (does retrieval ranking survive?), with the cosine of "
        "each sentence's embedding to fp32's beside it.", "",
    ]  # fmt: skip
    rows = []
    for c in cells:
        a = c.accuracy or {}
        if a.get("metric") == "spearman":
            other = f"cosine mean {fmt_sig(a.get('mean_cosine'), 4)}, min {fmt_sig(a.get('min_cosine'), 4)}"
        else:
            parts = [f"top-5 {a['top5']:.2%}"] if a.get("top5") is not None else []
            if a.get("macro_f1") is not None:
                parts.append(f"macro-F1 {a['macro_f1']:.4f}")
            other = ", ".join(parts) or "—"
        verdict = "—" if c.recipe == "fp32" else ("pass" if a.get("passes") else "**fail**")
        rows.append([c.model, c.recipe, _metric_text(a), other, str(a.get("n", "—")), verdict])
    lines += md_table(["Model", "Recipe", "Metric", "Also", "Examples", "Bar"], rows)
    lines.append("")
    sources = sorted({str((c.accuracy or {}).get("dataset")) for c in cells})
    lines.append(f"Evaluation data: {', '.join(f'`{md_escape(x)}`' for x in sources)}.")
    if spec.get("calibration") is None and any(
        "calibrated" in n and "synthetic" in n for c in cells for n in c.notes
    ):
        lines.append(
            "⚠️ Static recipes were calibrated on **synthetic inputs** (no `--calibration` "
            "data): their activation ranges may not fit real data, and accuracy may suffer."
        )
    lines.append("")
    lines += _fallback_lines(results)
    lines += _image("accuracy", figures, plots_rel, _FIGURE_CAPTIONS["accuracy"])
    return lines
