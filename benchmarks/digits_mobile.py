"""MobileNetV2 and MNASNet trained on scikit-learn's digits, through per-channel static int8.

Issue 12's target: the smallest variant that keeps fidelity is <= 28% of fp32's size, on
trained weights. Trains torchvision's MobileNetV2 / MNASNet (``examples/digits_mobile_nets.py``,
10 classes) on the 1200 training digits (8x8 upsampled to 32 px, 3 channels; 10 epochs
of AdamW with a one-cycle schedule, seeded, then BatchNorm statistics re-estimated on the
training images; the state_dicts are cached under ``--out``), then runs
quantbench on each: fp32 and the per-channel static int8 recipes (FX ``static-int8``,
``ort-static-int8``, ``pt2e-static-int8``) scored on the 597 held-out digits, calibrated
on 128 training images, with the accuracy-aware fallback (``<recipe>+fallback``) where a
recipe misses the bar (top-1 >= 99% of fp32's). Prints per model the table (size, ratio
to fp32, accuracy, layers kept float, bar), the smallest variant that keeps fidelity
against the 28% target, and where the int8 artifacts' bytes go (int8 weights, scales and
zero points, biases, the container).

    .venv/bin/python benchmarks/digits_mobile.py [--out DIR] [--models a,b] [--epochs N]
    .venv/bin/python benchmarks/digits_mobile.py --from DIR     # re-print a finished run

Exit status 0 when, for each architecture, some trained width's smallest variant keeping
fidelity is <= 28% of fp32 (the default widths straddle the line: 1.0 and 1.4 for
MobileNetV2, 0.5 and 1.0 for MNASNet).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NETS = ROOT / "examples" / "digits_mobile_nets.py"
MODELS = ["mobilenet_v2_1_0", "mobilenet_v2_1_4", "mnasnet0_5", "mnasnet1_0"]
RECIPES = ["static-int8", "ort-static-int8", "pt2e-static-int8"]
SIZE = 32  # px: the 8x8 digits upsampled
MAX_SIZE_RATIO = 0.28


def _digits_example() -> Any:
    """examples/digits.py (writes the digits as an ImageFolder), imported by path."""
    path = ROOT / "examples" / "digits.py"
    spec = importlib.util.spec_from_file_location("quantbench_digits_example", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _nets() -> Any:
    """examples/digits_mobile_nets.py (its NAMES), imported by path."""
    spec = importlib.util.spec_from_file_location("quantbench_digits_mobile_nets", NETS)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write_digits(root: Path) -> Path:
    """scikit-learn's digits as PNGs under root/train (1200) and root/test (597)."""
    if not (root / "test").is_dir():
        _digits_example().write_digits(root)
    return root


def data_spec(path: Path, size: int = SIZE, **extra: Any) -> dict[str, Any]:
    """A digits split as quantbench reads it: ``size`` px, normalised to [-1, 1]."""
    return {"path": str(path), "resize": size, "crop": size, "mean": [0.5] * 3,
            "std": [0.5] * 3, **extra}  # fmt: skip


def model_entry(arch: str, weights: Path) -> dict[str, Any]:
    return {"name": arch, "source": "python", "path": str(NETS), "arch": arch,
            "weights": str(weights)}  # fmt: skip


def train(
    arch: str,
    root: Path,
    out_dir: Path,
    epochs: int = 10,
    seed: int = 0,
    size: int = SIZE,
    max_steps: int | None = None,
    lr: float = 3e-3,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Train ``arch`` on root/train (AdamW, one-cycle, batches of 64); save its state_dict.

    The file is named by its settings and reused when it exists (delete it to retrain)."""
    steps_tag = f"-{max_steps}steps" if max_steps else ""
    out = out_dir / f"{arch}-{size}px-{epochs}ep{steps_tag}-seed{seed}.pt"
    if out.is_file():
        return out
    import torch

    from quantbench.datasets import load_dataset, parse_dataset
    from quantbench.models import load_model

    torch.manual_seed(seed)
    model = load_model(f"py:{NETS}:{arch}", "random").module.train()
    # torchvision's MNASNet initialises its classifier kaiming-uniform (fan_out): over
    # 1280 features its first logits are ~10x too large, the loss starts near 10 and 8
    # epochs end near 75% top-1. MobileNetV2's own init (normal, std 0.01) for both.
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    torch.nn.init.normal_(head.weight, 0, 0.01)
    torch.nn.init.zeros_(head.bias)
    data = load_dataset(parse_dataset(data_spec(root / "train", size)))
    ((xs,), ys) = next(iter(data.batches(data.size)))  # decoded once, shuffled per epoch
    per_epoch = -(-data.size // 64)
    total = min(epochs * per_epoch, max_steps or epochs * per_epoch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total)
    g = torch.Generator().manual_seed(seed)
    step, t0 = 0, time.perf_counter()
    while step < total:
        losses = []
        perm = torch.randperm(data.size, generator=g)
        for i in range(0, data.size, 64):
            if step == total:
                break
            idx = perm[i : i + 64]
            loss = torch.nn.functional.cross_entropy(model(xs[idx]), ys[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss))
            step += 1
        if log:
            log(f"  {arch}: step {step}/{total}, mean loss {sum(losses) / len(losses):.3f}, "
                f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
    recalibrate_batchnorm(model, xs)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(out)  # a killed run leaves no half-written cache
    return out


def recalibrate_batchnorm(model: Any, xs: Any, batch_size: int = 64) -> None:
    """Set every BatchNorm's running statistics to the training data's (a cumulative
    average over one pass in train mode, no gradients).

    torchvision's MNASNet keeps running statistics with momentum 0.0003 (TensorFlow's
    0.9997 decay): after a few hundred steps they are still near their initial values
    and the model in eval mode predicts one class. The statistics, not the weights,
    are re-estimated; MobileNetV2 (momentum 0.1) gets the same treatment."""
    import torch

    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.train()
    with torch.no_grad():
        for i in range(0, len(xs), batch_size):
            model(xs[i : i + batch_size])
    for m, momentum in zip(bns, momenta, strict=True):
        m.momentum = momentum
    model.eval()


def run_spec(
    weights: dict[str, Path], root: Path, out: Path, recipes: list[str], **settings: Any
) -> Any:
    """The quantbench run: size and accuracy on root/test, fallback on, artifacts saved."""
    from quantbench.runner.checks import build_spec

    overrides = {
        "models": [model_entry(a, w) for a, w in weights.items()],
        "recipes": recipes, "measure": ["size"],
        "dataset": data_spec(root / "test"), "calibration": data_spec(root / "train"),
        "image_sizes": [SIZE], "vision_batch_sizes": [1], "ref_image_size": SIZE,
        "fallback": True, "save_artifacts": True, "out": str(out), **settings,
    }  # fmt: skip
    return build_spec(overrides=overrides)


def _kib(n: int | None) -> str:
    return f"{n / 1024:.0f}" if n is not None else "—"


def table(results: list, target: float = MAX_SIZE_RATIO) -> tuple[list[str], bool]:
    """Markdown: every cell, then per model the smallest variant keeping fidelity against
    ``target``; and whether each architecture has a width that meets it."""
    from quantbench.best import recommend

    lines = [
        "| model | recipe | size KiB | / fp32 | top-1 | % of fp32 | layers kept float | bar |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = {c.model: c for c in results if c.recipe == "fp32" and c.status == "ok"}
    for c in ordered(results):
        if c.status != "ok":
            lines.append(f"| {c.model} | {c.recipe} | {c.status}: {(c.error or '')[:80]} "
                         "| | | | | |")  # fmt: skip
            continue
        b = base.get(c.model)
        ratio = f"{c.size_bytes / b.size_bytes:.3f}" if b and c.size_bytes else "—"
        a = c.accuracy
        top1 = f"{a.value:.2%}" if a and a.value is not None else "—"
        rel = f"{a.relative:.1%}" if a and a.relative is not None else "—"
        kept = "—" if c.recipe == "fp32" else str(len(c.details.get("float_layers") or []))
        bar = "—" if c.recipe == "fp32" else ("pass" if a and a.passes else "fail")
        lines.append(f"| {c.model} | {c.recipe} | {_kib(c.size_bytes)} | {ratio} | {top1} "
                     f"| {rel} | {kept} | {bar} |")  # fmt: skip
    lines += ["", f"Smallest variant keeping fidelity, against <= {target:.0%} of fp32:"]
    met: dict[str, bool] = {}
    for model, rec in recommend(results).items():
        s = rec.smallest
        if s is None or s.size_ratio is None or s.recipe == "fp32":
            met[model] = False
            lines.append(f"- FAIL  {model}: no int8 variant keeps fidelity")
            continue
        met[model] = s.size_ratio <= target
        lines.append(f"- {'PASS' if met[model] else 'FAIL'}  {model}: {s.recipe}, "
                     f"{_kib(s.size_bytes)} KiB = {s.size_ratio:.2%} of fp32 "
                     f"(top-1 {s.accuracy_relative:.1%} of fp32)")  # fmt: skip
    by_arch: dict[str, list[str]] = {}
    for model in met:
        by_arch.setdefault(architecture(model), []).append(model)
    lines += ["", "Per architecture (some trained width meets it):"]
    for arch, models in by_arch.items():
        good = [m for m in models if met[m]]
        lines.append(f"- {'PASS' if good else 'FAIL'}  {arch}: "
                     f"{', '.join(good) if good else 'none of ' + ', '.join(models)}")  # fmt: skip
    return lines, bool(by_arch) and all(any(met[m] for m in ms) for ms in by_arch.values())


def ordered(results: list) -> list:
    """Cells per model, each variant after its base recipe (``+fallback`` under it)."""
    models = list(dict.fromkeys(c.model for c in results))
    bases = list(dict.fromkeys(c.recipe.split("+")[0] for c in results))
    return sorted(results, key=lambda c: (models.index(c.model),
                                          bases.index(c.recipe.split("+")[0]), c.recipe))  # fmt: skip


def architecture(model: str) -> str:
    """``mobilenet_v2_1_4`` -> ``mobilenet_v2``; ``mnasnet0_5`` -> ``mnasnet``."""
    return re.sub(r"_?\d+_\d+$", "", model)


def bytes_table(results: list, out_dir: Path) -> list[str]:
    """Where each saved int8 artifact's bytes go (KiB), from the files the run wrote."""
    from quantbench.measure.breakdown import breakdown

    lines = [
        "| model | recipe | total KiB | int8 weights | scales + zero points | biases "
        "| unquantized | container | not int8 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in ordered(results):
        path = (c.details.get("artifact") or {}).get("path")
        if c.status != "ok" or c.recipe == "fp32" or not path:
            continue
        b = breakdown(out_dir / path, trust_code=True)  # files this run wrote
        if b.total != c.size_bytes:  # a checkpoint's state_dict must weigh what run said
            lines.append(f"| {c.model} | {c.recipe} | {_kib(c.size_bytes)} | (file holds "
                         f"{_kib(b.total)} KiB: not comparable) | | | | | |")  # fmt: skip
            continue
        lines.append(
            f"| {c.model} | {c.recipe} | {_kib(b.total)} | {_kib(b.int8_weights)} "
            f"| {_kib(b.qparams)} | {_kib(b.biases)} | {_kib(b.unquantized)} "
            f"| {_kib(b.container)} | {b.not_int8() / b.total:.1%} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="quantbench-runs/digits-mobile", help="working directory")
    ap.add_argument("--models", default=",".join(MODELS),
                    help="comma-separated names from examples/digits_mobile_nets.py")  # fmt: skip
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--recipes", default=",".join(RECIPES))
    ap.add_argument("--max-accuracy-drop", type=float, default=0.01)
    ap.add_argument("--from", dest="source", help="re-print this finished run directory")
    args = ap.parse_args(argv)
    from quantbench.errors import QuantbenchError

    try:
        return _main(args)
    except QuantbenchError as e:  # bad input: one line, exit 2
        print(f"error: {e}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    from quantbench.errors import unknown_name
    from quantbench.results import read_json
    from quantbench.runner import quiet_libraries, run

    nets = _nets()
    for arch in args.models.split(","):
        if arch not in nets.NAMES:
            raise unknown_name("model", arch, nets.NAMES)
    quiet_libraries()
    if args.source:
        run_dir = Path(args.source)
    else:
        work = Path(args.out)
        root = write_digits(work / "data")
        weights = {}
        for arch in args.models.split(","):
            print(f"{arch}: {args.epochs} epochs of training (cached under {work})", flush=True)
            weights[arch] = train(arch, root, work / "weights", epochs=args.epochs,
                                  log=lambda m: print(m, flush=True))  # fmt: skip
        stamp = time.strftime("%Y%m%d-%H%M%S")
        spec = run_spec(weights, root, work / f"run-{stamp}", args.recipes.split(","),
                        max_accuracy_drop=args.max_accuracy_drop)  # fmt: skip
        run_dir = Path(run(spec).out_dir)
    meta, results = read_json(run_dir / "results.json")
    lines, ok = table(results)
    lines += ["", "Where the int8 artifacts' bytes go (KiB):", ""] + bytes_table(results, run_dir)
    text = "\n".join(lines)
    print(f"\nrun {meta.get('id')} ({run_dir})\n\n{text}")
    (run_dir / "digits_mobile.md").write_text(text + "\n", encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
