"""Run an experiment: each model measured in a worker process of its own.

The parent validates the spec, starts one worker per model, collects its cells as they
finish, and rewrites ``results.json`` / ``results.csv`` after every model, so a crash,
a kill or Ctrl-C loses at most the model in flight. A worker that dies or overruns its
timeout leaves ``error`` / ``timeout`` cells with the reason; the run goes on.

Example::

    >>> from quantbench.spec import build_spec
    >>> from quantbench.runner import run
    >>> result = run(build_spec(overrides={"models": "resnet18", "measure": "size"}))
    >>> result.out_dir / "report.md"                           # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import signal
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantbench import __version__
from quantbench.best import as_dict
from quantbench.errors import QuantbenchError, first_line
from quantbench.files import DiskFault, remedy
from quantbench.results import CellResult, RunMeta, write_csv, write_json
from quantbench.runner.launcher import ModelFailed, ProgressBar, run_inline, run_isolated
from quantbench.runner.outdir import prepare_out_dir, reopen_out_dir
from quantbench.runner.pipeline import recipes_for, variants_for
from quantbench.runner.process import affinity, quiet_libraries
from quantbench.shapes import ref_sizes
from quantbench.spec import ModelRef, RunSpec, sweep_points

if TYPE_CHECKING:
    from quantbench.runner.ray_executor import SweepResult


@dataclass
class RunResult:
    """What :func:`run` made: the output directory, the run record, every cell, the report."""

    out_dir: Path
    run: RunMeta
    results: list[CellResult]
    report: Path | None = None
    interrupted: bool = False


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


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


def resume(
    run_id: str,
    store: str | None = None,
    progress: bool | None = None,
    retry_errors: bool = False,
    verbosity: int = 0,
    ray_address: str | None = None,
) -> RunResult | SweepResult:
    """Finish stored run ``run_id``: measure only the cells it lacks (and, with
    ``retry_errors``, those that ended in error or timeout). A sweep's id, or the id of
    one of its runs, resumes the whole sweep on its Ray cluster (``ray_address``: another
    address than the stored one)."""
    from quantbench.runner.sweeps import is_sweep_id
    from quantbench.spec import spec_from_dict
    from quantbench.store import open_store

    st = open_store(store, create=False)
    try:
        meta = None if is_sweep_id(run_id) else st.run_meta(run_id)
    finally:
        st.close()
    if meta is None or meta.get("sweep_id"):
        from quantbench.runner.ray_executor import resume_sweep

        sweep = run_id if meta is None else meta["sweep_id"]
        return resume_sweep(sweep, store=store, progress=progress, retry_errors=retry_errors,
                            verbosity=verbosity, ray_address=ray_address)  # fmt: skip
    if ray_address:
        raise QuantbenchError(f"--ray-address resumes a sweep; run {run_id} is not part of one")
    spec = spec_from_dict(meta.get("spec") or {})
    spec.store = store
    return run(
        spec, progress=progress, resume=run_id, retry_errors=retry_errors, verbosity=verbosity
    )


def new_run_id() -> str:
    """``<date>-<time>-<6 hex>``: sorts by start time, unique."""
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def run_metadata(spec: RunSpec, run_id: str | None = None) -> RunMeta:
    """A new run's record: id, host, versions, settings; the results come later."""
    import torch

    from quantbench import env

    return RunMeta(
        id=run_id or new_run_id(),
        started_at=_now(),
        status="running",
        quantbench_version=__version__,
        host={**env.host(), "ceilings": _ceilings(spec)},
        versions=env.versions(),
        engine=spec.engine,
        device=spec.device,
        threads=spec.threads or torch.get_num_threads(),
        affinity=affinity(),
        pinned=spec.pin,
        spec=spec.to_dict(),
    )


def _ceilings(spec: RunSpec) -> dict[str, Any] | None:
    """The machine's limits at the run's threads (``quantbench.measure.ceilings``), from
    the per-machine cache or measured once and cached; with latency only."""
    if "latency" not in spec.measure or spec.device != "cpu":
        return None
    from quantbench.measure.ceiling_cache import machine_ceilings

    try:
        return machine_ceilings(spec.threads).to_dict()
    except Exception as e:  # no engine, no onnxruntime: the run goes on without a roofline
        return {"error": first_line(e)}


def _count_steps(spec: RunSpec) -> int:
    from quantbench import models as zoo

    n = 0
    for ref in spec.models:
        info = zoo.model_info(ref.load_name)
        n += 2 + (len(sweep_points(spec, ref, info)) if "latency" in spec.measure else 0)
    return n


def recommendations(spec: RunSpec, results: list[CellResult]) -> dict[str, Any]:
    """Per model: fastest and smallest variants that keep fidelity (see quantbench.best)."""
    from quantbench.best import recommend

    return recommend(
        results,
        ref_sizes=ref_sizes(spec),
        min_cosine=spec.min_cosine,
        min_top1=spec.min_top1,
    )


def _reopen(
    store: Any,
    run_id: str,
    retry_errors: bool,
    held: ExitStack | None = None,
    redo: Callable[[Any, str], list[tuple[str, str]]] | None = None,
    run_locked: bool = False,
) -> tuple[Path, RunMeta, set[tuple[str, str]]]:
    """A stored run to complete: its directory, its record and the cells it holds (its
    ``error`` / ``timeout`` ones deleted first with ``retry_errors``, and those ``redo``
    names). ``held``: the stack that keeps the run (unless ``run_locked``: the caller
    holds it) and its directory locked (:mod:`quantbench.locks`) until it closes; what
    the run holds is read once they are."""
    meta = RunMeta.from_dict(store.run_meta(run_id))
    if held is not None and not run_locked:
        from quantbench.locks import lock_run

        held.enter_context(lock_run(store, run_id, f"quantbench run --resume {run_id}"))
    out_dir = reopen_out_dir(meta.out_dir, run_id, held)
    meta = RunMeta.from_dict(store.run_meta(run_id))  # as the last holder left it
    rows = store.cell_rows(run_id)
    again = [(r["model"], r["recipe"]) for r in rows
             if retry_errors and r["status"] in ("error", "timeout")]  # fmt: skip
    again += redo(store, run_id) if redo is not None else []
    if again:
        store.delete_cells(run_id, again)
    meta.status = "running"
    meta.resumed.append(_now())
    return out_dir, meta, {(r["model"], r["recipe"]) for r in rows} - set(again)


def run(
    spec: RunSpec,
    progress: bool | None = None,
    resume: str | None = None,
    retry_errors: bool = False,
    verbosity: int = 0,
) -> RunResult | SweepResult:
    """Run ``spec``: measure every model, store each finished cell, write the exports and
    the report; return them. ``resume``: the id of a stored run to complete (its cells
    already stored are skipped and left untouched; with ``retry_errors`` its ``error``
    and ``timeout`` cells are measured again and replaced). ``verbosity``: -1 quiet (only
    warnings), 0 normal, 1 a line per stage when there is no progress bar.

    With ``spec.executor == "ray"`` the models are measured on the nodes of a Ray cluster
    instead, one run per node under one sweep id: a
    :class:`~quantbench.runner.ray_executor.SweepResult` (Ray is imported only then)."""
    from quantbench.runner.guard import check_main_guard
    from quantbench.store import open_store

    if spec.executor == "ray":
        from quantbench.runner.ray_executor import run_sweep

        return run_sweep(spec, progress=progress, resume=resume, retry_errors=retry_errors,
                         verbosity=verbosity)  # fmt: skip
    if spec.isolate:  # workers re-import the calling script: it needs a __main__ guard
        check_main_guard("run")
    quiet_libraries()
    store = open_store(spec.store)
    with ExitStack() as held:  # the store closed, the locks released, however the run ends
        held.callback(store.close)
        out_dir, meta, results, interrupted = _run_in(
            store, spec, progress, resume, retry_errors, verbosity, held
        )
        from quantbench.report import render_report

        try:
            report = render_report(out_dir, meta.to_dict(), results)
        except DiskFault as e:
            raise DiskFault(
                f"{e}; every cell of run {meta.id} is stored in {store.label}: "
                f"'quantbench report {meta.id} --out DIR' writes its report elsewhere",
                e.path, e.errno,
            ) from None  # fmt: skip
    return RunResult(
        out_dir=out_dir, run=meta, results=results, report=report, interrupted=interrupted
    )


def _run_in(
    store: Any,
    spec: RunSpec,
    progress: bool | None,
    resume: str | None,
    retry_errors: bool,
    verbosity: int = 0,
    held: ExitStack | None = None,
) -> tuple[Path, RunMeta, list[CellResult], bool]:
    """:func:`run` with its store open: (out_dir, run record, cells, interrupted). A full
    disk (any :class:`~quantbench.files.DiskFault`) stops the run: what is stored stays,
    results.json keeps what it had, and the error says how to finish the run."""
    done: set[tuple[str, str]] = set()
    if resume:
        out_dir, meta, done = _reopen(store, resume, retry_errors, held)
    else:
        run_id = new_run_id()
        out_dir = prepare_out_dir(spec.out, held, f"quantbench run {run_id}")
        if held is not None:  # a resume elsewhere (a shared store) must wait for this run
            from quantbench.locks import lock_run

            held.enter_context(lock_run(store, run_id, f"quantbench run {run_id}"))
        meta = run_metadata(spec, run_id)
        meta.out_dir = str(out_dir)
    meta.store = store.label
    try:
        store.begin_run(meta.to_dict())
    except Exception as e:  # locked, read-only, gone away
        from quantbench.storefaults import store_fault

        why = store_fault(store, e)
        why = f": {why}" if why else f" to {store.label}: {first_line(e)}"
        raise QuantbenchError(f"cannot write run {meta.id}{why}") from None
    if progress is None:
        progress = sys.stderr.isatty()
    prog = ProgressBar(_count_steps(spec), progress, verbosity)
    results: list[CellResult] = store.cells(meta.id) if resume else []
    interrupted = False

    def save() -> None:
        save_exports(out_dir, meta, results)

    def on_term(signum: int, frame: Any) -> None:  # SIGTERM: stop like Ctrl-C, keep results
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        previous = None
    fault: DiskFault | None = None
    try:
        save()
        for i, ref in enumerate(spec.models, 1):
            mspec = model_spec(spec, ref, done, out_dir)
            if mspec is None:
                prog.write(f"[{i}/{len(spec.models)}] {ref.name}: already stored, skipped")
                continue
            t0 = time.perf_counter()
            try:
                runner = run_isolated if spec.isolate else run_inline
                cells = runner(mspec, ref, prog)
            except Exception as e:  # a failure is this model's cells, not the run's end
                tb = e.traceback if isinstance(e, ModelFailed) else None
                cells = failed_model_cells(mspec, ref, str(e) or type(e).__name__, tb)
            cells = keep_cells(store, meta, results, cells, done, prog)
            save()
            prog.write(
                model_line(f"[{i}/{len(spec.models)}]", ref, time.perf_counter() - t0, cells)
            )
    except KeyboardInterrupt:
        interrupted = True
        n_models = len({c.model for c in results})
        prog.write(
            f"interrupted: {len(results) - len(meta.unstored)} cells of {n_models} model(s) "
            f"are stored in {store.label} as run {meta.id}; finish it with "
            f"'quantbench run --resume {meta.id}'"
        )
    except DiskFault as e:  # the machine's fault: stop, keep what is measured
        fault = e
    finally:
        prog.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    try:
        finish_run(store, spec, meta, out_dir, results, interrupted or fault is not None, prog)
    except DiskFault as e:
        fault = fault or e
    if fault is not None:
        raise stopped_by(fault, store, meta.id)
    return out_dir, meta, results, interrupted


def stopped_by(fault: DiskFault, store: Any, run_id: str) -> DiskFault:
    """``fault`` said with what the stopped run kept and how to finish it."""
    try:
        kept = f"{len(store.cell_rows(run_id))} cell(s) of run {run_id} are stored in {store.label}"
    except Exception:  # the store is on the failing disk too
        kept = f"the cells of run {run_id} stored so far are in {store.label}"
    return DiskFault(
        f"{fault}; the run stopped: {kept} (results.json keeps what it had); {remedy(fault.errno)}, "
        f"then finish it with 'quantbench run --resume {run_id}'",
        fault.path, fault.errno,
    )  # fmt: skip


# ------------------------------------------------------------- shared with other executors
# (quantbench.runner.ray_executor measures the same models on the nodes of a Ray cluster)


def save_exports(out_dir: Path, meta: RunMeta, results: list[CellResult]) -> None:
    """Rewrite the run's ``results.json`` and ``results.csv``."""
    write_json(out_dir / "results.json", meta, results)
    write_csv(out_dir / "results.csv", results)


def model_spec(
    spec: RunSpec, ref: ModelRef, done: set[tuple[str, str]], out_dir: Path
) -> RunSpec | None:
    """The settings a worker measures ``ref`` with: only the recipes of its variants not
    in ``done`` (None when every one is stored), artifacts under ``out_dir``."""
    missing = [v for v in variants_for(spec) if (ref.name, v.name) not in done]
    if not missing:
        return None
    # Workers write artifacts into the run's directory, named even when --out was not.
    mspec = spec.model_copy(update={"out": str(out_dir)})
    if len(missing) < len(recipes_for(spec)):
        bases = list(dict.fromkeys(v.base for v in missing))
        mspec = mspec.model_copy(update={"recipes": bases})
    return mspec


def failed_model_cells(
    mspec: RunSpec, ref: ModelRef, error: str, traceback: str | None = None
) -> list[CellResult]:
    """Every variant's ``error`` cell for a model that failed before any cell was measured."""
    return [CellResult(model=ref.name, recipe=r, status="error", error=error,
                       details={"traceback": traceback} if traceback else {})
            for r in recipes_for(mspec)]  # fmt: skip


def keep_cells(
    store: Any,
    meta: RunMeta,
    results: list[CellResult],
    cells: list[CellResult],
    done: set[tuple[str, str]],
    prog: Any,
) -> list[CellResult]:
    """Store a model's cells not already in ``done`` and add them to ``results``; them."""
    cells = [c for c in cells if (c.model, c.recipe) not in done]
    _store_cells(store, meta, results, cells, prog)
    results.extend(cells)
    for c in cells:
        if c.weights:
            meta.weights[c.model] = c.weights
    return cells


def model_line(where: str, ref: ModelRef, seconds: float, cells: list[CellResult]) -> str:
    """The line a finished model prints: its time, and its first failure if any."""
    bad = [c for c in cells if c.status not in ("ok", "unsupported")]
    state = f"{len(bad)} cell(s) failed: {bad[0].error}" if bad else "ok"
    return f"{where} {ref.name}: {seconds:.0f} s, {state}"


def finish_run(
    store: Any,
    spec: RunSpec,
    meta: RunMeta,
    out_dir: Path,
    results: list[CellResult],
    interrupted: bool,
    prog: Any,
) -> None:
    """The run's final record: status, recommendations; exports and store updated (the
    store even when the exports meet a full disk, which is raised after)."""
    meta.finished_at = _now()
    meta.status = "interrupted" if interrupted else "finished"
    meta.recommendations = as_dict(recommendations(spec, results))
    if meta.unstored:  # the store came back: the cells it missed go in before the record
        _store_cells(store, meta, [c for c in results if [c.model, c.recipe] in meta.unstored],
                     [], prog)  # fmt: skip
    fault: DiskFault | None = None
    try:
        save_exports(out_dir, meta, results)
    except DiskFault as e:
        fault = e
    try:
        store.finish_run(meta.to_dict())
    except Exception as e:  # the exports above still hold everything
        meta.store_errors.append(first_line(e))
        meta.record_unstored = True
        save_exports(out_dir, meta, results)  # results.json says what the store lacks
        prog.write(f"warning: could not update run {meta.id} in {store.label}: {first_line(e)}")
    if fault is not None:
        raise fault
