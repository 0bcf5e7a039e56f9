"""The reference shape: the one (batch, input size) point a run's single-number claims
use (the recommendation, the speedup table, "why slow", artifacts' example inputs).

Defined once, so a report never quotes two shapes. The lab's reference is batch 1 at
224 px (vision) / 128 tokens (text); a run's spec may set others. A point is only ever
taken where it was measured.

Example::

    >>> ref_sizes({"ref_image_size": 160})
    {'vision': 160, 'text': 128}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

# The lab's reference input sizes; the spec's defaults.
LAB_REF_SIZES: dict[str, int] = {"vision": 224, "text": 128}
LAB_REF_BATCH = 1


def ref_sizes(spec: Mapping[str, Any] | Any | None = None) -> dict[str, int]:
    """Reference input size per family from a spec (a RunSpec or its dict), else the lab's."""
    if spec is None:
        return dict(LAB_REF_SIZES)
    get = spec.get if isinstance(spec, Mapping) else lambda k, d: getattr(spec, k, d)
    return {
        "vision": int(get("ref_image_size", None) or LAB_REF_SIZES["vision"]),
        "text": int(get("ref_seq_len", None) or LAB_REF_SIZES["text"]),
    }


def ref_size_for(family: str | None, spec: Mapping[str, Any] | Any | None = None) -> int:
    """The reference input size of one family (vision when unknown)."""
    return ref_sizes(spec).get(family or "vision", LAB_REF_SIZES["vision"])


def _inferred_size(cell: Any) -> int | None:
    """Without a spec: the input size shared by the batch-size sweep, else the largest."""
    sizes = [p.input_size for p in cell.latency if p.sweep == "batch_size"]
    if sizes:
        return Counter(sizes).most_common(1)[0][0]
    if cell.latency:
        return max(p.input_size for p in cell.latency)
    return None


def reference_input_size(cell: Any, sizes: Mapping[str, int] | None = None) -> int | None:
    """The input size of ``cell``'s reference point: the spec's reference size for its
    family where it was measured, else the one its sweeps imply."""
    if not cell.latency:
        return None
    if sizes is not None and cell.family in sizes:
        want = sizes[cell.family]
        if any(p.input_size == want for p in cell.latency):
            return want
    return _inferred_size(cell)


def reference_point(cell: Any, sizes: Mapping[str, int] | None = None) -> Any:
    """The smallest batch measured at the reference input size (the input-size sweep's
    point first when both sweeps hold it); None without latency."""
    size = reference_input_size(cell, sizes)
    if size is None:
        return None
    at = [p for p in cell.latency if p.input_size == size]
    return min(at, key=lambda p: (p.batch_size, p.sweep != "input_size"))
