"""Memory: resident set size and its peak, resettable on Linux (``/proc/self/clear_refs``);
on CUDA runs also the peak of torch's GPU allocator.

Resetting the peak before each variant's pass makes the peak attributable to that
variant, although all variants of a model live in one worker process.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def _status_kib(key: str, pid: int | str = "self") -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
        m = re.search(rf"^{key}:\s+(\d+)\s+kB", text, re.MULTILINE)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def rss_bytes() -> int | None:
    """Current resident set size of this process."""
    kib = _status_kib("VmRSS")
    return kib * 1024 if kib is not None else None


def peak_bytes() -> int | None:
    """Peak resident set size since start or the last :func:`reset_peak`."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak) * (1 if sys.platform == "darwin" else 1024)
    except (ImportError, OSError):
        return None


_highest_before_reset = 0


def overall_peak_bytes() -> int | None:
    """Peak RSS over the whole process life, across :func:`reset_peak` calls."""
    p = peak_bytes()
    return max(p, _highest_before_reset) if p is not None else None


def peak_bytes_of(pid: int) -> int | None:
    """Peak RSS of another process, read from outside (survives that process's death)."""
    kib = _status_kib("VmHWM", pid)
    return kib * 1024 if kib is not None else None


def reset_peak() -> bool:
    """Reset the peak RSS counter (Linux >= 4.0); False where that is not possible."""
    global _highest_before_reset
    _highest_before_reset = max(_highest_before_reset, peak_bytes() or 0)
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def reset_gpu_peak(device: str) -> None:
    """Reset torch's peak GPU memory counter (``torch.cuda.reset_peak_memory_stats``);
    nothing on the CPU."""
    if device != "cuda":
        return
    import torch

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()


def gpu_peak_bytes(device: str) -> int | None:
    """Peak bytes torch's CUDA allocator held since :func:`reset_gpu_peak`
    (``torch.cuda.max_memory_allocated``): tensors torch allocated, not what another
    runtime (ONNX Runtime's own arena) took. None on the CPU."""
    if device != "cuda":
        return None
    import torch

    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated())
