"""### How close to the limit: the machine's ceilings, each variant's roofline point at its
reference shape (% of attainable, compute- or memory-bound), and where its time goes.

The analysis is ``report.limits``; the figures (roofline, time by operator kind) are in
the registry ``report.figures`` with this section's key as their slot.
"""

from __future__ import annotations

from typing import Any

from quantbench.caveats import BUSY_LOAD_PER_CORE
from quantbench.measure.ceilings import Ceilings
from quantbench.measure.profile import KINDS, PROFILE_TOLERANCE
from quantbench.report.context import ReportContext
from quantbench.report.fmt import finite, fmt_shape, fmt_sig, md_escape, md_table
from quantbench.report.limits import CEILING_NOISE, LimitRow, Limits, limits


def limits_section(ctx: ReportContext) -> list[str] | None:
    """The ceilings, the roofline table and figure, the time breakdown and its figure."""
    found = limits(ctx.run, ctx.results, ctx.sizes)
    if found is None:
        return None
    lines = ceiling_lines(found, ctx.run)
    lines += _roofline_lines(found)
    lines += [line for fig in ("roofline",) for line in _figure(ctx, fig)]
    lines += _breakdown_lines(found)
    lines += [line for fig in ("time_breakdown",) for line in _figure(ctx, fig)]
    return lines


def _figure(ctx: ReportContext, key: str) -> list[str]:
    from quantbench.report.figures import FIGURES

    fig = next((f for f in FIGURES if f.key == key), None)
    if fig is None:
        return []
    return ctx.image(fig.key, fig.caption) or ctx.failure(fig.key, fig.caption, fig.filename)


def _g(rate: float | None, precision: str = "fp32") -> str:
    unit = "GOP/s" if precision == "int8" else "GFLOP/s"
    return "—" if rate is None else f"{fmt_sig(rate / 1e9)} {unit}"


def ceiling_lines(found: Limits, run: dict[str, Any]) -> list[str]:
    """The machine's ceilings: a row per precision, bandwidth, which peak is used."""
    c = found.ceilings
    if c is None:
        why = f": {md_escape(found.error)}" if found.error else ""
        return [f"The machine's ceilings were not measured with this run{why}; the work "
                "of each variant is below without a roof.", ""]  # fmt: skip
    how = "read from the per-machine cache" if c.cached else "measured at the start of the run"
    lines = [f"**The machine's limits** at {c.threads} thread(s), {how} "
             f"({md_escape(c.measured_at or 'time not recorded')}):", ""]  # fmt: skip
    rows = []
    for p in ("fp32", "bf16", "fp16", "int8"):
        best, theory = c.peaks.get(p), c.theoretical.get(p) or {}
        if best is None and not theory:
            continue
        where = (f"{best.get('library')}, {'×'.join(map(str, best.get('shape') or []))}"
                 if best else _skipped(c, p))  # fmt: skip
        assumes = ""
        if theory:
            assumes = (f"{theory.get('instructions')}; {theory.get('cores')} core(s) × "
                       f"{fmt_sig(theory.get('ghz'))} GHz")  # fmt: skip
        rows.append([p, _g(c.peak(p), p), where, _g(theory.get("rate"), p), assumes])
    lines += md_table(["Precision", "Measured peak", "Best of (library, M×K×N)",
                       "Theoretical peak", "Theoretical assumes"], rows)  # fmt: skip
    lines.append("")
    bw = c.bandwidth_
    if c.bandwidth() is not None:
        rates = ", ".join(f"{k} {fmt_sig(bw[k] / 1e9)} GB/s" for k in ("triad", "copy")
                          if finite(bw.get(k)))  # fmt: skip
        size, llc = bw.get("array_bytes"), bw.get("llc_bytes")
        setup = [f"float32 arrays of {size >> 20} MiB" if isinstance(size, int) else "",
                 f"last-level cache {llc >> 20} MiB" if isinstance(llc, int) else ""]  # fmt: skip
        lines.append(f"- **Memory bandwidth:** {rates} (STREAM-like"
                     + "".join(f"; {t}" for t in setup if t) + ").")  # fmt: skip
    lines.append(f"- **Ceilings used:** {md_escape(c.uses)}.")
    clock = next((t.get("clock_source") for t in c.theoretical.values()), None)
    over = [p for p in c.peaks if _above_theory(c, p)]
    if clock:
        text = f"- **Clock of the theoretical peak:** {md_escape(clock)}."
        if over:
            text += (f" The measured {', '.join(over)} peak is above the theoretical one, so "
                     "the cores ran faster than that clock (boost).")  # fmt: skip
        lines.append(text)
    cores = (run.get("host") or {}).get("cores")
    busy = c.busy_reason(cores if isinstance(cores, int) else None, BUSY_LOAD_PER_CORE)
    if busy:
        lines.append(f"- ⚠️ The ceilings were measured under load ({md_escape(busy)}): they "
                     "may be low. `quantbench doctor --refresh` on a quiet machine measures "
                     "them again.")  # fmt: skip
    return lines + [""]


def _skipped(c: Ceilings, precision: str) -> str:
    why = next((g.get("skipped") for g in c.gemms
                if g.get("precision") == precision and g.get("skipped")), None)  # fmt: skip
    return f"not measured: {why}" if why else "not measured"


def _above_theory(c: Ceilings, p: str) -> bool:
    theory = (c.theoretical.get(p) or {}).get("rate")
    peak = c.peak(p)
    return bool(theory and peak and peak > theory)


def _roofline_lines(found: Limits) -> list[str]:
    rows = []
    for r in found.rows:
        w, roof = r.work, r.roof
        low = (
            share_text(w.low_flops / w.flops) + f" {w.precision}"
            if w.flops and w.low_flops
            else "—"
        )
        rows.append([
            r.cell.model, r.cell.recipe, fmt_shape(r.point, r.cell.family),
            fmt_sig(w.flops / 1e9), low, fmt_sig(w.bytes / 2**20), fmt_sig(w.intensity),
            fmt_sig(roof.achieved / 1e9) if roof else "—",
            fmt_sig(roof.attainable / 1e9) if roof else "—",
            f"{roof.share:.0%}" + (" ⚠️" if r.above else "") if roof else "—",
            roof.bound if roof else "no ceiling for its precision",
        ])  # fmt: skip
    lines = [
        "**Each variant against its roof** at its reference shape:",
        "",
        *md_table(
            [
                "Model",
                "Recipe",
                "Shape",
                "GFLOP",
                "Low-precision share",
                "MiB moved",
                "FLOP/B",
                "Achieved G/s",
                "Attainable G/s",
                "% of attainable",
                "Bound",
            ],
            rows,
        ),  # fmt: skip
        "",
        "FLOPs are counted on the fp32 model (torch's FlopCounterMode), the same work for "
        "every variant; those of the layers a variant runs in low precision are counted as "
        "ops of that precision. Bytes moved are an estimate: the variant's weights once, "
        "plus the input and output tensors of every innermost module that runs (an ONNX or "
        "compiled variant: the fp32 model's). Achieved = FLOPs / median time; attainable = "
        "min(the precision's peak, or the time-weighted mix of peaks for a partly quantized "
        "variant; bandwidth × FLOP/B). Memory-bound: bandwidth × FLOP/B is the lower roof.",
        "",
    ]
    above = found.above
    if above:
        names = ", ".join(f"{md_escape(r.cell.model)} · {md_escape(r.cell.recipe)} "
                          f"({r.roof.share:.0%})" for r in above if r.roof)  # fmt: skip
        lines += [f"- ⚠️ Above the ceiling by more than {CEILING_NOISE:.0%}: {names}. The "
                  "ceilings were measured low (a busy machine): `quantbench doctor "
                  "--refresh` measures them again.", ""]  # fmt: skip
    elif any(r.roof for r in found.rows):
        lines += [f"- No variant is above its ceiling (by more than {CEILING_NOISE:.0%}).", ""]
    return lines


def _breakdown_lines(found: Limits) -> list[str]:
    rows = found.profiled
    if not rows:
        return []
    table = []
    disagree = []
    for r in rows:
        b = r.breakdown
        assert b is not None
        total = b.attributed_ms
        cells = [share_text(b.kinds.get(k, 0.0) / total) if total else "—" for k in KINDS]
        table.append([r.cell.model, r.cell.recipe, fmt_shape(r.point, r.cell.family),
                      *cells, fmt_sig(b.attributed_ms), fmt_sig(b.unattributed_ms),
                      _ratio_text(r)])  # fmt: skip
        if r.profile_agrees is False:
            disagree.append(r)
    lines = [
        "**Where the time goes** (one forward pass at the reference shape, by operator "
        "kind: share of the time in operators):",
        "",
        *md_table(
            [
                "Model",
                "Recipe",
                "Shape",
                *KINDS.values(),
                "ms in operators",
                "ms not in an operator",
                "Profiled / fastest timed",
            ],
            table,
        ),  # fmt: skip
        "",
        "From each runtime's profiler (torch.profiler, ONNX Runtime's profiling), run apart "
        "from the timing; the fastest of the passes profiled is shown (on a busy machine an "
        "interrupted pass charges the wait to whichever operator ran). Quantize/dequantize "
        "inside a fused int8 operator (torch's dynamic Linear quantizes its input itself) "
        "counts as matmul. *Profiled / fastest timed*: the operators' time over the "
        f"fastest timed pass, which it should match within {PROFILE_TOLERANCE:.0%}.",
        "",
    ]
    if disagree:
        names = ", ".join(f"{md_escape(r.cell.model)} · {md_escape(r.cell.recipe)}"
                          for r in disagree)  # fmt: skip
        lines += [f"- ⚠️ The profile and the timing disagree by more than "
                  f"{PROFILE_TOLERANCE:.0%} for {names}: read the shares, not the "
                  "milliseconds (the machine was busy, or the profiler's overhead is large "
                  "for many small operators).", ""]  # fmt: skip
    return lines


def share_text(f: float) -> str:
    """A share as a whole percentage; under 1% but not nothing: ``<1%``."""
    return "<1%" if 0 < f < 0.005 else f"{f:.0%}"


def _ratio_text(r: LimitRow) -> str:
    ratio = r.profile_ratio
    return "—" if ratio is None else f"{ratio:.2f}"
