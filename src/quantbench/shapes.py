"""The shapes a run times, and the reference shape: the one (batch, input size) point a
run's single-number claims use (the recommendation, the speedup table, "why slow",
artifacts' example inputs).

Which points a model's sweeps hold (:func:`sweep_points`: the input-size sweep at batch 1,
the batch sweep at the reference size, the rest of the grid when asked) and the reference
shape are defined here once, so a report never quotes two shapes. A run's spec may set the
reference (``ref_batch``, ``ref_image_size``, ``ref_seq_len``); where it does not, the
reference is the point the run's batch sweep ran at (:func:`reference_shape`: the sweep
size nearest the lab's 224 px / 128 tokens) at the smallest batch. A point is only ever
taken where it was measured.

Example::

    >>> ref_sizes({"ref_image_size": 160, "ref_seq_len": None})
    {'vision': 160}
    >>> ref_sizes({"ref_batch": 4})
    {'batch': 4}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from quantbench.settings.sweep import DEFAULT_SEQ_LENS, LAB_REF_BATCH, LAB_REF_SIZES

if TYPE_CHECKING:
    from quantbench.settings import ModelRef, RunSpec

# The key of ``ref_sizes``' mapping that holds the spec's reference batch, when it sets one.
BATCH = "batch"
_TEXT = "text"


def _getter(spec: Mapping[str, Any] | Any) -> Any:
    """A flat key's value from a stored spec (a dict) or a RunSpec (its sweep section)."""
    if isinstance(spec, Mapping):
        return spec.get
    return lambda k, d=None: getattr(spec.sweep, k, d)


def ref_sizes(spec: Mapping[str, Any] | Any | None = None) -> dict[str, int]:
    """The reference shape a spec (a RunSpec or its dict) sets explicitly: input size
    per family ("vision"/"text") and, under ``BATCH``, the batch. A family the spec
    leaves automatic is absent, so :func:`reference_point` takes the size its batch
    sweep ran at. Without a spec: the lab's sizes."""
    if spec is None:
        return dict(LAB_REF_SIZES)
    get = _getter(spec)
    out: dict[str, int] = {}
    for key, name in (("ref_image_size", "vision"), ("ref_seq_len", "text"), ("ref_batch", BATCH)):
        value = get(key, None)
        if value:
            out[name] = int(value)
    return out


def ref_size_for(family: str | None, spec: Mapping[str, Any] | Any | None = None) -> int:
    """The reference input size of one family (vision when unknown) for inputs built
    before measuring (calibration, fidelity): the spec's explicit size, else its sweep
    size nearest the lab's, else the lab's."""
    family = family if family in LAB_REF_SIZES else "vision"
    if spec is None:
        return LAB_REF_SIZES[family]
    explicit = ref_sizes(spec)
    if family in explicit:
        return explicit[family]
    lab = LAB_REF_SIZES[family]
    sweep = _getter(spec)("image_sizes" if family == "vision" else "seq_lens", None)
    if sweep:
        return min((int(s) for s in sweep), key=lambda s: (abs(s - lab), s))
    return lab


def _inferred_size(cell: Any) -> int | None:
    """Without an explicit size: the input size shared by the batch-size sweep, else (a
    batch sweep of batch 1 alone) the measured size nearest the lab's (ties: the smaller),
    as :func:`reference_shape` chose it."""
    sizes = [p.input_size for p in cell.latency if p.sweep == "batch_size"]
    if sizes:
        return Counter(sizes).most_common(1)[0][0]
    if cell.latency:
        lab = LAB_REF_SIZES.get(getattr(cell, "family", None) or "vision", LAB_REF_SIZES["vision"])
        return min({p.input_size for p in cell.latency}, key=lambda s: (abs(s - lab), s))
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
    """The point measured at the reference input size and the reference batch
    (``sizes[BATCH]``, where the spec sets it and it was measured), else the smallest
    batch there (the input-size sweep's point first when both sweeps hold it); None
    without latency."""
    size = reference_input_size(cell, sizes)
    if size is None:
        return None
    at = [p for p in cell.latency if p.input_size == size]
    want = (sizes or {}).get(BATCH)
    if want and any(p.batch_size == want for p in at):
        at = [p for p in at if p.batch_size == want]
    return min(at, key=lambda p: (p.batch_size, p.sweep != "input_size"))


# --------------------------------------------------------------------------- a run's sweeps


def sweep_sizes(spec: RunSpec, ref: ModelRef, info: Any) -> list[int]:
    """Input sizes (image px or sequence length) of the size sweep for one model."""
    if info.family != _TEXT:
        return ref.image_sizes or spec.sweep.image_sizes
    if ref.seq_lens:
        return ref.seq_lens
    if spec.sweep.seq_lens:
        return spec.sweep.seq_lens
    sizes = list(DEFAULT_SEQ_LENS)
    if info.max_input_size and info.max_input_size >= 1024:
        sizes.append(1024)  # long-context models: show where they differ
    return sizes


def reference_shape(spec: RunSpec, ref: ModelRef, info: Any) -> tuple[int, int]:
    """(batch, input size) of one model's reference point: the point the report's single
    numbers quote, and where the batch sweep runs. The size is ``ref_image_size`` /
    ``ref_seq_len`` when set (then measured there), else the model's sweep size nearest
    the lab's 224 px / 128 tokens (ties: the smaller); the batch is ``ref_batch``, else 1.
    Never a shape that is not measured: :func:`sweep_points` includes it."""
    family = "text" if info.family == _TEXT else "vision"
    size = spec.sweep.ref_seq_len if family == "text" else spec.sweep.ref_image_size
    if size is None:
        lab = LAB_REF_SIZES[family]
        size = min(sweep_sizes(spec, ref, info), key=lambda s: (abs(s - lab), s))
    return spec.sweep.ref_batch or LAB_REF_BATCH, size


def sweep_points(spec: RunSpec, ref: ModelRef, info: Any) -> list[tuple[int, int, str]]:
    """(batch_size, input_size, sweep) for one model: size sweep at batch 1, then the
    batch sweep (with the reference batch) at the reference size. The shared point is
    listed once."""
    sweep = spec.sweep
    ref_batch, ref_size = reference_shape(spec, ref, info)
    batches = sweep.text_batch_sizes if info.family == _TEXT else sweep.vision_batch_sizes
    batches = sorted(set(batches) | {ref_batch})
    points = [(1, s, "input_size") for s in sweep_sizes(spec, ref, info)]
    have = {(b, s) for b, s, _ in points}
    points += [(b, ref_size, "batch_size") for b in batches if (b, ref_size) not in have]
    if sweep.grid:  # the rest of the batch x size grid (the speedup heatmap's cells)
        have = {(b, s) for b, s, _ in points}
        points += [(b, s, "grid") for b in batches for s in sweep_sizes(spec, ref, info)
                   if (b, s) not in have]  # fmt: skip
    return points
