"""A synthetic competing load for the contention benchmarks: one busy-loop process per
core (or ``n``), started by :func:`competing_load` and killed when its block ends, on
success, failure or Ctrl-C alike.

    with competing_load(2) as pids:   # two pure-Python spin loops
        ...
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

# A loop that never sleeps or allocates: pure competition for a core.
SPIN = "while True:\n    pass\n"


def cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def competing_load(n: int | None = None) -> Iterator[list[int]]:
    """Start ``n`` busy-loop processes (default: one per core); yield their pids; kill
    them at the end. Each is its own process group's leader and dies with a parent that
    is killed outright (``PR_SET_PDEATHSIG`` where Linux offers it)."""
    procs: list[subprocess.Popen] = []
    try:
        for _ in range(n if n is not None else cores()):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", _orphan_guard() + SPIN],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGKILL)
        for p in procs:
            p.wait()


def _orphan_guard() -> str:
    """Code that makes a loop process die with its parent (Linux only; elsewhere the
    ``finally`` above is the only guard)."""
    return (
        "try:\n"
        "    import ctypes, signal\n"
        "    ctypes.CDLL(None).prctl(1, signal.SIGKILL)\n"  # PR_SET_PDEATHSIG
        "except Exception:\n"
        "    pass\n"
    )
