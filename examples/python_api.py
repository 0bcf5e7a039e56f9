"""quantbench from Python: your own module, your own data, your own metric.

A small CNN is trained here in a few seconds on scikit-learn's digits (8x8 images,
upsampled to 16x16 RGB), then handed to ``quantbench.run`` as an object, with the test
images as a list of batches, the training images as calibration data, and a plain
function as the metric the accuracy bar is judged on. Run it::

    .venv/bin/python examples/python_api.py

The tests run this file as it is (tests/test_api.py).
"""

from __future__ import annotations

import sys
import tempfile

import torch

import quantbench


def digits_batches(batch_size: int = 64) -> tuple[list, list]:
    """(train, test) lists of (images, labels) batches: 1200 / 597 digits."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = torch.nn.functional.interpolate(x, size=16, mode="bilinear").repeat(1, 3, 1, 1)
    y = torch.tensor(d.target)
    split = 1200
    train = [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, split, batch_size)]
    test = [
        (x[i : i + batch_size], y[i : i + batch_size]) for i in range(split, len(y), batch_size)
    ]
    return train, test


def train_cnn(train: list, epochs: int = 6) -> torch.nn.Module:
    sys.path.insert(0, "examples")
    from digits_cnn import DigitsCNN

    torch.manual_seed(0)
    net = DigitsCNN()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(epochs):
        for x, y in train:
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def main() -> None:
    train, test = digits_batches()
    net = train_cnn(train)

    def top1(model: torch.nn.Module) -> float:
        """Your metric: any function of the (quantized) model that returns a number."""
        with torch.inference_mode():
            hits = sum(int((model(x).argmax(1) == y).sum()) for x, y in test)
        return hits / sum(len(y) for _, y in test)

    out = tempfile.mkdtemp(prefix="quantbench-api-")
    result = quantbench.run(
        models=[quantbench.model(net, name="digits-cnn")],
        recipes=["dynamic-int8", "static-int8"],
        calibration=[x for x, _ in train],  # inputs only: calibration needs no labels
        eval_fn=top1,
        image_sizes=[16], vision_batch_sizes=[1], min_time_s=0.1,
        out=out, store=f"{out}/quantbench.db",
    )  # fmt: skip
    for c in result.results:
        acc = c.accuracy
        bar = "reference" if c.recipe == "fp32" else f"bar {'met' if acc.passes else 'missed'}"
        print(f"{c.recipe:14s} {c.status:5s} {c.size_bytes / 1024:7.1f} KiB  "
              f"top1 {acc.value:.3f} ({acc.relative:.1%} of fp32, {bar})")  # fmt: skip
    print(f"report: {result.report}")


if __name__ == "__main__":
    main()
