"""Issue 4's targets, measured: every model x every recipe at the reference shape.

Runs ``quantbench run --preset targets`` (the eight lab models, every recipe, batch 1 at
224 px / 128 tokens, paired rounds against fp32 eager), then prints per model the best
int8 speedup, the fastest and the smallest variant that keep fidelity, and a verdict for
each target:

- BERT at seq 128: best int8 recipe >= 3.0x faster than fp32 eager;
- ResNet18 at 224 px: >= 3.5x;
- every model: >= 2x with some int8 recipe;
- every model: the smallest variant that keeps fidelity is <= 28% of fp32's size.

    .venv/bin/python benchmarks/targets.py [--out DIR] [--models a,b] [--from DIR]

``--from DIR`` re-evaluates a finished run without measuring again. Exit status: 0 when
every target is met, 1 otherwise (the tables are printed either way). Takes about half
an hour on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from quantbench.best import recommend
from quantbench.recipes import get_recipe
from quantbench.results import CellResult, read_json
from quantbench.shapes import ref_sizes
from quantbench.variants import base_of

SPEEDUP_TARGETS = {"bert": 3.0, "resnet18": 3.5}
EVERY_MODEL_SPEEDUP = 2.0
MAX_SIZE_RATIO = 0.28


def is_int8(recipe: str) -> bool:
    """int8 recipes (and their +compile, +fallback variants); ort-fp32, bf16, fp16 are not."""
    return "int8" in get_recipe(base_of(recipe)).precision.lower()


def evaluate(run: dict[str, Any], results: list[CellResult]) -> tuple[list[str], bool]:
    """Lines to print (a markdown table and the verdicts), and whether all targets hold."""
    spec = run.get("spec") or {}
    recs = recommend(
        results, ref_sizes=ref_sizes(spec), min_cosine=spec.get("min_cosine", 0.99),
        min_top1=spec.get("min_top1", 0.99),
    )  # fmt: skip
    host = run.get("host") or {}
    lines = [
        f"Machine: {host.get('cpu', '?')}, {host.get('cores', '?')} cores, "
        f"ISA {', '.join(host.get('isa_flags') or []) or '?'}; threads {run.get('threads')}; "
        f"torch {(run.get('versions') or {}).get('torch', '?')}; run {run.get('id')}",
        "",
        "| Model | Best int8 (speedup, keeps fidelity?) | Fastest keeping fidelity | "
        "Smallest keeping fidelity (size / fp32) |",
        "|---|---|---|---|",
    ]
    best_int8: dict[str, Any] = {}
    smallest: dict[str, Any] = {}
    for model, r in recs.items():
        int8 = [c for c in r.candidates if is_int8(c.recipe) and c.speedup is not None]
        b = max(int8, key=lambda c: c.speedup, default=None)
        best_int8[model], smallest[model] = b, r.smallest
        keep = "yes" if b and b.keeps_fidelity else f"no: {b.why_not}" if b else ""
        b_text = f"{b.recipe} {b.speedup:.2f}x ({keep})" if b else "none ran"
        f = r.fastest
        f_text = f"{f.recipe} {f.speedup:.2f}x" if f and f.speedup is not None else "none"
        s = r.smallest
        s_text = f"{s.recipe} {s.size_ratio:.2f}" if s and s.size_ratio is not None else "none"
        lines.append(f"| {model} | {b_text} | {f_text} | {s_text} |")

    verdicts: list[tuple[str, bool, str]] = []
    for model, target in SPEEDUP_TARGETS.items():
        b = best_int8.get(model)
        got = f"{b.speedup:.2f}x ({b.recipe})" if b else "not measured"
        verdicts.append((f"{model}: best int8 >= {target}x", bool(b and b.speedup >= target), got))
    slow = [f"{m} {b.speedup:.2f}x" if b else f"{m} none" for m, b in best_int8.items()
            if not b or b.speedup < EVERY_MODEL_SPEEDUP]  # fmt: skip
    verdicts.append((
        f"every model >= {EVERY_MODEL_SPEEDUP}x with some int8 recipe", not slow,
        "misses: " + ", ".join(slow) if slow else f"all {len(best_int8)} models",
    ))  # fmt: skip
    big = []
    for m, s in smallest.items():
        if s is None or s.size_ratio is None or s.size_ratio > MAX_SIZE_RATIO:
            small_int8 = [c for c in recs[m].candidates if c.size_ratio is not None]
            tiny = min(small_int8, key=lambda c: c.size_ratio, default=None)
            why = f" ({tiny.recipe} {tiny.size_ratio:.2f}: {tiny.why_not})" if tiny else ""
            big.append(f"{m} {s.size_ratio:.2f}{why}" if s else f"{m} none{why}")
    verdicts.append((
        f"every model: smallest keeping fidelity <= {MAX_SIZE_RATIO:.0%} of fp32", not big,
        "misses: " + "; ".join(big) if big else f"all {len(smallest)} models",
    ))  # fmt: skip
    missing = sorted(set(SPEEDUP_TARGETS) - set(recs))
    lines += ["", "Targets:"]
    for name, ok, got in verdicts:
        lines.append(f"- {'PASS' if ok else 'FAIL'}  {name}: {got}")
    if missing:
        lines.append(f"- (not in this run: {', '.join(missing)})")
    return lines, all(ok for _, ok, _ in verdicts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="run directory (default: quantbench-runs/<timestamp>)")
    ap.add_argument("--models", help="comma-separated subset of the eight models")
    ap.add_argument("--from", dest="source", help="evaluate this finished run instead")
    args = ap.parse_args(argv)
    if args.source:
        path = Path(args.source) / "results.json"
    else:
        from quantbench.runner import quiet_libraries, run
        from quantbench.runner.checks import build_spec

        quiet_libraries()
        spec = build_spec(preset="targets", overrides={"out": args.out, "models": args.models})
        path = Path(run(spec).out_dir) / "results.json"
    meta, results = read_json(path)
    lines, ok = evaluate(meta, results)
    text = "\n".join(lines)
    print(text)
    (path.parent / "targets.md").write_text(text + "\n", encoding="utf-8")
    print(f"\n(written to {path.parent / 'targets.md'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
