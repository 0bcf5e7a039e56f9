"""The machine's ceilings, measured once per machine and kept in the user's cache.

Measuring the ceilings takes some seconds (``quantbench.measure.ceilings``); a run needs
them each time. They are kept in ``$XDG_CACHE_HOME/quantbench/ceilings/`` (default
``~/.cache``), one file per *fingerprint*: what decides the numbers (CPU model,
architecture, usable cores, ISA flags, the thread count, the versions of torch and ONNX
Runtime whose kernels are timed). Another machine, another thread count or a library
upgrade is another file; ``quantbench doctor --refresh`` measures this one again.

A measurement on a busy machine comes out low (another process takes cycles from the
GEMM), never high, and a ceiling below what a model then reaches explains nothing. So a
measurement again (``--refresh``) keeps, per precision and for the bandwidth, the best of
the new one and the file's: on the same fingerprint a peak the machine once reached is
one it reaches. Deleting the file (its path is in ``Ceilings.cache_note`` when it cannot
be written, and under ``cache_dir()`` otherwise) starts over.

The measurement is watched for contention (``quantbench.measure.contention``): a cached
measurement taken while other work held the cores is measured again by the next call,
the best of both kept, until one is quiet or ``MAX_MEASUREMENTS`` were taken.

A cache that cannot be read (garbage, another version's file) is measured over; one that
cannot be written costs a run nothing but the measurement, and says why in
``Ceilings.cache_note``.

Example::

    >>> import os, tempfile
    >>> os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp()
    >>> quick = dict(shapes=((32, 32, 32),), min_time=0.0, array_bytes=1 << 20)
    >>> machine_ceilings(1, **quick).cached, machine_ceilings(1, **quick).cached
    (False, True)
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

from quantbench.measure.ceilings import Ceilings, measure_ceilings

FORMAT = 1  # bump when what is measured changes: old files are then not read
MAX_MEASUREMENTS = 3  # a contended cache is measured again until it holds this many


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/quantbench`` (``~/.cache/quantbench`` when it is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "quantbench"


def fingerprint(threads: int) -> dict[str, Any]:
    """What the ceilings depend on (the cache key). How long each case was timed is not
    part of it: a longer measurement (``doctor --seconds``) replaces a shorter one."""
    from quantbench import env

    versions = env.versions()
    return {
        "format": FORMAT,
        "cpu": env.cpu_model(),
        "machine": platform.machine(),
        "cores": env.cores(),
        "isa_flags": env.isa_flags(),
        "threads": threads,
        "torch": versions.get("torch"),
        "onnxruntime": versions.get("onnxruntime"),
    }


def cache_path(fp: dict[str, Any]) -> Path:
    """The file of fingerprint ``fp``."""
    digest = hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "ceilings" / f"{digest}.json"


def stored_fingerprint(threads: int) -> dict[str, Any]:
    """:func:`fingerprint` as a record read back holds it (tuples as lists): what a
    stored ``Ceilings.fingerprint`` of this machine equals."""
    return json.loads(json.dumps(fingerprint(threads)))


def load_cached(threads: int) -> Ceilings | None:
    """This machine's cached ceilings at ``threads``, or None (none, or unreadable)."""
    fp = stored_fingerprint(threads)
    try:
        data = json.loads(cache_path(fp).read_text())
        found = Ceilings.from_dict(data)
    except (OSError, ValueError, TypeError):
        return None
    if found.fingerprint != fp:  # a hash collision or a hand-edited file
        return None
    found.cached = True
    return found


def save(found: Ceilings) -> str | None:
    """Write ``found`` under its fingerprint; None, or why it could not be written."""
    from quantbench import strictjson
    from quantbench.errors import first_line
    from quantbench.files import atomic_write_text

    path = cache_path(found.fingerprint)
    record = found.to_dict()
    record.pop("cached", None)
    record.pop("cache_note", None)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, strictjson.dumps(record, indent=1))
    except Exception as e:  # a read-only home, a full disk: the run goes on uncached
        return f"not cached ({path}: {first_line(e)})"
    return None


def best_of(old: Ceilings, new: Ceilings) -> Ceilings:
    """``new`` with, per precision and for the bandwidth, ``old``'s where it is higher
    (``load_avg``: that of the measurement the fp32 peak comes from)."""
    for precision, entry in old.peaks.items():
        if (old.peak(precision) or 0) > (new.peak(precision) or 0):
            new.peaks[precision] = entry
            if precision == "fp32":
                new.load_avg = old.load_avg
    if (old.bandwidth() or 0) > (new.bandwidth() or 0):
        new.bandwidth_ = old.bandwidth_
    new.measurements = old.measurements + 1
    if new.contended and old.contention and not old.contended:
        new.contention = old.contention  # one quiet measurement makes the best of them quiet
    return new


def stale(found: Ceilings) -> bool:
    """A cached measurement to take again: it was contended and the cache holds fewer
    than ``MAX_MEASUREMENTS``."""
    return found.contended and found.measurements < MAX_MEASUREMENTS


def machine_ceilings(threads: int | None = None, refresh: bool = False, **measure: Any) -> Ceilings:
    """This machine's ceilings at ``threads`` (default: torch's threads): from the
    cache, else measured and cached; with ``refresh`` measured again, the best of the
    two kept. ``measure``: passed to
    :func:`~quantbench.measure.ceilings.measure_ceilings` (tests make it quick)."""
    import torch

    threads = threads or torch.get_num_threads()
    old = load_cached(threads)
    if old is not None and not refresh and not stale(old):
        return old
    found = measure_ceilings(threads, **measure)
    found.fingerprint = fingerprint(threads)
    if old is not None:
        found = best_of(old, found)
    found.cache_note = save(found)
    return found
