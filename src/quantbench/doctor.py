"""``quantbench doctor``: the machine fingerprint, its measured limits, and warnings.

The limits are :mod:`quantbench.measure.ceilings`' (peak compute per precision, memory
bandwidth, beside the theoretical peak), read from the per-machine cache or measured
and cached (``refresh``: measured again).

Example::

    >>> from quantbench.doctor import diagnose
    >>> d = diagnose(threads=1)                                 # doctest: +SKIP
    >>> d["ceilings"]["peaks"]["fp32"]["rate"] > 0              # doctest: +SKIP
    True
"""

from __future__ import annotations

import os
from typing import Any

from quantbench import cpu, env
from quantbench.measure.ceilings import Ceilings

LOW_INT8_RATIO = 1.2  # int8 peak under this many times fp32's: little to expect from int8


def warnings_for(
    host: dict[str, Any], threads: int, ceilings: Ceilings | None, others: float | None = None
) -> list[str]:
    """Plain-word warnings about what will hurt results on this machine.

    ``host`` is this machine's :func:`~quantbench.env.host`; the architecture and ISA
    questions are asked of :mod:`quantbench.cpu`, which that fingerprint is built from.
    ``others``: cores' worth of CPU other processes used just now
    (:mod:`quantbench.doctor_busy`); where it is known and small, a high load average is
    what ran before (this tool's own measurement included), not a busy machine.
    """
    from quantbench.doctor_busy import BUSY_CORES

    out = []
    if cpu.is_x86() and not (cpu.has_vnni() or "amx_int8" in cpu.cpu_flags()):
        out.append(
            "no VNNI/AMX int8 instructions: int8 GEMMs peak at 2x fp32 in theory here "
            "(4x with VNNI), and the quantize/dequantize around them eats into that"
        )
    if cpu.is_arm() and "asimddp" not in cpu.cpu_flags():
        out.append("no Arm dot-product instructions: int8 kernels fall back to slower paths")
    if not env.quantized_engines():
        out.append("this torch has no quantized engine: int8 recipes cannot run")
    cores = host.get("cores") or 1
    if threads > cores:
        out.append(
            f"{threads} threads on {cores} cores: threads will contend; use --threads {cores}"
        )
    load = host.get("load_avg")
    if load is not None and load > 0.5 * cores and (others is None or others >= BUSY_CORES):
        out.append(
            f"the machine is busy (load average {load:.1f} on {cores} cores): timings will be "
            "noisy; close other work or compare only paired speedups"
        )
    if host.get("governor") not in (None, "performance"):
        out.append(f"CPU frequency governor is '{host['governor']}': clocks may vary between runs")
    fp32, int8 = (ceilings.peak("fp32"), ceilings.peak("int8")) if ceilings else (None, None)
    if fp32 and int8 and int8 / fp32 < LOW_INT8_RATIO:
        out.append(f"the int8 GEMM peak is only {int8 / fp32:.2f}x fp32's here: expect little "
                   "from int8")  # fmt: skip
    busy = ceilings.busy_reason(cores) if ceilings is not None else None
    if busy:
        out.append(
            f"the ceilings were measured under load ({busy}): they may be low; 'quantbench "
            "doctor --refresh' on a quiet machine measures them again"
        )
    return out


def diagnose(
    threads: int | None = None,
    refresh: bool = False,
    seconds: float | None = None,
    others: float | None = None,
) -> dict[str, Any]:
    """Fingerprint + engines + versions + ceilings + warnings, as a dict. ``seconds``:
    how long each GEMM case is timed when the ceilings are measured; ``others``: see
    :func:`warnings_for`."""
    import torch

    from quantbench.measure.ceiling_cache import machine_ceilings
    from quantbench.measure.ceilings import torch_threads

    threads = threads or torch.get_num_threads()
    with torch_threads(threads):  # the caller's own setting given back after
        host = env.host()
        extra = {"min_time": seconds} if seconds else {}
        found = machine_ceilings(threads, refresh=refresh, **extra)
        interop = torch.get_num_interop_threads()
    return {
        "host": host,
        "engines": env.quantized_engines(),
        "default_engine": env.default_engine(),
        "threads": threads,
        "interop_threads": interop,
        "versions": env.versions(),
        "ceilings": found.to_dict(),
        "warnings": warnings_for(host, threads, found, others),
    }


def _rate(ops: float | None, unit: str) -> str:
    return "—" if ops is None else f"{ops / 1e9:.3g} {unit}"


def ceiling_lines(c: Ceilings) -> list[str]:
    """The ceilings as doctor prints them: one line per precision, bandwidth, ridges."""
    how = (f"read from the cache (measured {c.measured_at})" if c.cached
           else f"measured now in {c.seconds:g} s")  # fmt: skip
    if c.measurements > 1:
        how += f", the best of {c.measurements} measurements"
    load = f", load average {c.load_avg:.1f} then" if c.load_avg is not None else ""
    share = c.contention.get("wait_share")
    if c.contention.get("verdict") and share is not None:  # the watch over the measurement
        load += (
            f"; {c.contention['verdict']} (its threads waited for a core {share:.0%} of the time)"
        )
    lines = [f"ceilings:   at {c.threads} thread(s), {how}{load}"]
    for p in ("fp32", "bf16", "fp16", "int8"):
        unit = "GFLOP/s" if p != "int8" else "GOP/s"
        best, theory = c.peaks.get(p), c.theoretical.get(p)
        if best is None and theory is None:
            continue
        text = f"  {p + ':':<9}"
        if best is not None:
            shape = "x".join(map(str, best["shape"]))
            text += f"{_rate(best['rate'], unit)} measured ({best['library']}, {shape})"
        else:
            why = next((g["skipped"] for g in c.gemms
                        if g["precision"] == p and "skipped" in g), "not measured")  # fmt: skip
            text += f"not measured: {why}"
        if theory is not None and theory.get("rate"):
            text += (f"; theoretical {_rate(theory['rate'], unit)} ({theory['instructions']}, "
                     f"{theory['cores']} core(s) x {theory['ghz']:g} GHz)")  # fmt: skip
        lines.append(text)
    for g in c.gemms:
        if g.get("skipped") and g["precision"] not in c.peaks and g["precision"] in c.theoretical:
            lines.append(f"  skipped:  {g['library']}: {g['skipped']}")
    bw = c.bandwidth_
    if c.bandwidth() is not None:
        llc = bw.get("llc_bytes")
        lines.append(
            f"  memory:  triad {bw['triad'] / 1e9:.3g} GB/s, copy {bw['copy'] / 1e9:.3g} GB/s "
            f"(STREAM-like, float32 arrays of {bw['array_bytes'] >> 20} MiB"
            + (f", last-level cache {llc >> 20} MiB)" if llc else ")")
        )
    ridges = [f"{p} {c.ridge(p):.3g} op/B" for p in c.peaks if c.ridge(p)]
    if ridges:
        lines.append("  ridge:   " + ", ".join(ridges) + " (below: memory-bound)")
    clock = next((t["clock_source"] for t in c.theoretical.values()), None)
    if clock:
        over = [p for p, t in c.theoretical.items()
                if t.get("rate") and (c.peak(p) or 0) > t["rate"]]  # fmt: skip
        boost = (f"; the measured {', '.join(over)} peak is above the theoretical one: the "
                 "cores ran faster than that clock (boost)") if over else ""  # fmt: skip
        lines.append(f"  clock:   {clock}{boost}")
    lines.append(f"  used:    {c.uses}")
    if c.cache_note:
        lines.append(f"  cache:   {c.cache_note}")
    return lines


def doctor(threads: int | None = None, refresh: bool = False, seconds: float | None = None) -> str:
    """Human-readable report of :func:`diagnose`."""
    import torch

    from quantbench.device import gpu_text
    from quantbench.doctor_busy import busy_lines, top_consumers

    top = top_consumers(0.5)  # before measuring anything: other processes' use right now
    others = None if top is None else sum(c.cores for c in top)
    d = diagnose(threads, refresh, seconds, others)
    h = d["host"]
    gpu = gpu_text(h.get("gpu"))
    if gpu == "none":
        cuda = torch.version.cuda
        gpu += (
            f" (torch {torch.__version__} is built for CUDA {cuda}; it sees no GPU)"
            if cuda
            else f" (torch {torch.__version__} is a CPU-only build)"
        )
    lines = [
        f"cpu:        {h['cpu']} ({h['machine']})",
        f"gpu:        {gpu}",
        f"cores:      {h['cores']} usable (affinity), {os.cpu_count()} online",
        f"isa:        {', '.join(h['isa_flags']) or 'none of interest'}",
        f"os:         {h['os']}",
        f"governor:   {h['governor'] or 'not readable'}",
        f"load:       {h['load_avg']:.2f} (1-minute average)"
        if h.get("load_avg") is not None
        else "load:       not readable",
        f"engines:    {', '.join(d['engines']) or 'none'} (default here: {d['default_engine']})",
        f"threads:    torch intra-op {d['threads']}, inter-op {d['interop_threads']}",
        "versions:   " + ", ".join(f"{k} {v}" for k, v in d["versions"].items()),
        *ceiling_lines(Ceilings.from_dict(d["ceilings"])),
    ]
    lines += [f"warning:    {w}" for w in d["warnings"]] or ["warnings:   none"]
    lines += busy_lines(cores=h.get("cores"), top=top)
    return "\n".join(lines)
