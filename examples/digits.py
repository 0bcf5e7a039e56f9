"""Your own trained model, end to end, in under a minute: scikit-learn's digits.

Writes the 1797 bundled 8x8 digit images as an ImageFolder (16x16 PNGs; 1200 to train,
597 to test), trains ``examples/digits_cnn.py`` on the training split, saves its
state_dict, then runs quantbench on it: accuracy on the test split for each recipe,
static recipes calibrated on 128 training images, qat-int8 fine-tuned on them, and
accuracy-aware fallback where a recipe misses the bar.

    .venv/bin/python examples/digits.py [--out DIR] [--max-accuracy-drop 0.01]

The test suite uses the same functions (tests/conftest.py) to train its digits model.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MODEL = f"py:{HERE / 'digits_cnn.py'}:DigitsCNN"
SIZE = 16  # px: the 8x8 digits upscaled


def data_spec(path: Path, **extra: Any) -> dict[str, Any]:
    """The dataset entry for a digits split: 16 px, normalised to [-1, 1]."""
    return {"path": str(path), "resize": SIZE, "crop": SIZE, "mean": [0.5] * 3,
            "std": [0.5] * 3, **extra}  # fmt: skip


def write_digits(root: Path, n_train: int = 1200) -> Path:
    """scikit-learn's digits as ImageFolder PNGs under root/train and root/test."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    for rank, i in enumerate(order):
        d = root / ("train" if rank < n_train else "test") / str(y[i])
        d.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray((x[i].reshape(8, 8) * 255 / 16).astype("uint8"))
        img.resize((SIZE, SIZE), Image.BILINEAR).save(d / f"{i}.png")
    return root


def train(root: Path, out: Path, epochs: int = 8, seed: int = 0) -> Path:
    """Train DigitsCNN on root/train (Adam, shuffled batches of 64); save its state_dict."""
    import torch

    from quantbench.datasets import load_dataset, parse_dataset
    from quantbench.models import load_model

    torch.manual_seed(seed)
    model = load_model(MODEL, "random").module.train()
    data = load_dataset(parse_dataset(data_spec(root / "train")))
    ((xs,), ys) = next(iter(data.batches(data.size)))  # decoded once, shuffled per epoch
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(data.size, generator=g)
        for i in range(0, data.size, 64):
            loss = torch.nn.functional.cross_entropy(
                model(xs[perm[i : i + 64]]), ys[perm[i : i + 64]]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="quantbench-runs/digits", help="working directory")
    ap.add_argument("--max-accuracy-drop", type=float, default=0.01)
    args = ap.parse_args()
    from quantbench.runner import quiet_libraries, run
    from quantbench.runner.checks import build_spec

    quiet_libraries()
    work = Path(args.out)
    root = write_digits(work / "data")
    weights = train(root, work / "digits_cnn.pt")
    spec = build_spec(overrides={
        "models": [{"name": "digits-cnn", "source": "python", "path": str(HERE / "digits_cnn.py"),
                    "arch": "DigitsCNN", "weights": str(weights)}],
        "recipes": ["dynamic-int8", "static-int8", "qat-int8", "ort-static-int8",
                    "pt2e-static-int8"],
        "dataset": data_spec(root / "test"), "calibration": data_spec(root / "train"),
        "train_dataset": data_spec(root / "train"), "qat_steps": 100,
        "image_sizes": [SIZE], "vision_batch_sizes": [1, 32], "ref_image_size": SIZE,
        "max_accuracy_drop": args.max_accuracy_drop, "fallback": True, "out": str(work / "run"),
    })  # fmt: skip
    result = run(spec)
    print("\n| recipe | top-1 | % of fp32 | macro-F1 | bar | size KiB | speedup (1 x 16 px) |")
    print("|---|---|---|---|---|---|---|")
    for c in result.results:
        a = c.accuracy
        pt = next((p for p in c.latency if (p.batch_size, p.input_size) == (1, SIZE)), None)
        sp = f"{pt.speedup.median:.2f}x" if pt and pt.speedup else ("1.00x" if pt else "—")
        if c.status != "ok" or a is None:
            print(f"| {c.recipe} | {c.status}: {c.error} | | | | | |")
            continue
        bar = "—" if c.recipe == "fp32" else ("pass" if a.passes else "fail")
        print(f"| {c.recipe} | {a.value:.2%} | {a.relative:.1%} | {a.macro_f1:.4f} | "
              f"{bar} | {c.size_bytes / 1024:.0f} | {sp} |")  # fmt: skip
    print(f"\nreport: {result.report}")


if __name__ == "__main__":
    main()
