"""Where users deploy (issue 20): ONNX Runtime, ExecuTorch (XNNPACK) and OpenVINO side by side.

Runs the eight lab models at the reference shape (batch 1, 224 px / 128 tokens) with
torch fp32 and, for each runtime, its fp32 and its int8 recipes: ``ort-fp32``,
``ort-dynamic-int8``, ``ort-static-int8``, ``et-fp32``, ``et-int8``, ``ov-fp32``,
``ov-int8``. Then prints, per model and runtime, the int8 recipe's paired speedup against
torch fp32 *and* against its own runtime's fp32 (what quantization buys inside that
runtime), the runtime's fp32 against torch fp32 (what the runtime alone buys), the size of
the shipped file and the cosine to torch fp32's outputs. For ONNX Runtime the int8 recipe
is the faster of dynamic and static among those that keep fidelity (cosine >= 0.99 and
top-1 agreement >= 99%).

    .venv/bin/python benchmarks/deploy_runtimes.py [--models a,b] [--threads N] [--out DIR]
    .venv/bin/python benchmarks/deploy_runtimes.py --from DIR[,DIR]  # re-print finished runs

With more than one thread, torch's OpenMP workers spin after each eager call and take the
cores from the runtime timed next in the same round; the benchmark runs with
``OMP_WAIT_POLICY=PASSIVE`` (said in its output) unless ``--omp-active``. The table is
also written to ``<run>/deploy_runtimes.md``. Takes one to two hours on the 2-core
development machine (ExecuTorch lowers each BERT-sized model for minutes).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

RUNTIMES = {  # runtime: (its fp32 recipe, its int8 recipes: the best one is shown)
    "onnxruntime": ("ort-fp32", ("ort-dynamic-int8", "ort-static-int8")),
    "executorch": ("et-fp32", ("et-int8",)),
    "openvino": ("ov-fp32", ("ov-int8",)),
}
RECIPES = ["fp32"] + [r for fp32, int8 in RUNTIMES.values() for r in (fp32, *int8)]
REFERENCE = {
    "image_sizes": [224],
    "vision_batch_sizes": [1],
    "seq_lens": [128],
    "text_batch_sizes": [1],
    "fidelity_batch_size": 16,
}


def _x(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _pick(cands: dict[str, Any], names: tuple[str, ...]) -> Any:
    """The fastest of ``names`` that keeps fidelity, else the fastest that ran, else the
    first that has a candidate (its why_not says what went wrong)."""
    have = [cands[n] for n in names if n in cands]
    for pool in ([c for c in have if c.keeps_fidelity and c.speedup is not None],
                 [c for c in have if c.speedup is not None]):  # fmt: skip
        if pool:
            return max(pool, key=lambda c: c.speedup)
    return have[0] if have else None


def table(results: list[Any], spec: dict[str, Any] | None = None) -> list[str]:
    """The markdown table: one row per model and runtime."""
    from quantbench.best import recommend
    from quantbench.shapes import ref_sizes

    spec = spec or {}
    recs = recommend(results, ref_sizes=ref_sizes(spec) if spec else None,
                     min_cosine=spec.get("min_cosine", 0.99), min_top1=spec.get("min_top1", 0.99))  # fmt: skip
    lines = [
        "| Model | Runtime | int8 recipe | vs torch fp32 | vs own fp32 | own fp32 vs torch fp32 "
        "| Size MiB (of fp32) | Cosine |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, rec in recs.items():
        cands = {c.recipe: c for c in rec.candidates}
        base = cands.get("fp32")
        for runtime, (fp32_name, int8_names) in RUNTIMES.items():
            own, c = cands.get(fp32_name), _pick(cands, int8_names)
            own_x = _x(own.speedup) if own and own.speedup is not None else (
                own.why_not[:60] if own else "not run")  # fmt: skip
            if c is None or c.speedup is None:
                why = c.why_not[:90] if c else "not run"
                lines.append(f"| {model} | {runtime} | {c.recipe if c else '—'} | {why} | | "
                             f"{own_x} | | |")  # fmt: skip
                continue
            size = f"{c.size_bytes / 2**20:.2f} ({c.size_ratio:.2f})" if (
                c.size_bytes is not None and c.size_ratio is not None) else "—"  # fmt: skip
            cos = f"{c.cosine:.4f}" if c.cosine is not None else "—"
            if not c.keeps_fidelity:
                cos += f" ({c.why_not})"
            lines.append(
                f"| {model} | {runtime} | {c.recipe} | {_x(c.speedup)} | {_x(c.runtime_speedup)} "
                f"| {own_x} | {size} | {cos} |"
            )
        if base is not None and base.median_ms is not None:
            lines.append(f"| {model} | torch fp32 | — | {base.median_ms:.2f} ms | | | "
                         f"{base.size_bytes / 2**20:.2f} | |")  # fmt: skip
    return lines


def header(run: dict[str, Any], note: str = "") -> list[str]:
    host = run.get("host") or {}
    return [
        f"Machine: {host.get('cpu', '?')}, {host.get('cores', '?')} cores, ISA "
        f"{', '.join(host.get('isa_flags') or []) or '?'}; threads {run.get('threads')}; "
        f"run {run.get('id')}{'; ' + note if note else ''}",
        "",
        "Batch 1 at 224 px / 128 tokens; speedups are paired (interleaved rounds, median of "
        "per-round ratios); size is the shipped file's; cosine is to torch fp32's outputs.",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="run directory (default: quantbench-runs/<timestamp>)")
    ap.add_argument("--models", help="comma-separated subset of the eight models")
    ap.add_argument("--threads", type=int, help="threads for every runtime (default: torch's)")
    ap.add_argument("--min-runs", type=int, help="timed passes per point (default: the run's)")
    ap.add_argument("--omp-active", action="store_true",
                    help="leave OMP_WAIT_POLICY as it is (torch's workers spin)")  # fmt: skip
    ap.add_argument("--from", dest="source",
                    help="print these finished runs (comma-separated: one table) instead")  # fmt: skip
    args = ap.parse_args(argv)
    from quantbench.results import read_json

    paths: list[Path] = []
    if args.source:  # runs of a few models each (a long bench done in parts) make one table
        paths = [Path(d) / "results.json" for d in args.source.split(",")]
        note = ""
    else:
        if not args.omp_active:  # before torch is imported, here and in the workers
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        from quantbench.runner import quiet_libraries, run
        from quantbench.runner.checks import build_spec

        quiet_libraries()
        overrides = {**REFERENCE, "recipes": RECIPES, "out": args.out, "models": args.models,
                     "threads": args.threads, "min_runs": args.min_runs}  # fmt: skip
        spec = build_spec(overrides={k: v for k, v in overrides.items() if v is not None})
        paths = [Path(run(spec).out_dir) / "results.json"]
        note = f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}"
    runs = [read_json(p) for p in paths]
    # a model measured again in a later run (a part redone) is shown from that run
    last = {c.model: i for i, (_, cells) in enumerate(runs) for c in cells}
    meta = runs[0][0]
    results = [c for i, (_, cells) in enumerate(runs) for c in cells if last[c.model] == i]
    if len(runs) > 1:
        note = "runs " + ", ".join(str(m.get("id")) for m, _ in runs)
    text = "\n".join(header(meta, note) + table(results, meta.get("spec")))
    path = paths[0]
    print(text)
    (path.parent / "deploy_runtimes.md").write_text(text + "\n", encoding="utf-8")
    print(f"\n(written to {path.parent / 'deploy_runtimes.md'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
