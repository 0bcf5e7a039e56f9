"""``quantbench doctor``: the machine fingerprint, a matmul micro-benchmark, and warnings.

Example::

    >>> from quantbench.doctor import diagnose
    >>> d = diagnose(bench_seconds=0.2)
    >>> d["microbench"]["int8_fp32_ratio"] > 0
    True
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from quantbench import cpu, env

# Matrix shape of the micro-benchmark: a BERT-base FFN layer at 128 tokens.
M, K, N = 128, 768, 3072


def microbench(seconds: float = 1.0, threads: int | None = None) -> dict[str, Any]:
    """Measured fp32 GFLOP/s and int8 GOP/s of one Linear layer, timed interleaved.

    int8 goes through the quantized engine quantbench uses (dynamic int8 Linear), so the
    ratio is what the machine gives int8 Linear layers, quantize/dequantize included.
    """
    import warnings

    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.randn(M, K)
    fp32 = torch.nn.Sequential(torch.nn.Linear(K, N)).eval()
    torch.backends.quantized.engine = env.default_engine()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        int8 = torch.ao.quantization.quantize_dynamic(fp32, {torch.nn.Linear}, dtype=torch.qint8)
    work = 2.0 * M * K * N
    times: dict[str, list[float]] = {"fp32": [], "int8": []}
    with torch.inference_mode():
        for m in (fp32, int8):
            for _ in range(3):
                m(x)
        end = time.perf_counter() + seconds
        while time.perf_counter() < end or len(times["fp32"]) < 5:
            for name, m in (("fp32", fp32), ("int8", int8)):
                t0 = time.perf_counter()
                m(x)
                times[name].append(time.perf_counter() - t0)
    f, i = statistics.median(times["fp32"]), statistics.median(times["int8"])
    return {
        "shape": [M, K, N],
        "threads": torch.get_num_threads(),
        "fp32_gflops": round(work / f / 1e9, 1),
        "int8_gops": round(work / i / 1e9, 1),
        "int8_fp32_ratio": round(f / i, 2),
    }


def warnings_for(host: dict[str, Any], threads: int, bench: dict[str, Any] | None) -> list[str]:
    """Plain-word warnings about what will hurt results on this machine.

    ``host`` is this machine's :func:`~quantbench.env.host`; the architecture and ISA
    questions are asked of :mod:`quantbench.cpu`, which that fingerprint is built from.
    """
    out = []
    if cpu.is_x86() and not (cpu.has_vnni() or "amx_int8" in cpu.cpu_flags()):
        out.append("no VNNI/AMX int8 instructions: expect small int8 speedups (about 1.3x)")
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
    if load is not None and load > 0.5 * cores:
        out.append(
            f"the machine is busy (load average {load:.1f} on {cores} cores): timings will be "
            "noisy; close other work or compare only paired speedups"
        )
    if host.get("governor") not in (None, "performance"):
        out.append(f"CPU frequency governor is '{host['governor']}': clocks may vary between runs")
    if bench and bench["int8_fp32_ratio"] < 1.2:
        out.append(
            f"int8 Linear is only {bench['int8_fp32_ratio']}x fp32 here: expect little from int8"
        )
    return out


def diagnose(bench_seconds: float = 1.0, threads: int | None = None) -> dict[str, Any]:
    """Fingerprint + engines + versions + micro-benchmark + warnings, as a dict."""
    import torch

    host = env.host()
    bench = microbench(bench_seconds, threads)
    return {
        "host": host,
        "engines": env.quantized_engines(),
        "default_engine": env.default_engine(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "versions": env.versions(),
        "microbench": bench,
        "warnings": warnings_for(host, torch.get_num_threads(), bench),
    }


def doctor(bench_seconds: float = 1.0, threads: int | None = None) -> str:
    """Human-readable report of :func:`diagnose`."""
    import torch

    from quantbench.device import gpu_text

    d = diagnose(bench_seconds, threads)
    h, b = d["host"], d["microbench"]
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
        f"matmul:     fp32 {b['fp32_gflops']} GFLOP/s, int8 {b['int8_gops']} GOP/s "
        f"(dynamic int8 Linear {b['shape'][0]}x{b['shape'][1]}x{b['shape'][2]}, "
        f"{b['threads']} threads): int8:fp32 = {b['int8_fp32_ratio']}x",
    ]
    lines += [f"warning:    {w}" for w in d["warnings"]] or ["warnings:   none"]
    from quantbench.doctor_busy import busy_lines

    lines += busy_lines(cores=h.get("cores"))
    return "\n".join(lines)
