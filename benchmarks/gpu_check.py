"""The one script to run when a GPU machine is lent: the CUDA tests, then BERT and
ResNet18 in fp32 vs fp16 vs bf16 vs torchao int8 (dynamic and weight-only) on the GPU at
two batch sizes, printed as a markdown table for the README.

    .venv/bin/python benchmarks/gpu_check.py                 # on the GPU machine
    .venv/bin/python benchmarks/gpu_check.py --device cpu --tiny   # smoke test, no GPU

Stages, each bounded by what is left of ``--budget-s`` (default 330 s, so the whole
script ends within about 6 minutes on an H200 with the venv in place):

1. ``pytest -q -k cuda tests/``: every test whose name holds "cuda" (they skip without
   a GPU, except the ones that check the no-GPU path, which skip with one);
2. eager: ``quantbench run --device cuda`` on bert (seq 128) and resnet18 (224 px), batch
   1 and 8, random weights; torchao int8 run eagerly (compile off) to keep it short;
3. compiled, if at least ``--min-stage-s`` is left: ``fp32+compile``, ``fp16+compile`` and
   torchao int8 dynamic under its default ``torch.compile``; each model's worker gets an
   equal share of the budget left, and one that runs out becomes ``timeout`` cells (the
   table says so).

Latency on cuda is timed with CUDA events after a synchronize; "GPU peak" is
``torch.cuda.max_memory_allocated`` during one forward pass. Exit status: 0 when the tests
passed and the eager stage measured fp32 for every model, else 1.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MODELS = ["bert", "resnet18"]
EAGER = ["fp32", "fp16", "bf16", "torchao-int8-dynamic", "torchao-int8-weight-only"]
# compiled: fp32+compile and fp16+compile (the --compile variants) and torchao int8 dynamic
# under its default torch.compile: three compiles per model.
COMPILED = ["fp32", "fp16", "torchao-int8-dynamic"]
NO_COMPILE = {"torchao-int8-dynamic": {"compile": False},
              "torchao-int8-weight-only": {"compile": False}}  # fmt: skip
ROOT = Path(__file__).resolve().parent.parent


def shapes(tiny: bool) -> dict[str, Any]:
    """The sweep settings: the reference shape and two batch sizes (tiny: a smoke test)."""
    if tiny:
        return {"image_sizes": [32], "seq_lens": [16], "batch_sizes": [1, 2], "min_runs": 3,
                "min_time_s": 0.0, "max_time_s": 2.0, "warmup": 1, "calib_batches": 1,
                "calib_batch_size": 2, "fidelity_batch_size": 2}  # fmt: skip
    return {"image_sizes": [224], "seq_lens": [128], "batch_sizes": [1, 8], "min_runs": 20,
            "min_time_s": 0.2, "max_time_s": 5.0, "warmup": 3, "calib_batches": 2,
            "calib_batch_size": 4, "fidelity_batch_size": 8}  # fmt: skip


def run_tests(timeout_s: float) -> bool:
    """``pytest -q -k cuda`` on the test suite; True when it passed."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-k", "cuda", "-p", "no:cacheprovider",
           str(ROOT / "tests")]  # fmt: skip
    print("$ " + " ".join(cmd), flush=True)
    try:
        return subprocess.run(cmd, cwd=ROOT, timeout=timeout_s).returncode == 0
    except subprocess.TimeoutExpired:
        print(f"pytest did not finish within {timeout_s:.0f} s", flush=True)
        return False


def measure(
    stage: str, models: list[str], device: str, tiny: bool, out: Path, timeout_s: float
) -> Any:
    """One quantbench run of the stage's recipes on ``models``."""
    from quantbench.runner import run
    from quantbench.runner.checks import build_spec

    compiled = stage == "compiled"
    overrides = {
        **shapes(tiny), "models": models, "device": device, "weights": "random",
        "recipes": COMPILED if compiled else EAGER, "compile": compiled,
        "recipe_options": {} if compiled else NO_COMPILE, "out": str(out / stage),
        "store": str(out / "quantbench.db"), "timeout_s": max(timeout_s, 30.0),
    }  # fmt: skip
    print(f"\n== {stage}: {', '.join(overrides['recipes'])} on {device}"
          f"{' (+compile variants)' if compiled else ''}", flush=True)  # fmt: skip
    return run(build_spec(overrides=overrides), progress=False, verbosity=-1)


def _mib(n: Any) -> str:
    return f"{n / 2**20:.1f}" if isinstance(n, (int, float)) else "—"


def table(results: list[Any]) -> list[str]:
    """Markdown rows: model x variant x batch: median ms, paired speedup vs fp32 [95% CI],
    size (ratio to fp32), cosine to fp32, GPU peak; or the cell's status and reason."""
    lines = [
        "| model | variant | batch | median ms | speedup vs fp32 [95% CI] | size MiB (ratio) "
        "| cosine to fp32 | GPU peak MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    fp32_size = {c.model: c.size_bytes for c in results if c.recipe == "fp32" and c.size_bytes}
    for c in results:
        if c.status != "ok" or not c.latency:
            why = (c.error or "no latency point").replace("|", "\\|")
            lines.append(f"| {c.model} | {c.recipe} | — | {c.status}: {why} | | | | |")
            continue
        size = _mib(c.size_bytes)
        if c.size_bytes and fp32_size.get(c.model):
            size += f" ({c.size_bytes / fp32_size[c.model]:.2f})"
        cos = c.fidelity.cosine if c.fidelity is not None else None
        cos_text = f"{cos:.4f}" if cos is not None else "—"
        peak = _mib((c.memory or {}).get("gpu_peak_bytes"))
        for p in sorted(c.latency, key=lambda p: p.batch_size):
            sp = p.speedup
            sp_text = f"{sp.median:.2f}x [{sp.ci_low:.2f}, {sp.ci_high:.2f}]" if sp else "—"
            lines.append(
                f"| {c.model} | {c.recipe} | {p.batch_size} | {p.stats.median:.3f} | {sp_text} "
                f"| {size} | {cos_text} | {peak} |"
            )
    return lines


def machine_line(result: Any) -> str:
    from quantbench.device import gpu_text

    meta = result.run
    v = meta.versions or {}
    return (
        f"Device {meta.device}; GPU: {gpu_text((meta.host or {}).get('gpu'))}; CPU: "
        f"{(meta.host or {}).get('cpu')}; torch {v.get('torch', '?')}, torchao "
        f"{v.get('torchao', '?')}, onnxruntime {v.get('onnxruntime', '?')}; run {meta.id}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                    help="cuda (default); cpu to smoke-test the script on a machine without "
                    "a GPU")  # fmt: skip
    ap.add_argument("--tiny", action="store_true", help="tiny shapes and few runs (smoke test)")
    ap.add_argument("--models", default=",".join(MODELS), help="default: bert,resnet18")
    ap.add_argument("--skip-tests", action="store_true", help="skip pytest -k cuda")
    ap.add_argument("--budget-s", type=float, default=330.0, help="whole-script time budget")
    ap.add_argument("--min-stage-s", type=float, default=90.0,
                    help="start the compiled stage only with this much budget left")  # fmt: skip
    ap.add_argument("--out", default=None, help="output directory (default: a new one under "
                    "quantbench-runs/)")  # fmt: skip
    args = ap.parse_args()
    start = time.monotonic()
    deadline = start + args.budget_s
    out = Path(args.out or f"quantbench-runs/gpu-check-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)

    tests_ok = True
    if not args.skip_tests:
        tests_ok = run_tests(timeout_s=min(180.0, args.budget_s / 2))
        print(f"CUDA tests: {'passed' if tests_ok else 'FAILED'} "
              f"({time.monotonic() - start:.0f} s)", flush=True)  # fmt: skip

    from quantbench.device import gpu_info, gpu_text
    from quantbench.errors import QuantbenchError
    from quantbench.runner import quiet_libraries

    quiet_libraries()
    print(f"GPU seen by torch: {gpu_text(gpu_info())}", flush=True)
    done: dict[str, Any] = {}
    for stage in ("eager", "compiled"):
        left = deadline - time.monotonic()
        if stage == "compiled" and left < args.min_stage_s:
            print(f"\n== compiled: skipped ({left:.0f} s of the budget left)", flush=True)
            break
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        try:
            done[stage] = measure(stage, models, args.device, args.tiny, out, left / len(models))
        except QuantbenchError as e:  # e.g. --device cuda where torch sees no GPU
            print(f"gpu_check: error: {e}", file=sys.stderr)
            return 2
        print(f"   {stage} done at {time.monotonic() - start:.0f} s", flush=True)

    print("\n" + machine_line(done["eager"]))
    for stage, result in done.items():
        what = (
            "torchao under torch.compile, +compile variants"
            if stage == "compiled"
            else ("eager; torchao without torch.compile")
        )
        print(f"\n### {stage} ({what})\n")
        print("\n".join(table(result.results)))
    fp32_ok = all(c.status == "ok" for c in done["eager"].results if c.recipe == "fp32")
    print(f"\ntotal {time.monotonic() - start:.0f} s; results under {out}")
    return 0 if tests_ok and fp32_ok else 1


if __name__ == "__main__":
    sys.exit(main())
