"""The theoretical compute peak of this CPU: ops per cycle per core from its ISA, times
the cores a run uses, times the clock where one can be read.

This is the number a datasheet would give, under stated assumptions: two vector
multiply-add units per core (true of the x86 server cores since Haswell and Zen 2, and of
Neoverse cores; some Xeon Silver/Bronze parts have one 512-bit unit), every unit busy
every cycle, and the clock read below (boost may run above it, throttling below). The
report's ceilings are the *measured* peaks (``quantbench.measure.ceilings``); this one is
printed beside them so a reader can see how far the libraries get from the silicon.

Ops per cycle per core, with ``u`` units of ``w``-bit vectors:

- fp32: ``u * w/32 * 2`` with FMA (a multiply-add is two FLOPs).
- int8 with VNNI (``vpdpbusd``: ``w/8`` multiply-adds in one instruction): ``u * w/8 * 2``
  (4x fp32); without it (AVX2: ``vpmaddubsw`` then ``vpmaddwd``, two instructions for
  the same ``w/8`` multiply-adds): half that (2x fp32). AMX-INT8: 2048.
- bf16 with AVX512-BF16 (``vdpbf16ps``): 2x fp32; AMX-BF16: 1024. fp16 with
  AVX512-FP16: 2x fp32; AMX-FP16: 1024. Without these, bf16/fp16 are converted to fp32
  in software: there is no native peak, and none is given.
- Arm: NEON 128-bit; ``asimddp`` (``sdot``) 4x fp32, ``i8mm`` (``smmla``) 8x fp32;
  ``bf16`` (``bfdot``) and ``asimdhp`` (fp16 FMA) 2x fp32.

Example::

    >>> p = theoretical_peaks({"avx2", "fma"}, cores=2, clock=(2.45, "test"))
    >>> p["fp32"].ops_per_cycle, p["int8"].ops_per_cycle, "bf16" in p
    (32, 64, False)
    >>> round(p["fp32"].rate / 1e9, 1)
    156.8
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

UNITS = 2  # vector multiply-add units per core (assumed; see the module's text)
AMX_INT8, AMX_HALF = 2048, 1024  # ops per cycle per core of one AMX tile unit


@dataclass(frozen=True)
class TheoreticalPeak:
    """One precision's datasheet peak; ``rate`` (ops/s) is None without a clock."""

    precision: str
    ops_per_cycle: int  # per core
    cores: int
    ghz: float | None
    clock_source: str
    instructions: str  # which instructions the number assumes

    @property
    def rate(self) -> float | None:
        return None if self.ghz is None else self.ops_per_cycle * self.cores * self.ghz * 1e9

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rate": self.rate}


def read_clock() -> tuple[float | None, str]:
    """(GHz, where it was read): the cpufreq maximum (boost) clock, else the base clock in
    the CPU's model name, else the current clock /proc/cpuinfo reports (in a virtual
    machine: the host's nominal clock; boost may run above it)."""
    from quantbench import cpu

    try:
        khz = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()
        return round(int(khz) / 1e6, 3), "cpufreq maximum (boost) clock"
    except (OSError, ValueError):
        pass
    info = cpu.cpuinfo()
    m = re.search(r"@\s*([\d.]+)\s*GHz", info.get("model name", ""))
    if m:
        return float(m.group(1)), "base clock in the CPU's model name (boost may exceed it)"
    try:
        return round(float(info["cpu MHz"]) / 1e3, 3), (
            "current clock in /proc/cpuinfo (in a VM the host's nominal clock; boost may exceed it)"
        )
    except (KeyError, ValueError):
        return None, "no clock readable"


def _x86(flags: set[str]) -> dict[str, tuple[int, str]]:
    width = 512 if "avx512f" in flags else 256 if "avx" in flags or "avx2" in flags else 128
    isa = {512: "AVX-512", 256: "AVX2" if "avx2" in flags else "AVX", 128: "SSE"}[width]
    fma = "fma" in flags or width == 512
    fp32 = UNITS * width // 32 * 2
    unit_text = f"{UNITS} x {width}-bit units"
    out = {"fp32": (fp32, f"{isa} {'FMA' if fma else 'mul+add'}, {unit_text}")}
    if "amx_int8" in flags:
        out["int8"] = (AMX_INT8, "AMX-INT8 tiles")
    elif "avx512_vnni" in flags or "avx_vnni" in flags:
        w = 512 if "avx512_vnni" in flags else 256
        out["int8"] = (UNITS * w // 8 * 2, f"{'AVX512' if w == 512 else 'AVX'}-VNNI vpdpbusd, "
                                           f"{UNITS} x {w}-bit units")  # fmt: skip
    elif width >= 256 and "avx2" in flags:
        out["int8"] = (UNITS * width // 8, f"{isa} vpmaddubsw+vpmaddwd (no VNNI), {unit_text}")
    if "amx_bf16" in flags:
        out["bf16"] = (AMX_HALF, "AMX-BF16 tiles")
    elif "avx512_bf16" in flags:
        out["bf16"] = (2 * fp32, f"AVX512-BF16 vdpbf16ps, {unit_text}")
    if "amx_fp16" in flags:
        out["fp16"] = (AMX_HALF, "AMX-FP16 tiles")
    elif "avx512_fp16" in flags:
        out["fp16"] = (2 * fp32, f"AVX512-FP16 FMA, {unit_text}")
    return out


def _arm(flags: set[str]) -> dict[str, tuple[int, str]]:
    fp32 = UNITS * 128 // 32 * 2
    units = f"{UNITS} x 128-bit units"
    out = {"fp32": (fp32, f"NEON FMA, {units}")}
    if "i8mm" in flags:
        out["int8"] = (8 * fp32, f"I8MM smmla, {units}")
    elif "asimddp" in flags:
        out["int8"] = (4 * fp32, f"dot product sdot, {units}")
    else:
        out["int8"] = (fp32, f"NEON widening multiply-add, {units}")
    if "bf16" in flags:
        out["bf16"] = (2 * fp32, f"BF16 bfdot, {units}")
    if "asimdhp" in flags or "fphp" in flags:
        out["fp16"] = (2 * fp32, f"fp16 FMA, {units}")
    return out


def theoretical_peaks(
    flags: set[str] | None = None,
    cores: int | None = None,
    clock: tuple[float | None, str] | None = None,
    arm: bool | None = None,
) -> dict[str, TheoreticalPeak]:
    """Per precision the machine computes natively, its :class:`TheoreticalPeak` on
    ``cores`` cores (default: this machine's flags, usable cores and :func:`read_clock`)."""
    from quantbench import cpu, env

    flags = cpu.cpu_flags() if flags is None else flags
    cores = env.cores() if cores is None else cores
    ghz, source = read_clock() if clock is None else clock
    arm = cpu.is_arm() if arm is None else arm
    table = _arm(flags) if arm else _x86(flags)
    return {
        p: TheoreticalPeak(p, per_cycle, cores, ghz, source, text)
        for p, (per_cycle, text) in table.items()
    }
