"""CPU facts, defined once: architecture and the ISA flags that decide int8 speed.

Recipes, the machine fingerprint and ``doctor`` all ask here, so "is this ARM?" and
"has this CPU VNNI?" have one answer in the whole program.

Example::

    >>> from quantbench import cpu
    >>> isinstance(cpu.is_arm(), bool)
    True
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

ARM_MACHINES = ("arm64", "aarch64", "armv7l", "armv8l")


def machine() -> str:
    """``platform.machine()`` in lower case (``x86_64``, ``aarch64``, ...)."""
    return platform.machine().lower()


def is_arm() -> bool:
    """True on 32- and 64-bit ARM (where QNNPACK / KleidiAI kernels apply, not FBGEMM)."""
    m = machine()
    return m in ARM_MACHINES or m.startswith("arm")


def is_x86() -> bool:
    return machine() in ("x86_64", "amd64", "i386", "i686")


@functools.cache
def cpuinfo() -> dict[str, str]:
    """The first value of each key in ``/proc/cpuinfo`` (empty where unreadable)."""
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        if ":" in line:
            k, v = (s.strip() for s in line.split(":", 1))
            info.setdefault(k, v)
    return info


def cpu_flags() -> set[str]:
    """Every ISA flag of the CPU (x86 ``flags``, ARM ``Features``); NEON is implied on
    64-bit ARM when the kernel lists none."""
    info = cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    if machine() in ("arm64", "aarch64") and not flags:
        flags.add("neon")
    return flags


def has_vnni() -> bool:
    """AVX512-VNNI or AVX-VNNI: the int8 dot-product instructions that make x86 int8 fast."""
    return any("vnni" in f for f in cpu_flags())
