"""Issue 12's int4 target, measured: BERT and DistilBERT artifacts <= 15% of fp32's
size, and on the MiniLM sentence set mean cosine to fp32 >= 0.98 and Spearman >= 0.97.

Two runs with fp32 and every int4 recipe: ``--measure size`` of ``bert`` and
``distilbert`` (the registry's architectures, random weights: their size is exact, their
outputs meaningless), and ``sentence_fidelity.py``'s all-MiniLM-L6-v2 run (pretrained,
scored on 48 held-out sentences, timed at batch 1 x 128 tokens). Prints one row per
recipe and whether it meets the target.

    .venv/bin/python benchmarks/int4_target.py [--out DIR] [--from DIR]

``--from DIR`` re-evaluates the runs in DIR/size and DIR/sentences. Exit status 0 when
some int4 recipe meets the whole target. About 15 minutes on the 2-core machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sentence_fidelity import sentence_spec  # noqa: E402

from quantbench.results import CellResult, read_json  # noqa: E402
from quantbench.shapes import reference_point  # noqa: E402

INT4_RECIPES = ["ort-int4-weight-only", "torchao-intx-weight-only", "torchao-int8-dynamic-intx"]
SIZE_MODELS = ["bert", "distilbert"]
MAX_SIZE_RATIO = 0.15
MIN_COSINE = 0.98
MIN_SPEARMAN = 0.97


def evaluate(sizes: list[CellResult], sentences: list[CellResult]) -> tuple[list[str], bool]:
    """Lines to print (a markdown table and a verdict per recipe); whether any meets it."""
    by = {(c.model, c.recipe): c for c in sizes}
    sent = {c.recipe: c for c in sentences}
    head = " | ".join(f"{m} size / fp32" for m in SIZE_MODELS)
    lines = [
        f"| recipe | {head} | MiniLM mean cosine | Spearman | speedup 1 x 128 (noisy here) "
        "| target |",
        "|---|" + "---|" * len(SIZE_MODELS) + "---|---|---|---|",
    ]
    met_any = False
    for r in INT4_RECIPES:
        cells, misses = [], []
        for m in SIZE_MODELS:
            c, base = by.get((m, r)), by.get((m, "fp32"))
            if c is None or c.status != "ok" or not base or not base.size_bytes:
                cells.append(f"{c.status}: {(c.error or '')[:50]}" if c else "not run")
                misses.append(f"{m} size")
                continue
            ratio = c.size_bytes / base.size_bytes
            cells.append(f"{ratio:.3f} ({c.size_bytes / 2**20:.1f} MiB)")
            if ratio > MAX_SIZE_RATIO:
                misses.append(f"{m} size {ratio:.3f}")
        c = sent.get(r)
        acc = c.accuracy if c is not None and c.status == "ok" else None
        cos = acc.mean_cosine if acc else None
        rho = acc.spearman if acc else None
        if cos is None or cos < MIN_COSINE:
            misses.append("cosine")
        if rho is None or rho < MIN_SPEARMAN:
            misses.append("Spearman")
        pt = reference_point(c, {"text": 128}) if acc else None
        sp = pt.speedup if pt and pt.speedup else None
        speed = f"{sp.median:.2f}x [{sp.ci_low:.2f}, {sp.ci_high:.2f}]" if sp else ""
        verdict = "met" if not misses else "missed: " + ", ".join(misses)
        met_any = met_any or not misses
        num = lambda v: f"{v:.4f}" if v is not None else "—"  # noqa: E731
        lines.append(f"| {r} | {' | '.join(cells)} | {num(cos)} | {num(rho)} | {speed} "
                     f"| {verdict} |")  # fmt: skip
    lines += ["", f"Target (size <= {MAX_SIZE_RATIO:.0%} on {', '.join(SIZE_MODELS)}, cosine "
              f">= {MIN_COSINE}, Spearman >= {MIN_SPEARMAN}): "
              f"{'met' if met_any else 'missed by every int4 recipe'}"]  # fmt: skip
    return lines, met_any


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="quantbench-runs/int4-target", help="directory of both runs")
    ap.add_argument("--from", dest="source", help="evaluate the runs in this directory")
    args = ap.parse_args(argv)
    root = Path(args.source or args.out)
    if not args.source:
        from quantbench.runner import quiet_libraries, run
        from quantbench.runner.checks import build_spec

        quiet_libraries()
        run(build_spec(overrides={
            "models": SIZE_MODELS, "recipes": ["fp32", *INT4_RECIPES], "measure": ["size"],
            "out": str(root / "size"),
        }))  # fmt: skip
        run(sentence_spec(INT4_RECIPES, str(root / "sentences")))
    results: dict[str, Any] = {
        k: read_json(root / k / "results.json")[1] for k in ("size", "sentences")
    }
    lines, ok = evaluate(results["size"], results["sentences"])
    text = "\n".join(lines)
    print(text)
    (root / "int4-target.md").write_text(text + "\n", encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
