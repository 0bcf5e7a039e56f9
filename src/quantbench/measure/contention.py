"""Was a point measured while other work held the cores? Watched per timed pass.

Around every timed pass (outside the timed interval) :class:`Watch` reads the worker's
CPU time (``time.process_time``: every thread of the process) and the time its threads
spent runnable but waiting for a core (``/proc/self/task/*/schedstat``, the scheduler's
run-queue delay; Linux, no root). Over a point's passes (every variant, interleaved):

- ``wait_share``: run-queue wait / (wall x threads): the share of the runtime threads'
  time lost waiting for a core. A quiet machine gives ~0; each competing busy process on
  a core takes about half of that core's time.
- ``cpu_share``: CPU time / (wall x threads): how much of the threads' time the worker
  ran. It also falls with serial parts of a model (threads sleeping under the passive
  wait policy), so it decides only where ``wait_share`` cannot be read.

A point is ``contended`` when ``wait_share >= WAIT_SHARE_MAX`` (or, without schedstat,
``cpu_share < CPU_SHARE_MIN``); else ``quiet``. The 1-minute load average and the CPU
pressure (``/proc/pressure/cpu``, ``some avg10``) at the point's end are kept beside it:
they are machine-wide context, not the verdict.

Example::

    >>> w = Watch(threads=1)
    >>> w.before(); _ = sum(range(100000)); w.after()
    >>> w.summary()["verdict"] in ("quiet", "contended")
    True
"""

from __future__ import annotations

import os
import time
from typing import Any

#: A point whose runtime threads waited this share of their time for a core is contended.
WAIT_SHARE_MAX = 0.10
#: Without schedstat: a point whose threads ran less than this share of wall x threads.
CPU_SHARE_MIN = 0.5
CONTENDED, QUIET = "contended", "quiet"


def run_delay_s() -> float | None:
    """Seconds this process's threads have spent runnable, waiting for a core (sum over
    ``/proc/self/task/*/schedstat``); None where the kernel does not say."""
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return None
    total, seen = 0, False
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
            seen = True
        except (OSError, IndexError, ValueError):  # a thread ended meanwhile, or no schedstat
            continue
    return total / 1e9 if seen else None


def cpu_pressure() -> float | None:
    """``some avg10`` of ``/proc/pressure/cpu``: % of the last 10 s some task waited for a
    CPU (None where PSI is off)."""
    try:
        with open("/proc/pressure/cpu") as f:
            first = f.readline().split()
        return float(dict(kv.split("=") for kv in first[1:])["avg10"])
    except (OSError, KeyError, ValueError, IndexError):
        return None


def load_1m() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


class Watch:
    """CPU time and run-queue wait of this process over the timed passes of one point."""

    def __init__(self, threads: int) -> None:
        self.threads = max(1, threads)
        self.wall = self.cpu = self.wait = 0.0
        self.wait_known = True
        self.passes = 0
        self._c0 = self._t0 = 0.0
        self._d0: float | None = None

    def before(self) -> None:
        """Just before a pass's clock starts."""
        self._t0 = time.perf_counter()
        self._d0 = run_delay_s()
        self._c0 = time.process_time()

    def after(self) -> None:
        """Just after the pass's clock stopped. The wall time is the watch's own, from
        the first reading to the last: a wait for a core between the readings and the
        pass's clock counts on both sides (a short pass preempted just outside its timed
        interval would otherwise show more waiting than wall time)."""
        self.cpu += time.process_time() - self._c0
        d1 = run_delay_s()
        if self._d0 is None or d1 is None:
            self.wait_known = False
        else:  # a thread that ended meanwhile takes its delay with it: never below 0
            self.wait += max(0.0, d1 - self._d0)
        self.wall += time.perf_counter() - self._t0
        self.passes += 1

    def summary(self) -> dict[str, Any]:
        """The point's figures and verdict (see the module's docstring)."""
        span = self.wall * self.threads
        cpu_share = self.cpu / span if span > 0 else None
        wait_share = self.wait / span if span > 0 and self.wait_known else None
        if wait_share is not None:
            contended = wait_share >= WAIT_SHARE_MAX
        else:
            contended = cpu_share is not None and cpu_share < CPU_SHARE_MIN
        return {
            "verdict": CONTENDED if contended else QUIET,
            "wait_share": _round(wait_share),
            "cpu_share": _round(cpu_share),
            "threads": self.threads,
            "passes": self.passes,
            "load_1m": load_1m(),
            "cpu_pressure": cpu_pressure(),
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def is_contended(point: Any) -> bool:
    """Whether a latency point was measured under contention (False when not watched)."""
    c = getattr(point, "contention", None) or {}
    return c.get("verdict") == CONTENDED


def rule_text() -> str:
    """The verdict's rule, in words (for reports and caveats)."""
    return (
        f"the worker's threads waited for a core ≥ {WAIT_SHARE_MAX:.0%} of their time "
        f"(or, where the kernel does not say, ran < {CPU_SHARE_MIN:.0%} of it)"
    )
