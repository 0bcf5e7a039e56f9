"""What a run keeps while it goes: its record, its cells, its exports, and what the
store lacks of them.

A :class:`Book` is one run being filled: the place it measures at (this machine, a node
of a cluster), its :class:`~quantbench.results.RunMeta`, its output directory, its cells
and the models left to measure. The lifecycle (:mod:`quantbench.runner.lifecycle`)
keeps one per run (a sweep has one per node) and calls these functions as models end:
:func:`keep_cells` stores a model's cells (and the earlier ones a failing store left
out, ``meta.unstored``), :func:`save_exports` rewrites ``results.json`` /
``results.csv``, :func:`finish_run` writes the final record.
"""

from __future__ import annotations

import datetime as _dt
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantbench.best import as_dict
from quantbench.errors import QuantbenchError, first_line
from quantbench.files import DiskFault
from quantbench.measure.metrics import csv_text
from quantbench.results import CellResult, RunMeta, atomic_write_text, write_json
from quantbench.runner.limits import recheck_ceilings
from quantbench.runner.pipeline import recipes_for, variants_for
from quantbench.runner.process import affinity
from quantbench.settings import ModelRef, RunSpec
from quantbench.shapes import ref_sizes, sweep_points
from quantbench.version import __version__


@dataclass
class RunResult:
    """What :func:`~quantbench.runner.run` made: the output directory, the run record,
    every cell, the report; and, as data (``runner.resultdata``): :meth:`best`,
    :meth:`summary`, :meth:`rows`, :meth:`to_dataframe`."""

    out_dir: Path
    run: RunMeta
    results: list[CellResult]
    report: Path | None = None
    interrupted: bool = False

    def best(self, model: str | None = None) -> Any:
        """The recommendation for ``model`` as a record (``quantbench.best.Recommendation``:
        ``fastest``, ``smallest``, ``speed`` verdict, ``candidates``, ``caveats``)."""
        from quantbench.runner.resultdata import best

        return best(self, model)

    def summary(self) -> str:
        """The lines ``quantbench run`` prints when it ends (the same function)."""
        from quantbench.runner.summary import summary_lines

        return "\n".join(summary_lines(self))

    def rows(self) -> list[dict[str, Any]]:
        """results.csv's rows as dicts: one per cell and measured point."""
        from quantbench.runner.resultdata import rows

        return rows(self)

    def to_dataframe(self) -> Any:
        """:meth:`rows` as a pandas DataFrame (pandas is optional: one clear error without)."""
        from quantbench.runner.resultdata import to_dataframe

        return to_dataframe(self)

    def __repr__(self) -> str:
        from quantbench.runner.resultdata import short_repr

        return short_repr(self)


@dataclass
class SweepResult:
    """What a sweep made: one :class:`RunResult` per node, all sharing ``sweep_id``."""

    sweep_id: str
    runs: list[RunResult]
    store: str
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        runs = ", ".join(repr(r.run.id) for r in self.runs)
        return f"SweepResult(sweep={self.sweep_id!r}, runs=[{runs}], store={self.store!r})"


@dataclass
class Book:
    """One run while it is filled: where it measures (an executor's
    :class:`~quantbench.runner.executors.Place`), its record, directory and cells, the
    cells it already holds (``done``) and the models left, numbered from 1 (``todo``)."""

    place: Any
    meta: RunMeta
    out_dir: Path
    results: list[CellResult]
    done: set[tuple[str, str]]
    todo: list[tuple[int, ModelRef]]

    @property
    def label(self) -> str | None:
        """The node a sweep's run measures on, what its lines start with (None: local)."""
        return self.meta.node or self.place.label


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    """``<date>-<time>-<6 hex>``: sorts by start time, unique."""
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def run_metadata(spec: RunSpec, run_id: str | None = None) -> RunMeta:
    """A new run's record, made where it measures: id, host, versions, settings; the
    results come later."""
    import torch

    from quantbench import env

    return RunMeta(
        id=run_id or new_run_id(),
        started_at=now(),
        status="running",
        quantbench_version=__version__,
        host={**env.host(), "ceilings": _ceilings(spec)},
        versions=env.versions(),
        engine=spec.target.engine,
        device=spec.target.device,
        threads=spec.timing.threads or torch.get_num_threads(),
        affinity=affinity(),
        pinned=spec.timing.pin,
        spec=spec.to_dict(),
    )


def _ceilings(spec: RunSpec) -> dict[str, Any] | None:
    """The machine's limits at the run's threads (``quantbench.measure.ceilings``), from
    the per-machine cache or measured once and cached; with latency on the CPU only."""
    if "latency" not in spec.judge.measure or spec.target.device != "cpu":
        return None
    from quantbench.measure.ceiling_cache import machine_ceilings

    try:
        return machine_ceilings(spec.timing.threads).to_dict()
    except Exception as e:  # no engine, no onnxruntime: the run goes on without a roofline
        return {"error": first_line(e)}


def count_steps(spec: RunSpec) -> int:
    """The progress bar's steps for one run of ``spec`` (what workers ``Advance``)."""
    from quantbench import models as zoo
    from quantbench.models.onnxfile import allowed_points

    n = 0
    for ref in spec.target.models:
        info = zoo.model_info(ref.load_name, ref.options)
        points = allowed_points(ref.load_name, ref.options, sweep_points(spec, ref, info))[0]
        n += 2 + (len(points) if "latency" in spec.judge.measure else 0)
    return n


def recommendations(spec: RunSpec, results: list[CellResult]) -> dict[str, Any]:
    """Per model: fastest and smallest variants that keep fidelity (see quantbench.best)."""
    from quantbench.best import recommend

    return recommend(
        results,
        ref_sizes=ref_sizes(spec),
        min_cosine=spec.judge.min_cosine,
        min_top1=spec.judge.min_top1,
    )


def model_spec(
    spec: RunSpec,
    ref: ModelRef,
    done: set[tuple[str, str]],
    out_dir: Path,
    threads: int | None = None,
) -> RunSpec | None:
    """The settings a worker measures ``ref`` with: only the recipes of its variants not
    in ``done`` (None when every one is stored), artifacts under ``out_dir``, at the
    run's ``threads`` (what its record and ceilings say) when the settings name none."""
    missing = [v for v in variants_for(spec) if (ref.name, v.name) not in done]
    if not missing:
        return None
    # Workers write artifacts into the run's directory, named even when --out was not;
    # a fresh worker's torch would pick its own thread count, not the one recorded.
    mspec = spec.replace(out=str(out_dir))
    if spec.timing.threads is None and threads:
        mspec = mspec.replace(threads=threads)
    if len(missing) < len(recipes_for(spec)):
        bases = list(dict.fromkeys(v.base for v in missing))
        mspec = mspec.replace(recipes=bases)
    return mspec


def begin(store: Any, meta: RunMeta) -> None:
    """Write the run's record as it starts (or starts again); one line when the store
    refuses it."""
    try:
        store.begin_run(meta.to_dict())
    except Exception as e:  # locked, read-only, gone away
        from quantbench.storefaults import store_fault

        why = store_fault(store, e)
        why = f": {why}" if why else f" to {store.label}: {first_line(e)}"
        raise QuantbenchError(f"cannot write run {meta.id}{why}") from None


def _store_cells(
    store: Any, meta: RunMeta, results: list[CellResult], cells: list[CellResult], prog: Any
) -> None:
    """Commit each finished cell, and first those an earlier failure of the store left
    out; a store that fails is reported and the cells it lacks are listed in
    ``meta.unstored`` (results.json has them all), the run goes on."""
    backlog = {tuple(k) for k in meta.unstored}
    todo = [c for c in results if (c.model, c.recipe) in backlog] + cells
    for i, cell in enumerate(todo):
        try:
            store.write_cells(meta.id, [cell])  # one transaction a cell, as before
        except Exception as e:  # gone away, locked, full: the rest of these wait too
            left = todo[i:]
            why = first_line(e, with_type=not isinstance(e, QuantbenchError))
            why = why.removeprefix(f"1 cell(s) not stored: {cell.model}/{cell.recipe}: ")
            meta.store_errors.append(why)
            meta.unstored = [[c.model, c.recipe] for c in left]
            prog.write(
                f"warning: {len(left)} cell(s) not stored in {store.label}: {why} "
                "(results.json has them)"
            )
            return
    meta.unstored = []


def keep_cells(store: Any, book: Book, cells: list[CellResult], prog: Any) -> list[CellResult]:
    """Store a model's cells the run does not hold yet and add them to its results; them."""
    cells = [c for c in cells if (c.model, c.recipe) not in book.done]
    _store_cells(store, book.meta, book.results, cells, prog)
    book.results.extend(cells)
    for c in cells:
        if c.weights:
            book.meta.weights[c.model] = c.weights
    return cells


def save_exports(out_dir: Path, meta: RunMeta, results: list[CellResult]) -> None:
    """Rewrite the run's ``results.json`` and ``results.csv``."""
    write_json(out_dir / "results.json", meta, results)
    atomic_write_text(out_dir / "results.csv", csv_text(results, meta))


def model_line(where: str, ref: ModelRef, seconds: float, cells: list[CellResult]) -> str:
    """The line a finished model prints: its time, and its first failure if any."""
    bad = [c for c in cells if c.status not in ("ok", "unsupported")]
    state = f"{len(bad)} cell(s) failed: {bad[0].error}" if bad else "ok"
    return f"{where} {ref.name}: {seconds:.0f} s, {state}"


def finish_run(store: Any, spec: RunSpec, book: Book, interrupted: bool, prog: Any) -> None:
    """The run's final record: status, recommendations; exports and store updated (the
    store even when the exports meet a full disk, which is raised after)."""
    meta, results = book.meta, book.results
    meta.finished_at = now()
    meta.status = "interrupted" if interrupted else "finished"
    meta.recommendations = as_dict(recommendations(spec, results))
    if not interrupted:
        above = recheck_ceilings(meta, results, spec)
        if above:
            prog.write(f"{', '.join(above)} ran above the machine's ceilings: measured them "
                       "again (they were low, most likely measured while the machine was busy)")  # fmt: skip
    if meta.unstored:  # the store came back: the cells it missed go in before the record
        _store_cells(store, meta, [c for c in results if [c.model, c.recipe] in meta.unstored],
                     [], prog)  # fmt: skip
    fault: DiskFault | None = None
    try:
        save_exports(book.out_dir, meta, results)
    except DiskFault as e:
        fault = e
    try:
        store.finish_run(meta.to_dict())
    except Exception as e:  # the exports above still hold everything
        meta.store_errors.append(first_line(e))
        meta.record_unstored = True
        save_exports(book.out_dir, meta, results)  # results.json says what the store lacks
        prog.write(f"warning: could not update run {meta.id} in {store.label}: {first_line(e)}")
    if fault is not None:
        raise fault
