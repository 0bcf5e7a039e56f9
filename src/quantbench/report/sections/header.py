"""The report's opening: run id, dates, cells, and what the models' weights were."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from quantbench.report.context import ReportContext
from quantbench.report.data import is_random_weights, model_order, weights_by_model
from quantbench.report.fmt import md_code, md_escape
from quantbench.results import CellResult


def header(ctx: ReportContext) -> list[str]:
    """Title, run facts, and the weights statement (a warning for random weights)."""
    run, results = ctx.run, ctx.results
    run_id = run.get("id") or "unnamed run"
    started, finished = run.get("started_at"), run.get("finished_at")
    date = str(started or finished or "not recorded")
    if started and finished:
        date = f"{started} → {finished}"
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    status_text = ", ".join(f"{n} {md_escape(s)}" for s, n in statuses.items()) or "none"
    rendered = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# quantbench report: {md_escape(run_id)}",
        "",
        f"- **Run id:** {md_code(run_id)}",
        f"- **Date:** {md_escape(date)} (report rendered {rendered})",
    ]
    if run.get("quantbench_version"):
        lines.append(f"- **quantbench:** {md_escape(run['quantbench_version'])}")
    device = run.get("device") or (run.get("spec") or {}).get("device")
    if device:
        lines.append(f"- **Device:** {md_code(device)}")
    lines += [
        f"- **Cells:** {len(results)} ({status_text}); models: "
        + (", ".join(map(md_escape, model_order(results))) or "none"),
        "",
    ]
    return lines + caveat_lines(run, results) + weights_statement(run, results)


def caveat_lines(run: dict[str, Any], results: list[CellResult]) -> list[str]:
    """The run's caveats (``quantbench.caveats``: a busy machine, ...) as warnings at the
    top, before any number is read."""
    from quantbench.caveats import run_caveats

    found = run_caveats(run, results)
    return [line for c in found for line in (f"> ⚠️ **Caveat:** {md_escape(c)}", ">")][:-1] + (
        [""] if found else []
    )


def weights_statement(run: dict[str, Any], results: list[CellResult]) -> list[str]:
    """Per model, where its weights came from; random weights make fidelity meaningless."""
    weights = weights_by_model(run, results)
    models = model_order(results)
    random_models = [m for m in models if is_random_weights(weights.get(m))]
    unknown = [m for m in models if m not in weights]
    lines: list[str] = []
    if random_models:
        lines += [
            f"> ⚠️ **Weights: random for {', '.join(map(md_escape, random_models))}.** For "
            "these models the "
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
        lines.append(f"> - {md_code(m)}: {md_escape(desc)}{flag}")
    if unknown:
        lines += [
            ">",
            f"> Weights not recorded for {', '.join(map(md_escape, unknown))}: treat their "
            "accuracy and "
            "fidelity numbers with care.",
        ]
    return lines + [""]
