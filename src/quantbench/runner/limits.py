"""The ``limits`` stage, after timing: what the roofline needs of each variant at the
reference shape, and where its time goes (``profile``: off, at the reference shape, or
at every point of the sweeps).

It runs apart from the timing stage because profiling perturbs timings. Per variant it
records, in the cell's ``details``:

- ``roofline``: the :class:`~quantbench.measure.roofline.Work` of one forward pass at
  the reference shape (FLOPs counted on fp32, the part run in low precision, weight and
  activation bytes). The report places it under the run's ceilings.
- ``profile``: a list of :class:`~quantbench.measure.profile.Breakdown` (one per point
  profiled), from the variant's runtime's profiler.

A variant that cannot be counted or profiled gets a note; nothing here fails a cell.
"""

from __future__ import annotations

from typing import Any

from quantbench.errors import first_line
from quantbench.variants import BASELINE


def weight_bytes(cell: Any, art: Any) -> int:
    """Bytes of the variant's weights: its tensors by dtype where recorded, else its
    module's parameters and buffers, else its file."""
    if cell.param_bytes_by_dtype:
        return int(sum(cell.param_bytes_by_dtype.values()))
    module = art.module
    if hasattr(module, "parameters") and hasattr(module, "buffers"):
        tensors = [*module.parameters(), *module.buffers()]
        if tensors:
            return int(sum(t.numel() * t.element_size() for t in tensors))
    return int(art.size_bytes or cell.size_bytes or 0)


def points_to_profile(run: Any, mode: str) -> list[tuple[int, int]]:
    """(batch, size) of the points ``mode`` profiles; the reference shape first."""
    from quantbench import models as zoo
    from quantbench.shapes import reference_shape, sweep_points

    lm = run.lm
    info = zoo.ModelInfo(run.name, lm.family, lm.max_input_size, lm.description)
    ref = reference_shape(run.spec, run.ref, info)
    if mode != "all":
        return [ref]
    return [ref] + [(b, s) for b, s, _ in sweep_points(run.spec, run.ref, info) if (b, s) != ref]


def limits(run: Any) -> None:
    """Count each variant's work at the reference shape and profile it where ``profile``
    says (a ``ModelRun`` of ``runner.pipeline``, after its latency stage)."""
    from quantbench.runner.messages import Progress

    spec = run.spec
    fp32 = next((a for v, a in run.arts.items() if v.name == BASELINE), None)
    if "latency" not in spec.judge.measure or fp32 is None or not run.arts:
        return
    if spec.target.device != "cpu":  # the ceilings and profilers are the CPU's
        return
    mode = spec.timing.profile
    for i, (b, s) in enumerate(points_to_profile(run, mode)):
        inputs = run.lm.make_inputs(b, s, seed=11)
        if i == 0:
            run.emit(Progress(f"{run.name}: counting work for the roofline"))
            _count(run, fp32, inputs)
        if mode != "off":
            run.emit(Progress(f"{run.name}: profiling b={b} size={s}"))
            _profile(run, inputs, b, s)
    run.snapshot()


def _count(run: Any, fp32: Any, inputs: tuple) -> None:
    from quantbench.measure.roofline import compute_precision, count_work, flops_by_module

    try:
        module_flops = flops_by_module(fp32.module, inputs)
    except Exception as e:  # a model the FLOP counter cannot trace: no roofline
        for cell in run.cells.values():
            cell.notes.append(f"no roofline: FLOPs not counted ({first_line(e)})")
        return
    for v, art in run.arts.items():
        cell = run.cells[v]
        recipe = run.recipe(v)
        try:
            work = count_work(
                fp32.module, inputs, variant=art.module,
                precision=compute_precision(recipe.precision), quantizes=recipe.quantizes,
                float_layers=cell.details.get("float_layers") or (),
                weight_bytes=weight_bytes(cell, art), module_flops=module_flops,
            )  # fmt: skip
        except Exception as e:
            cell.notes.append(f"no roofline: {first_line(e)}")
            continue
        cell.details["roofline"] = work.to_dict()


def _profile(run: Any, inputs: tuple, b: int, s: int) -> None:
    from quantbench.measure.profile import breakdown

    for v, art in run.arts.items():
        cell = run.cells[v]
        try:
            found = breakdown(art.runtime or cell.runtime, art.module, inputs)
        except Exception as e:
            cell.notes.append(f"not profiled at batch {b}, size {s}: {first_line(e)}")
            continue
        if found is None:
            cell.notes.append(f"not profiled: no profiler for runtime {art.runtime}")
            continue
        cell.details.setdefault("profile", []).append(found.to_dict())


def recheck_ceilings(meta: Any, results: list[Any], spec: Any) -> list[str]:
    """Variants above the run's ceilings by more than the noise say the ceilings were
    measured low (on a busy machine, most often): measure them again on this machine,
    keep the best of both (cached) and record that on the run. Returns the variants that
    were above ("model · recipe"; empty: nothing was done). A run measured elsewhere (a
    sweep's node, a resume on another machine) keeps its record as it is."""
    from quantbench.measure.ceiling_cache import machine_ceilings, stored_fingerprint
    from quantbench.report.limits import limits
    from quantbench.shapes import ref_sizes

    try:
        found = limits(meta.to_dict(), results, ref_sizes(spec))
    except Exception:  # a record the analysis cannot read: the run ends as it is
        return []
    if found is None or found.ceilings is None or not found.above or meta.node:
        return []
    threads = found.ceilings.threads
    if found.ceilings.fingerprint != stored_fingerprint(threads):
        return []
    try:
        meta.host["ceilings"] = machine_ceilings(threads, refresh=True).to_dict()
    except Exception:  # the first measurement stands; the report flags the variants
        return []
    return [f"{r.cell.model} · {r.cell.recipe}" for r in found.above]
