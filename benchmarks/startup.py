"""Start-up of the commands that measure nothing, timed as whole processes.

Each command runs ``--runs`` times (after one warm-up) as ``python -m quantbench ...``
in a fresh interpreter; the table gives the median, min and max wall seconds, the median
CPU seconds, and the heavy libraries the command imported (``python -X importtime``).
The target is 2 s per command on a 2-core machine; the load average is printed with the
table, since a busy machine slows every start-up alike (compare against ``python -c
pass`` and ``import torch``, timed in the same call).

    python benchmarks/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("torch", "torchvision", "torchao", "transformers", "onnx", "onnxruntime",
         "matplotlib", "ray", "sklearn", "scipy", "pandas")  # fmt: skip
TARGET_S = 2.0


def commands(store: str) -> list[list[str]]:
    s = ["--store", store]
    return [["--version"], ["--help"], ["run", "--help"], ["schema"], ["list", "recipes"],
            ["list", "models"], ["list", "datasets"], ["runs", *s], ["show", "base", *s],
            ["doctor", "--help"]]  # fmt: skip


def _store(folder: Path) -> str:
    """A store holding one small run, written as the tests write one (no measuring)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from quantbench.store import open_store
    from test_store import _stored_run

    db = folder / "q.db"
    st = open_store(db)
    _stored_run(st, "base")
    st.close()
    return str(db)


def time_command(argv: list[str], runs: int, cwd: str) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + sys) seconds of each run: on a busy machine the CPU seconds
    are the steadier figure, the wall seconds what a user waits."""
    wall, cpu = [], []
    for i in range(runs + 1):  # the first is a warm-up (file cache)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(argv, cwd=cwd, capture_output=True, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if i:
            wall.append(time.perf_counter() - t0)
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall, cpu


def heavy_imports(argv: list[str], cwd: str) -> list[str]:
    """The heavy top-level packages a command imported (``-X importtime`` lines)."""
    proc = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], cwd=cwd,
                          capture_output=True, text=True, check=False)  # fmt: skip
    names = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    return [h for h in HEAVY if h in names]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        store = _store(Path(tmp))
        rows = [(["python -c pass"], [py, "-c", "pass"]),
                (["python -c 'import torch'"], [py, "-c", "import torch"])]  # fmt: skip
        rows += [(["quantbench", *c], [py, "-m", "quantbench", *c]) for c in commands(store)]
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
              f"{args.runs} runs each after a warm-up")  # fmt: skip
        print("| command | wall s (median) | min | max | CPU s (median) | heavy imports |")
        print("|---|---|---|---|---|---|")
        slow = []
        for label, argv in rows:
            t, cpu = time_command(argv, args.runs, tmp)
            shown = " ".join(label).replace(store, "q.db")
            heavy = heavy_imports(argv, tmp) if label[0] == "quantbench" else []
            med = statistics.median(t)
            if label[0] == "quantbench" and med > TARGET_S:
                slow.append(shown)
            print(f"| `{shown}` | {med:.2f} | {min(t):.2f} | {max(t):.2f} | "
                  f"{statistics.median(cpu):.2f} | "
                  f"{', '.join(heavy) or 'none'} |")  # fmt: skip
    print(f"over {TARGET_S:g} s: {', '.join(slow) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
