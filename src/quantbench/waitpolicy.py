"""What the runtimes' threads do while they wait for work: the ``wait_policy`` setting.

PyTorch's OpenMP threads (and ONNX Runtime's intra-op threads) spin after each parallel
region, waiting for the next. On a quiet machine that saves a wake-up; when another
process holds a core, a spinning thread burns the time slice its sibling needs, and fp32
and int8 variants are not hurt alike, so even paired, interleaved speedups drift.

- ``passive``: waiting threads sleep. OpenMP: ``OMP_WAIT_POLICY=PASSIVE`` and
  ``GOMP_SPINCOUNT=0`` (GNU libgomp, torch's OpenMP on Linux x86-64), ``KMP_BLOCKTIME=0``
  (Intel/LLVM OpenMP); ONNX Runtime:
  ``session.intra_op.allow_spinning = 0`` and ``session.inter_op.allow_spinning = 0``.
- ``active``: waiting threads spin. ``OMP_WAIT_POLICY=ACTIVE``; ONNX Runtime spinning on.
- ``runtime``: the runtimes' own defaults, as the environment sets them (the user's
  ``OMP_WAIT_POLICY`` / ``GOMP_SPINCOUNT`` / ``KMP_BLOCKTIME`` stand; ONNX Runtime spins).

OpenMP reads its environment once, when the library loads: :func:`apply` must run in a
worker before torch is imported (``runner/executors/local.py``'s ``_enter_worker``); in a
process that already loaded torch only ONNX Runtime follows, and the record says so.

Thread pinning: libgomp pins nothing unless ``OMP_PROC_BIND`` / ``GOMP_CPU_AFFINITY`` say
so; ONNX Runtime may pin its intra-op threads when it picks their number itself, and
quantbench always sets it (:class:`~quantbench.recipes.onnx.runtime.OrtModule`). Both are
read back into the record, so a pinned run shows.

This module imports nothing heavy: it runs before the runtimes load.

Example::

    >>> env_for("passive")["OMP_WAIT_POLICY"]
    'PASSIVE'
    >>> ort_entries("active")["session.intra_op.allow_spinning"]
    '1'
"""

from __future__ import annotations

import os
import sys
from typing import Any

POLICIES = ("passive", "active", "runtime")
DEFAULT = "passive"  # measured: README "When the machine is busy"

#: Environment variables of the OpenMP runtimes that decide waiting and pinning.
OPENMP_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "OMP_PROC_BIND",
               "GOMP_CPU_AFFINITY", "KMP_AFFINITY")  # fmt: skip

# GOMP_SPINCOUNT is set too: libgomp lets an inherited one override OMP_WAIT_POLICY's
# (active's value is libgomp's own for ACTIVE: about five minutes of spinning).
_ENV = {
    "passive": {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "0", "KMP_BLOCKTIME": "0"},
    "active": {"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "30000000000",
               "KMP_BLOCKTIME": "infinite"},
}  # fmt: skip
_SPIN = {"passive": "0", "active": "1"}
_ORT_KEYS = ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning")

# What this process applied (None: nothing yet; ONNX sessions then follow DEFAULT).
_applied: dict[str, Any] | None = None


def env_for(policy: str) -> dict[str, str]:
    """The OpenMP environment ``policy`` sets (``runtime``: none)."""
    return dict(_ENV.get(policy, {}))


def ort_entries(policy: str | None = None) -> dict[str, str]:
    """ONNX Runtime session config entries for ``policy`` (default: what this process
    applied, else :data:`DEFAULT`); ``runtime``: none (ORT's own default, spinning)."""
    policy = policy or current()
    return {k: _SPIN[policy] for k in _ORT_KEYS} if policy in _SPIN else {}


def current() -> str:
    """The policy this process applied, else :data:`DEFAULT`."""
    return _applied["policy"] if _applied else DEFAULT


def apply(policy: str, environ: bool = True) -> dict[str, Any]:
    """Set ``policy`` for this process (environment for OpenMP, entries for the ONNX
    Runtime sessions it opens later); return what was applied and whether OpenMP can
    still follow (it cannot once torch is loaded). ``environ=False``: the environment is
    left alone (a caller's own process, where OpenMP is loaded already)."""
    global _applied
    if policy not in POLICIES:
        raise ValueError(f"unknown wait policy {policy!r} (valid: {', '.join(POLICIES)})")
    before = {k: os.environ.get(k) for k in OPENMP_VARS}
    if environ:
        os.environ.update(env_for(policy))
    _applied = {
        "policy": policy,
        "openmp_follows": environ and "torch" not in sys.modules,
        "env_before": {k: v for k, v in before.items() if v is not None},
    }
    return dict(_applied)


def openmp_library() -> str | None:
    """Which OpenMP runtime this process loaded: ``GNU libgomp``, ``Intel libiomp5``,
    ``LLVM libomp`` (read from ``/proc/self/maps``; None where unreadable or none)."""
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        return None
    for lib, name in (("libgomp", "GNU libgomp"), ("libiomp5", "Intel libiomp5"),
                      ("libomp.so", "LLVM libomp")):  # fmt: skip
        if lib in maps:
            return name
    return None


def effective() -> dict[str, Any]:
    """What waiting and pinning are in this process now, read back: the policy applied,
    the OpenMP runtime and its environment, whether OpenMP saw it (loaded after it was
    set), the CPUs allowed."""
    out: dict[str, Any] = dict(_applied) if _applied else {"policy": DEFAULT, "applied": False}
    out["openmp"] = openmp_library()
    out["openmp_env"] = {k: os.environ[k] for k in OPENMP_VARS if k in os.environ}
    try:
        out["affinity"] = sorted(os.sched_getaffinity(0))
    except AttributeError:
        out["affinity"] = None
    out["pinned_threads"] = pinned_threads(out["affinity"])
    return out


def pinned_threads(allowed: list[int] | None) -> dict[str, str]:
    """Threads of this process held to fewer CPUs than ``allowed`` (a runtime that pins
    its own threads): thread name and id -> their CPU list (Linux; else empty)."""
    out: dict[str, str] = {}
    if not allowed:
        return out
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:  # the thread ended meanwhile
            continue
        cpus = fields.get("Cpus_allowed_list", "").strip()
        if cpus and _count(cpus) < len(allowed):
            out[f"{fields.get('Name', '?').strip()} {tid}"] = cpus
    return out


def _count(cpu_list: str) -> int:
    """How many CPUs a list like ``0-3,8`` names."""
    n = 0
    for part in cpu_list.split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n


def ort_readback(options: Any) -> dict[str, str]:
    """The spinning entries an ``onnxruntime.SessionOptions`` holds (unset: ORT's
    default, spinning on)."""
    out = {}
    for key in _ORT_KEYS:
        try:
            out[key] = options.get_session_config_entry(key)
        except Exception:  # ORT raises when an entry was never set
            out[key] = "unset (spins)"
    return out
