"""Which wait policy gives the truest speedups, quiet and busy? A side-by-side probe.

ResNet18 at 1x224, fp32 vs static-int8, timed interleaved by ``quantbench run`` in a
fresh worker per run, for each wait policy and each condition: ``quiet`` (no load of our
own; whatever else the machine runs stays) and ``loaded`` (one busy-loop process per core
started here). Conditions and policies are interleaved, repeated ``--repeats`` times.

    .venv/bin/python benchmarks/wait_policy.py [--policies passive,active,runtime]
        [--repeats 2] [--min-runs 20] [--env NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from busyload import competing_load, cores  # noqa: E402


def one_run(policy: str, out: Path, min_runs: int, env: dict[str, str]) -> dict:
    """fp32 median (ms) and static-int8's paired speedup [CI] of one run."""
    out.mkdir(parents=True)
    cmd = [sys.executable, "-m", "quantbench", "run", "-q", "--models", "resnet18",
           "--recipes", "static-int8", "--measure", "latency", "--image-sizes", "224",
           "--vision-batch-sizes", "1", "--min-runs", str(min_runs), "--min-time-s", "0",
           "--calib-batches", "2", "--calib-batch-size", "2", "--warmup", "1", "--max-warmup", "3",
           "--out", str(out / "run"), "--store", str(out / "store.db")]  # fmt: skip
    if policy != "env":
        cmd += ["--wait-policy", policy]
    subprocess.run(cmd, check=True, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    cells = json.loads((out / "run" / "results.json").read_text())["results"]
    by = {c["recipe"]: c for c in cells}
    fp, q = by["fp32"]["latency"][0], by["static-int8"]["latency"][0]
    sp = q["speedup"]
    return {"fp32_ms": fp["median"], "speedup": sp["median"], "ci": (sp["ci_low"], sp["ci_high"]),
            "contention": q.get("contention") or {}}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policies", default="passive,active,runtime")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--min-runs", type=int, default=20)
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the runs")
    args = ap.parse_args(argv)
    env = dict(kv.split("=", 1) for kv in args.env)
    tmp = Path(tempfile.mkdtemp(prefix="qb-wait-"))
    print(f"load average at start: {os.getloadavg()}; competing load: {cores()} busy loops")
    print(
        f"{'condition':9s} {'policy':8s} {'fp32 ms':>8s} {'speedup':>8s} {'CI':>14s}  "
        "wait  cpu   verdict"
    )
    i = 0
    for _ in range(args.repeats):
        for condition in ("quiet", "loaded"):
            ctx = competing_load() if condition == "loaded" else contextlib.nullcontext()
            with ctx:
                for policy in args.policies.split(","):
                    i += 1
                    r = one_run(policy, tmp / f"r{i}", args.min_runs, env)
                    (lo, hi), c = r["ci"], r["contention"]
                    print(f"{condition:9s} {policy:8s} {r['fp32_ms']:8.1f} {r['speedup']:7.2f}x "
                          f"[{lo:.2f}, {hi:.2f}]  {c.get('wait_share')}  {c.get('cpu_share')}  "
                          f"{c.get('verdict')}  load {c.get('load_1m')}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
