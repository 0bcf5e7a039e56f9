"""Machine fingerprint: CPU, ISA flags that matter for int8, engines, library versions,
and the GPU torch sees (``gpu``: None when there is none)."""

from __future__ import annotations

import contextlib
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from quantbench import cpu
from quantbench.errors import QuantbenchError, first_line

# ISA features that decide how fast int8 / bf16 can be (names as in /proc/cpuinfo).
ISA_FLAGS = [
    "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
    "amx_tile", "amx_int8", "amx_bf16", "neon", "asimd", "asimddp", "sve", "i8mm",
]  # fmt: skip

# Read from the installed metadata (nothing imported): the optional runtimes too, when present.
PACKAGES = ["torch", "torchvision", "transformers", "numpy", "onnx", "onnxruntime", "torchao",
            "executorch", "openvino", "nncf"]  # fmt: skip


def cpu_model() -> str:
    info = cpu.cpuinfo()
    return info.get("model name") or info.get("Hardware") or platform.processor() or "unknown"


def isa_flags() -> list[str]:
    """The CPU's flags among :data:`ISA_FLAGS`, in that order."""
    flags = cpu.cpu_flags()
    return [f for f in ISA_FLAGS if f in flags]


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[p] = metadata.version(p)
    return out


def quantized_engines() -> list[str]:
    import torch

    return [e for e in torch.backends.quantized.supported_engines if e != "none"]


def default_engine() -> str:
    """The platform's quantized engine: x86 (fbgemm lineage) on x86-64, qnnpack on ARM."""
    have = quantized_engines()
    prefs = ["qnnpack"] if cpu.is_arm() else ["x86", "fbgemm"]
    for e in prefs:
        if e in have:
            return e
    if not have:
        raise QuantbenchError("this torch build has no quantized engine; int8 recipes cannot run")
    return have[0]


def check_engine(engine: str | None) -> str:
    """Return a usable engine, or raise naming the engines this torch has."""
    if engine is None:
        return default_engine()
    have = quantized_engines()
    if engine not in have:
        raise QuantbenchError(
            f"quantized engine '{engine}' is not available in this torch build "
            f"(torch {versions().get('torch', '?')} has: {', '.join(have) or 'none'})"
        )
    return engine


def governor() -> str | None:
    p = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    try:
        return p.read_text().strip()
    except OSError:
        return None


def host() -> dict[str, Any]:
    """The fingerprint stored with every run."""
    return {
        "cpu": cpu_model(),
        "cores": cores(),
        "machine": platform.machine(),
        "isa_flags": isa_flags(),
        "os": f"{platform.system()} {platform.release()}",
        "hostname": platform.node(),
        "governor": governor(),
        "load_avg": _load_avg(),
        "gpu": _gpu(),
    }


def _gpu() -> dict[str, Any] | None:
    from quantbench.device import gpu_info

    try:
        return gpu_info()
    except Exception as e:  # a broken driver must not stop a CPU run
        return {"error": first_line(e)}


def _load_avg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None
