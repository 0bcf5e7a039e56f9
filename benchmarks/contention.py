"""Do speedups hold when the machine is busy? The quick preset quiet, then under a load.

Runs the quick preset (or ``--models``) twice: first as the machine is (no load of ours),
then with ``--load`` busy-loop processes competing (default: one per core), started here
and killed at the end, on failure and Ctrl-C too. Prints, per model, recipe and shape,
both paired speedups, their ratio and each point's contention verdict. Goal: every
speedup under load within ``--tolerance`` (15%) of the quiet one, or marked contended.

    .venv/bin/python benchmarks/contention.py [--models resnet18] [--min-runs 10]
        [--load N] [--wait-policy passive|active|runtime] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from busyload import competing_load, cores  # noqa: E402

TOLERANCE = 0.15

Key = tuple[str, str, int, int]  # model, recipe, batch, size


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr, exit 2 (no usage block)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"contention: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number > 0, got '{text}'") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a whole number > 0, got {n}")
    return n


def fraction(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction like 0.15, got '{text}'") from None
    if not 0 < x < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {x:g}")
    return x


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = OneLineParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", help="models to measure (default: the quick preset's)")
    ap.add_argument("--recipes", help="recipes (default: the quick preset's)")
    ap.add_argument("--min-runs", type=positive, help="timed passes per point (default: preset's)")
    ap.add_argument("--load", type=positive, default=None,
                    help=f"busy-loop processes of the loaded run (default: one per core, {cores()})")  # fmt: skip
    ap.add_argument("--wait-policy", help="passed on to both runs (default: the setting's)")
    ap.add_argument("--tolerance", type=fraction, default=TOLERANCE,
                    help="largest drift of a speedup not marked contended (default 0.15)")  # fmt: skip
    ap.add_argument("--out", help="keep both runs here (default: a temp dir)")
    return ap.parse_args(argv)


def overrides(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """The settings of both runs over the quick preset."""
    o: dict[str, Any] = {"out": str(out), "store": str(out.parent / "store.db")}
    for key in ("models", "recipes", "min_runs", "wait_policy"):
        value = getattr(args, key)
        if value is not None:
            o[key] = value
    return o


def speedups(result: Any) -> dict[Key, tuple[float, bool]]:
    """(speedup, contended) per (model, recipe, batch, size) of a run."""
    from quantbench.measure.contention import is_contended

    return {
        (c.model, c.recipe, p.batch_size, p.input_size): (p.speedup.median, is_contended(p))
        for c in result.results
        if c.status == "ok" and c.recipe != "fp32"
        for p in c.latency
        if p.speedup is not None
    }


def compare(quiet: dict, loaded: dict, tolerance: float) -> tuple[list[str], bool]:
    """The table's lines and whether the goal holds: every loaded speedup within
    ``tolerance`` of the quiet one, or either point marked contended."""
    lines = [f"{'model':12s} {'recipe':16s} {'shape':>7s} {'quiet':>13s} {'loaded':>13s} "
             f"{'ratio':>6s}  verdict"]  # fmt: skip
    ok = True
    for key in sorted(quiet.keys() & loaded.keys()):
        (q, qc), (ld, lc) = quiet[key], loaded[key]
        ratio = ld / q if q > 0 else float("nan")
        within = abs(ratio - 1) <= tolerance
        marked = qc or lc
        verdict = "ok" if within else ("drifts, marked contended" if marked else "DRIFTS")
        ok &= within or marked
        m, r, b, s = key
        mark = lambda c: "*" if c else " "  # noqa: E731
        lines.append(f"{m:12s} {r:16s} {f'{b}x{s}':>7s} {q:11.2f}x{mark(qc)} {ld:11.2f}x{mark(lc)} "
                     f"{ratio:6.2f}  {verdict}")  # fmt: skip
    missing = sorted(quiet.keys() ^ loaded.keys())
    if missing:
        lines.append(f"only in one run (not compared): {len(missing)} points")
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from quantbench.errors import QuantbenchError
    from quantbench.runner import quiet_libraries, run
    from quantbench.runner.checks import build_spec

    quiet_libraries()
    base = Path(args.out or tempfile.mkdtemp(prefix="qb-contention-"))
    try:
        specs = [build_spec(preset="quick", overrides=overrides(args, base / name))
                 for name in ("quiet", "loaded")]  # fmt: skip
    except QuantbenchError as e:
        print(f"contention: error: {e}", file=sys.stderr)
        return 2
    base.mkdir(parents=True, exist_ok=True)
    n = args.load or cores()
    print(f"quiet run (load average {os.getloadavg()[0]:.1f}; no load of ours)", flush=True)
    quiet = speedups(run(specs[0], progress=False, verbosity=-1))
    print(f"loaded run: {n} busy-loop processes on {cores()} cores", flush=True)
    with competing_load(n):
        loaded = speedups(run(specs[1], progress=False, verbosity=-1))
    lines, ok = compare(quiet, loaded, args.tolerance)
    print("\n".join(lines))
    print(f"\n* = contended (quantbench.measure.contention). Goal: every loaded speedup within "
          f"{args.tolerance:.0%} of the quiet one, or marked contended: {'PASS' if ok else 'FAIL'}")  # fmt: skip
    print(f"runs kept in {base}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
