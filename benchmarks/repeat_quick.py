"""Are paired speedups reproducible? Runs the quick preset twice and compares them.

Every (model, recipe, shape) speedup of the second run is compared with the first;
the target is agreement within 10%.

    .venv/bin/python benchmarks/repeat_quick.py [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from quantbench.runner import quiet_libraries, run
from quantbench.runner.checks import build_spec


def speedups(result) -> dict[tuple, float]:
    return {
        (c.model, c.recipe, p.batch_size, p.input_size): p.speedup.median
        for c in result.results
        if c.status == "ok" and c.recipe != "fp32"
        for p in c.latency
        if p.speedup is not None
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="keep both runs here (default: a temp dir)")
    args = ap.parse_args()
    quiet_libraries()
    base = Path(args.out or tempfile.mkdtemp(prefix="qb-repeat-"))
    runs = [run(build_spec(preset="quick", overrides={"out": str(base / f"run{i}")}), progress=False)
            for i in (1, 2)]  # fmt: skip
    a, b = speedups(runs[0]), speedups(runs[1])
    print(f"{'model':12s} {'recipe':13s} {'shape':>10s} {'run 1':>7s} {'run 2':>7s} {'diff':>7s}")
    worst = 0.0
    for key in sorted(a.keys() & b.keys()):
        d = b[key] / a[key] - 1
        worst = max(worst, abs(d))
        m, r, bs, s = key
        print(f"{m:12s} {r:13s} {f'{bs}x{s}':>10s} {a[key]:6.2f}x {b[key]:6.2f}x {d:+7.1%}")
    verdict = "PASS" if worst <= 0.10 else "FAIL"
    print(f"\nlargest difference between the two runs: {worst:.1%}  [target <= 10%: {verdict}]")
    print(f"runs kept in {base}")


if __name__ == "__main__":
    main()
