"""## Environment: machine, ISA, load, micro-benchmark, engine, threads, pinning, versions."""

from __future__ import annotations

from typing import Any

from quantbench.caveats import BUSY_LOAD_PER_CORE
from quantbench.device import gpu_text
from quantbench.report.context import ReportContext
from quantbench.report.data import bench_ratio, cpu_ranges, has_int8_isa, host_microbench
from quantbench.report.findings import bench_rate
from quantbench.report.fmt import finite, fmt_sig, md_code, md_escape, md_table
from quantbench.report.sections.latency import timing_policy_text


def environment(ctx: ReportContext) -> list[str]:
    """Everything about the machine and the software that the numbers depend on."""
    run = ctx.run
    host = run.get("host") or {}
    flags = host.get("isa_flags")
    flag_text = ", ".join(md_code(f) for f in flags) if flags else "not recorded"
    isa = has_int8_isa(host)
    if isa is not None:
        flag_text += " (int8 dot-product ISA: " + ("yes" if isa else "**no**") + ")"
    lines = [
        f"- **Device:** {_device_text(run)}",
        f"- **CPU:** {md_escape(host.get('cpu') or 'not recorded')}",
        f"- **Cores:** {md_escape(_or_not_recorded(host.get('cores')))}",
        f"- **ISA flags:** {flag_text}",
        f"- **OS:** {md_escape(host.get('os') or 'not recorded')}",
    ]
    for k, v in host.items():
        if k == "gpu":
            lines.append(f"- **GPU:** {md_escape(gpu_text(v))}")
        elif k not in ("cpu", "cores", "isa_flags", "os", "microbench", "load_avg", "ceilings"):
            lines.append(f"- **{md_escape(k)}:** {md_escape(_or_not_recorded(v))}")
    if "load_avg" in host:
        lines.append(f"- **Load average at start:** {_load_text(host, ctx.results)}")
    limits = _limits_text(run)
    bench = host_microbench(run)
    if limits is not None:
        lines.append(f"- **Machine limits:** {limits}")
    elif bench is not None:
        lines.append(f"- **Matmul micro-benchmark:** {_bench_text(bench)}")
    elif "microbench" in host:
        lines.append("- **Matmul micro-benchmark:** not run (latency not measured, or it failed)")
    lines += [
        f"- **Quantized engine:** {md_code(run.get('engine') or 'not recorded')}",
        f"- **Threads:** {md_escape(_or_not_recorded(run.get('threads')))}",
    ]
    if "affinity" in run:
        cpus = run.get("affinity")
        lines.append(
            f"- **CPU affinity at start:** CPUs {cpu_ranges(cpus)} ({len(set(cpus))})"
            if isinstance(cpus, (list, tuple)) and cpus
            else "- **CPU affinity at start:** not available on this platform"
        )
    if "pinned" in run:
        threads = run.get("threads")
        lines.append(
            "- **Pinned:** "
            + (
                "yes (each model's worker pinned to "
                + (f"{threads} CPU{'s' if threads != 1 else ''}" if threads else "its CPUs")
                + ")"
                if run.get("pinned")
                else "no (the OS may move the worker between CPUs)"
            )
        )
    policy = timing_policy_text(run)
    if policy:
        lines.append(f"- **Timing policy:** {policy}")
    lines.append("")
    versions = run.get("versions") or {}
    if versions:
        lines += md_table(["Package", "Version"], [[k, v] for k, v in versions.items()])
    else:
        lines.append("Library versions not recorded.")
    return lines + [""]


def _device_text(run: dict[str, Any]) -> str:
    """Where the models ran: the run's device (runs before --device existed: cpu)."""
    device = run.get("device") or (run.get("spec") or {}).get("device") or "cpu"
    if device == "cuda":
        return "`cuda`: models, inputs and timing on the GPU (CUDA events after a synchronize)"
    return md_code(device)


def _or_not_recorded(value: Any) -> Any:
    return "not recorded" if value is None else value


def _load_text(host: dict[str, Any], cells: list[Any]) -> str:
    from quantbench.caveats import busy

    load = host.get("load_avg")
    if not finite(load) or isinstance(load, bool):
        return "not recorded"
    cores = host.get("cores")
    text = f"{load:.2f} (1-minute average"
    if isinstance(cores, int) and cores > 0:
        text += f", {cores} cores)"
        if load > BUSY_LOAD_PER_CORE * cores:
            if busy({"host": host}, cells):
                text += " ⚠️ the machine was busy: timings may be noisy; trust paired speedups more"
            else:  # the timed points were watched: their verdicts say how busy it was
                text += (" (it counts this run's own processes and what ran before; each "
                         "timed point's own contention verdict is in the latency tables)")  # fmt: skip
        return text
    return text + ")"


def _bench_text(bench: dict[str, Any]) -> str:
    fp32, int8 = bench_rate(bench, "fp32_gflops"), bench_rate(bench, "int8_gops")
    ratio = bench_ratio(bench)
    parts = []
    if fp32 is not None:
        parts.append(f"fp32 {fmt_sig(fp32)} GFLOP/s")
    if int8 is not None:
        parts.append(f"int8 {fmt_sig(int8)} GOP/s")
    text = ", ".join(parts)
    shape = bench.get("shape")
    setup = ["dynamic int8 Linear vs fp32 Linear"]
    if isinstance(shape, (list, tuple)) and len(shape) == 3:
        setup.append("M×K×N = " + "×".join(str(x) for x in shape))
    if bench.get("threads") is not None:
        setup.append(f"{bench['threads']} threads")
    text += f" ({', '.join(setup)})"
    if ratio is not None:
        text += f": int8:fp32 = {ratio:.2f}x"
    return text


def _limits_text(run: dict[str, Any]) -> str | None:
    """The measured ceilings in one line (the roofline section has them in full)."""
    from quantbench.report.limits import run_ceilings

    c = run_ceilings(run)
    if c is None:
        return None
    parts = [f"{p} {fmt_sig(c.peak(p) / 1e9)} {'GOP/s' if p == 'int8' else 'GFLOP/s'}"
             for p in c.peaks if c.peak(p)]  # fmt: skip
    if c.bandwidth():
        parts.append(f"memory {fmt_sig(c.bandwidth() / 1e9)} GB/s")
    return (", ".join(parts) + f" (measured peaks at {c.threads} thread(s); see *How close "
            "to the limit*)")  # fmt: skip
