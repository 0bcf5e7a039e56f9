"""## 4. Latency (timing policy, figures, per-model tables) and its subsection
### Memory and time to prepare."""

from __future__ import annotations

from typing import Any

from quantbench.inert import md_text
from quantbench.measure import metrics
from quantbench.measure.contention import is_contended
from quantbench.measure.contention import rule_text as contention_rule
from quantbench.measure.latency import NOISY_REL_CI, NOISY_REL_STD, TimingPolicy
from quantbench.report.context import ReportContext
from quantbench.report.data import (
    BASELINE,
    find_cell,
    model_family,
    model_order,
    ok_cells,
    point_gflops,
    point_speedup,
    recipe_order,
    sort_cells,
    to_ms,
)
from quantbench.report.fmt import (
    Md,
    fmt_shape,
    fmt_sig,
    fmt_speedup,
    md_escape,
    md_table,
    plural,
    spec_number,
)
from quantbench.results import CellResult, LatencyPoint

SETTLE_REL = TimingPolicy().settle_rel  # warm-up settles when two passes agree this well


def timing_policy_text(run: dict[str, Any]) -> str | None:
    """The timing policy of ``run['spec']`` in one paragraph; None when none is recorded."""
    spec = run.get("spec")
    if not isinstance(spec, dict):
        return None
    warmup, max_warmup = spec_number(spec, "warmup"), spec_number(spec, "max_warmup")
    max_warmup_s = spec_number(spec, "max_warmup_s")
    min_runs, min_time = spec_number(spec, "min_runs"), spec_number(spec, "min_time_s")
    max_time = spec_number(spec, "max_time_s")
    if all(v is None for v in (warmup, max_warmup, min_runs, min_time, max_time)):
        return None
    settle = spec_number(spec, "settle_rel") or SETTLE_REL
    parts = []
    if warmup is not None:
        if max_warmup is not None and max_warmup > warmup:
            cap = f"at most {max_warmup:g}"
            if max_warmup_s is not None:
                cap += f" or {max_warmup_s:g} s"
            parts.append(
                f"Warm-up: at least {plural(warmup, 'pass')} per variant, then more until two "
                f"consecutive passes of every variant agree within {settle:.0%}, {cap}; "
                "warm-up passes are excluded from the statistics."
            )
        else:
            parts.append(
                f"Warm-up: {plural(warmup, 'pass')} per variant, excluded from the statistics."
            )
    timed = []
    if min_runs is not None:
        timed.append(f"at least {plural(min_runs, 'pass')}")
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
    if isinstance(spec.get("wait_policy"), str):
        parts.append(f"Idle runtime threads: wait policy {md_escape(spec['wait_policy'])}.")
    if "timeout_s" in spec:
        timeout = spec_number(spec, "timeout_s")
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


def _contended_count_text(points: list[LatencyPoint]) -> str:
    hit = sum(1 for p in points if is_contended(p))
    if not hit:
        return ""
    verb = "was" if hit == 1 else "were"
    return (
        f" **{hit} of {len(points)} points {verb} measured under contention** "
        f"({contention_rule()}): other work held the cores, and their speedups may not hold "
        "on a quiet machine."
    )


def latency(ctx: ReportContext) -> list[str]:
    """Timing policy, the latency figures, then one table per model."""
    run, results = ctx.run, ctx.results
    measured = [c for c in ok_cells(results) if c.latency]
    if not measured:
        return ["Latency was not measured in this run.", "", *ctx.failure_lines("latency")]
    lines: list[str] = []
    policy = timing_policy_text(run)
    if policy:
        lines += [f"**Timing policy.** {policy}", ""]
    lines += [
        "Median of the timed forward passes (warm-up excluded) with its confidence "
        "interval; speedup is paired (variants timed in interleaved rounds, median of the "
        "per-round ratios) unless marked *unpaired*. "
        + _noisy_count_text([p for c in measured for p in c.latency])
        + _contended_count_text([p for c in measured for p in c.latency]),
        "",
    ]
    if any(point_gflops(p) for c in measured for p in c.latency):
        lines += [
            "*GFLOP* is the work of one forward pass at that shape, counted on the fp32 model "
            "(the same work for every variant); *GFLOP/s* is that work divided by the median "
            "time, so for int8 variants it is an fp32-equivalent rate.",
            "",
        ]
    lines += ctx.figure_lines("latency")

    cells = ok_cells(results)
    recipes = {r: i for i, r in enumerate(recipe_order(results))}
    for model in model_order(measured):
        family = model_family(results, model)
        base = find_cell(cells, model, BASELINE)
        lines += [f"### {md_escape(model)}" + (f" ({md_escape(family)})" if family else ""), ""]
        mine = sorted((c for c in measured if c.model == model), key=lambda c: recipes[c.recipe])
        points = [
            (c, p)
            for c in mine
            for p in sorted(c.latency, key=lambda p: (p.batch_size, p.input_size))
        ]
        # a column per "latency" metric that some point of the model has
        extra = [m for m in metrics.shown("latency") if any(m.get(c, p) is not None
                                                              for c, p in points)]  # fmt: skip
        rows = []
        for c, p in points:
            sp = "baseline" if c.recipe == BASELINE else fmt_speedup(point_speedup(p, base))
            verdict = Md("⚠️ **noisy**") if p.verdict == "noisy" else p.verdict
            if is_contended(p):  # Md is a str: a plain verdict goes through md_text first
                shown = verdict if isinstance(verdict, Md) else md_text(verdict)
                verdict = Md(f"{shown}, ⚠️ **contended**")
            rows.append([
                c.recipe, fmt_shape(p, family),
                f"{fmt_sig(to_ms(p.median, p.unit))} [{fmt_sig(to_ms(p.ci_low, p.unit))}, "
                f"{fmt_sig(to_ms(p.ci_high, p.unit))}]",
                *(m.text(m.get(c, p)) for m in extra), p.n, verdict, sp,
            ])  # fmt: skip
        headers = ["Recipe", "Shape (batch × input)", "Median ms [CI]", *(m.label for m in extra)]
        lines += md_table([*headers, "n", "Verdict", "Speedup vs fp32 [CI]"], rows)
        missing = [c.recipe for c in cells if c.model == model and not c.latency]
        if missing:
            lines += ["", f"Latency not measured for: {', '.join(map(md_escape, missing))}."]
        lines.append("")
    not_measured = [m for m in model_order(cells) if m not in model_order(measured)]
    if not_measured:
        lines += [
            f"Latency not measured for models: {', '.join(map(md_escape, not_measured))}.",
            "",
        ]
    return lines


def _ref_shape_text(run: dict[str, Any], results: list[CellResult]) -> str:
    """``batch 4 × the reference input size (224 px for vision, 128 tokens for text)``."""
    spec = run.get("spec") if isinstance(run.get("spec"), dict) else {}
    batch = spec_number(spec, "fidelity_batch_size")
    fams = {c.family for c in results}
    sizes = []
    for fam, key, unit in (("vision", "ref_image_size", "px"), ("text", "ref_seq_len", "tokens")):
        size = spec_number(spec, key)
        if fam in fams and size is not None:
            sizes.append(f"{size:g} {unit} for {fam}")
    text = f"batch {batch:g} × " if batch is not None else ""
    text += "the reference input size"
    return text + (f" ({', '.join(sizes)})" if sizes else "")


def memory(ctx: ReportContext) -> list[str] | None:
    """Per cell: a column per ``"memory"`` metric of the metrics table (load and quantize
    times, memory), then the achieved-GFLOP/s figure."""
    cells = sort_cells(ok_cells(ctx.results))
    first_of_model = {}
    for c in cells:
        first_of_model.setdefault(c.model, c)
    values = {
        m.name: [m.get(c) if not m.per_model or first_of_model[c.model] is c else None
                 for c in cells]
        for m in metrics.shown("memory")
    }  # fmt: skip
    shown = [m for m in metrics.shown("memory") if any(v is not None for v in values[m.name])]
    if not shown and not ctx.has_figures("memory"):
        return None
    lines: list[str] = []
    if shown:
        shape = _ref_shape_text(ctx.run, ctx.results)
        lines += [
            "; ".join(f"*{m.label}*: {m.help.replace('{shape}', shape)}" for m in shown)
            + ". RSS differences are approximate: the allocator can reuse freed memory, so "
            "0 means no measurable growth.",
            "",
        ]
        rows = [[c.model, c.recipe, *(m.text(values[m.name][i]) for m in shown)]
                for i, c in enumerate(cells)]  # fmt: skip
        lines += md_table(["Model", "Recipe", *(m.label for m in shown)], rows)
        lines.append("")
    return lines + ctx.figure_lines("memory")
