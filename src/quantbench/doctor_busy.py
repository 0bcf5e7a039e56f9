"""``quantbench doctor``'s "what else is running" part: the processes using the CPUs now,
what they will do to the numbers, and how to make the machine quieter (as ``pyperf system
tune`` would: governor, turbo, isolated cores, pinning, niceness). Read-only, no root:
everything comes from ``/proc`` and ``/sys``; what needs root is said as a command for the
user to run, never run.

Example::

    >>> lines = busy_lines(sample_s=0.1)
    >>> lines[0].startswith("others:")
    True
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from quantbench.measure.contention import cpu_pressure

# Other work using at least this many cores' worth of CPU will show in the timings.
BUSY_CORES = 0.25
TOP = 5


@dataclass(frozen=True)
class Consumer:
    pid: int
    name: str
    cores: float  # CPU used over the sample, in cores (1.0 = one core all the time)


def _ticks(pid: str) -> tuple[str, int] | None:
    """(command name, utime + stime in clock ticks) of a process; None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the name is in parentheses and may hold spaces or ')': split at the last ')'
    name = text[text.find("(") + 1 : text.rfind(")")]
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return name, int(fields[11]) + int(fields[12])
    except (IndexError, ValueError):
        return None


def _command(pid: int, name: str) -> str:
    """The process's command line, clipped and printable (its name when unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        raw = b""
    words = raw.replace(b"\0", b" ").decode("utf-8", "replace").split()
    if len(words) > 1 and os.path.basename(words[0]).startswith("python"):
        words = words[1:]  # the script or module says more than the interpreter
    if words:
        words[0] = os.path.basename(words[0])
    text = " ".join(words) or name
    if "multiprocessing.spawn" in text or "multiprocessing-fork" in text:
        parent = _parent(pid)  # a spawned worker says nothing: name whose it is
        if parent:
            text = f"worker of {parent}: {_command(parent, '?')}"
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= 70 else text[:67] + "..."


def _parent(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        return int(text[text.rfind(")") + 2 :].split()[1]) or None
    except (OSError, ValueError, IndexError):
        return None


def _snapshot() -> dict[int, tuple[str, int]]:
    out = {}
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return out
    for pid in pids:
        t = _ticks(pid)
        if t is not None:
            out[int(pid)] = t
    return out


def top_consumers(sample_s: float = 0.5, exclude: int | None = None) -> list[Consumer] | None:
    """Processes by CPU used over ``sample_s`` seconds, busiest first (this process and
    ``exclude`` left out); None where ``/proc`` cannot say (not Linux)."""
    if not Path("/proc/self/stat").exists():
        return None
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    a = _snapshot()
    t0 = time.monotonic()
    time.sleep(sample_s)
    b = _snapshot()
    dt = time.monotonic() - t0
    skip = {os.getpid(), exclude}
    out = [
        Consumer(pid, _command(pid, name), (ticks - a[pid][1]) / hz / dt)
        for pid, (name, ticks) in b.items()
        if pid in a and pid not in skip and ticks > a[pid][1]
    ]
    return sorted(out, key=lambda c: -c.cores)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def tuning_advice(cores: int) -> list[str]:
    """How to make this machine quieter, from what ``/sys`` says (commands need root;
    quantbench only suggests them)."""
    out = []
    gov = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    if gov is not None and gov != "performance":
        out.append(f"governor is '{gov}': `sudo cpupower frequency-set -g performance` "
                   "(clocks stop following the load)")  # fmt: skip
    no_turbo = _read("/sys/devices/system/cpu/intel_pstate/no_turbo")
    boost = _read("/sys/devices/system/cpu/cpufreq/boost")
    if no_turbo == "0":
        out.append("turbo is on: `echo 1 | sudo tee /sys/devices/system/cpu/intel_pstate/no_turbo` "
                   "(clocks then do not depend on temperature and the other cores' load)")  # fmt: skip
    elif boost == "1":
        out.append("boost is on: `echo 0 | sudo tee /sys/devices/system/cpu/cpufreq/boost`")
    isolated = _read("/sys/devices/system/cpu/isolated")
    if isolated:
        out.append(f"isolated cores {isolated}: run on them, `taskset -c {isolated} quantbench "
                   "run --pin ...`")  # fmt: skip
    elif cores > 2:
        out.append(f"no isolated cores: boot with `isolcpus=<cores>` (e.g. isolcpus={cores - 2}-"
                   f"{cores - 1}) and run there with `taskset -c`")  # fmt: skip
    lo = cores // 2
    half = f"{lo}-{cores - 1}" if cores - 1 > lo else str(cores - 1)
    out.append(f"pin the run to cores other work does not use: `taskset -c {half} quantbench run "
               f"--threads {max(1, cores - cores // 2)} --pin ...`; or lower the others' priority: "
               "`renice -n 10 -p PID` (your own processes; others' need sudo)")  # fmt: skip
    out.append("`pyperf system tune` applies most of these at once (as root); `pyperf system "
               "show` checks them")  # fmt: skip
    return out


def effect_text(busy: float, cores: int) -> str:
    """What ``busy`` cores' worth of other work does to the numbers on ``cores`` cores."""
    if busy < BUSY_CORES:
        return "quiet: nothing else uses a noticeable share of the CPUs"
    share = min(1.0, busy / max(1, cores))
    return (
        f"other work uses {busy:.1f} of {cores} cores ({share:.0%}): timings slow down and "
        "spread, and fp32 and int8 are not hurt alike, so speedups drift; points measured "
        "this way are marked 'contended' (run-queue wait per point), and the default "
        "--wait-policy passive keeps idle threads from making it worse"
    )


def busy_lines(
    sample_s: float = 0.5, cores: int | None = None, top: list[Consumer] | None | bool = False
) -> list[str]:
    """The doctor's lines: the busiest other processes, their effect, how to quiet it.
    ``top``: :func:`top_consumers` taken already (else sampled here for ``sample_s``)."""
    if cores is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:
            cores = os.cpu_count() or 1
    if top is False:
        top = top_consumers(sample_s)
    if top is None:
        lines = ["others:     not readable here (no /proc)"]
        busy = 0.0
    else:
        busy = sum(c.cores for c in top)
        shown = [c for c in top[:TOP] if c.cores >= 0.01]
        lines = [f"others:     {busy:.2f} cores busy with other processes over {sample_s:g} s"]
        lines += [f"            {c.cores:5.0%} of a core  pid {c.pid}  {c.name}" for c in shown]
    psi = cpu_pressure()
    if psi is not None:
        lines.append(f"pressure:   some task waited for a CPU {psi:.0f}% of the last 10 s")
    lines.append(f"effect:     {effect_text(busy, cores)}")
    lines += [f"quieter:    {t}" for t in tuning_advice(cores)]
    return lines
