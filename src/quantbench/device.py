"""Where a run computes: ``--device cpu|cuda|auto``, the GPU fingerprint, and moving a
model and its inputs there.

``auto`` is resolved once, when the settings are validated (:func:`resolve_device`), so a
stored run says ``cpu`` or ``cuda``, never ``auto``. torch is imported lazily.

Example::

    >>> resolve_device("cpu")
    'cpu'
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

from quantbench.errors import QuantbenchError, unknown_name
from quantbench.settings.target import DEVICES

NO_CUDA = (
    "--device cuda: no CUDA GPU is visible to torch (torch.cuda.is_available() is False); "
    "use --device cpu or auto"
)


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU (False for a CPU-only torch build)."""
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(name: str) -> str:
    """``cpu`` or ``cuda`` for a ``--device`` value: ``auto`` is cuda when torch sees a GPU,
    else cpu; ``cuda`` without one is a :class:`QuantbenchError` (one line, exit 2)."""
    if name not in DEVICES:
        raise unknown_name("device", str(name), DEVICES)
    if name == "auto":
        return "cuda" if cuda_available() else "cpu"
    if name == "cuda" and not cuda_available():
        raise QuantbenchError(NO_CUDA)
    return name


# --------------------------------------------------------------------------- fingerprint


def _nvidia_smi_driver() -> str | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return lines[0] if lines else None


def _cuda_driver_api() -> str | None:
    """The CUDA driver API version libcuda reports (``cuDriverGetVersion``), e.g. "12.8":
    what torch itself checks against; used when nvidia-smi is not installed."""
    import ctypes

    try:
        lib = ctypes.CDLL("libcuda.so.1")
        v = ctypes.c_int()
        if lib.cuDriverGetVersion(ctypes.byref(v)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return f"CUDA driver API {v.value // 1000}.{(v.value % 1000) // 10}"


def driver_version() -> str | None:
    """The NVIDIA driver version (nvidia-smi), else the CUDA driver API version."""
    return _nvidia_smi_driver() or _cuda_driver_api()


def gpu_info() -> dict[str, Any] | None:
    """The GPU torch computes on (device 0), or None when torch sees none.

    ``name``, ``capability`` ("9.0"), ``memory_bytes``, ``count`` (GPUs visible),
    ``cuda_runtime`` (the CUDA torch was built with), ``driver``.
    """
    import torch

    if not torch.cuda.is_available():
        return None
    p = torch.cuda.get_device_properties(0)
    return {
        "name": p.name,
        "capability": f"{p.major}.{p.minor}",
        "memory_bytes": int(p.total_memory),
        "count": int(torch.cuda.device_count()),
        "cuda_runtime": torch.version.cuda,
        "driver": driver_version(),
    }


def gpu_text(gpu: dict[str, Any] | None) -> str:
    """One line for a :func:`gpu_info` record: ``none`` when there is no GPU."""
    if not gpu:
        return "none"
    if "error" in gpu:
        return f"not readable ({gpu['error']})"
    parts = [f"compute capability {gpu.get('capability', '?')}"]
    if isinstance(gpu.get("memory_bytes"), int):
        parts.append(f"{gpu['memory_bytes'] / 2**30:.1f} GiB")
    parts.append(f"driver {gpu.get('driver') or 'not readable'}")
    parts.append(f"CUDA runtime {gpu.get('cuda_runtime') or '?'}")
    count = gpu.get("count")
    more = f" (+{count - 1} more)" if isinstance(count, int) and count > 1 else ""
    return f"{gpu.get('name', '?')}{more}: {', '.join(parts)}"


# --------------------------------------------------------------------------- moving


def to_device(tensors: Any, device: str) -> Any:
    """A tuple (or list of tuples, or ``(inputs, labels)`` pairs) of tensors on ``device``;
    anything else is returned as is."""
    import torch

    if isinstance(tensors, torch.Tensor):
        return tensors.to(device)
    if isinstance(tensors, tuple):
        return tuple(to_device(t, device) for t in tensors)
    if isinstance(tensors, list):
        return [to_device(t, device) for t in tensors]
    return tensors


def model_on_device(lm: Any, device: str) -> Any:
    """A :class:`~quantbench.models.LoadedModel` on ``device``: its module moved there
    (``nn.Module.to``, in place), and an input maker that makes the same (seeded) inputs
    there. The record itself is a copy: an in-memory model's is shared between runs."""
    import dataclasses

    if device == "cpu":
        return lm
    make = lm.make_inputs

    def make_on_device(*args: Any, **kwargs: Any) -> tuple:
        return to_device(make(*args, **kwargs), device)

    return dataclasses.replace(lm, module=lm.module.to(device), make_inputs=make_on_device)
