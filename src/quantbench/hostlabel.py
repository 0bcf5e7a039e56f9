"""A machine's name from a run's fingerprint: the node (else the hostname), and its GPU
(else CPU) in short. Used wherever runs are told apart by machine (the machines tables,
results.csv's ``machine`` column, compare's warnings); imports nothing of quantbench.

Example::

    >>> short_cpu("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz")
    'Xeon Platinum 8375C'
    >>> machine_label({"id": "r1", "host": {"hostname": "box", "cpu": "AMD EPYC 7B13 64-Core Processor"}})
    'box · EPYC 7B13'
"""

from __future__ import annotations

import re
from typing import Any

_CPU_NOISE = re.compile(r"\((?:R|TM)\)|\bCPU\b|\bProcessor\b|\b\d+-Core\b|@.*$", re.I)


def short_cpu(name: str | None) -> str:
    """A CPU's model name without trademarks, frequency and vendor prefix."""
    text = " ".join(_CPU_NOISE.sub(" ", name or "").split())
    text = re.sub(r"^(AMD|Intel)\s+", "", text)
    return text[:28]


def gpu_names(host: dict[str, Any]) -> list[str]:
    """The GPUs a fingerprint records (``gpu``/``gpus``: a name, a dict with ``name``, or a
    list of either); empty when none is recorded."""
    raw = host.get("gpus", host.get("gpu"))
    items = raw if isinstance(raw, list) else [raw] if raw else []
    names = [str(g.get("name") or "") if isinstance(g, dict) else str(g) for g in items]
    return [n for n in names if n]


def short_gpu(names: list[str]) -> str:
    """``["NVIDIA H200", "NVIDIA H200"]`` -> ``2× H200``."""
    if not names:
        return ""
    first = re.sub(r"^NVIDIA\s+", "", names[0])
    return f"{len(names)}× {first}" if len(names) > 1 else first


def machine_label(meta: dict[str, Any]) -> str:
    """The node (else the hostname, else the run id) and the short GPU (else CPU) name."""
    host = meta.get("host") or {}
    name = meta.get("node") or host.get("hostname") or meta.get("id") or "?"
    short = short_gpu(gpu_names(host)) or short_cpu(host.get("cpu"))
    return f"{name} · {short}" if short else str(name)
