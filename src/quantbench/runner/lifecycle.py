"""The run's lifecycle: one for every executor, for a new run and a resumed one.

1. **Open.** The executor gets ready (:mod:`quantbench.runner.executors`: a cluster is
   joined, with a deadline, before a new run's store is opened, so that a refused
   connection leaves no store file behind); the store is opened.
2. **Begin.** A new run per place the executor offers (this machine; each selected node
   of a cluster, under one sweep id): its output directory prepared and locked, the run
   locked in the store, its record begun. A resume locks every stored run first, before
   anything else is reached, then reopens each on the place that resumes it: what it
   holds is kept, its ``error`` / ``timeout`` cells (``--retry-errors``) and those the
   executor lost are deleted to be measured again.
3. **Dispatch.** A model at a time per run, through the executor; each model's messages
   go to a :class:`~quantbench.runner.collector.Collector`, its cells are stored as it
   ends (a store that fails leaves them in ``results.json``, listed in
   ``meta.unstored``, and the run goes on) and the exports rewritten, so a crash, a kill
   or Ctrl-C loses at most the models in flight.
4. **Stop.** Ctrl-C or SIGTERM cancels the models in flight and prints the resume
   command; a full disk (:class:`~quantbench.files.DiskFault`) stops the run, keeps what
   is stored and says how to finish it.
5. **Finish.** Each run's final record (status, recommendations) into the exports and
   the store, then its report.

Example::

    >>> from quantbench.runner.checks import build_spec
    >>> result = run(build_spec(overrides={"models": "resnet18", "measure": "size"}))
    >>> result.out_dir / "report.md"                           # doctest: +SKIP
"""

from __future__ import annotations

import re
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from quantbench.errors import QuantbenchError
from quantbench.files import DiskFault, remedy
from quantbench.locks import lock_run
from quantbench.outdir import prepare_out_dir, reopen_out_dir
from quantbench.results import RunMeta
from quantbench.runner.books import (
    Book,
    RunResult,
    SweepResult,
    begin,
    count_steps,
    finish_run,
    keep_cells,
    model_line,
    model_spec,
    now,
    save_exports,
)
from quantbench.runner.collector import Collector
from quantbench.runner.executors import Executor, Job, get_executor
from quantbench.runner.messages import Failed
from quantbench.runner.progress import ProgressBar
from quantbench.runner.sweeps import is_sweep_id, new_sweep_id
from quantbench.settings import RunSpec, default_out_dir


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
    instead, one run per node under one sweep id: a :class:`SweepResult` (Ray is
    imported only then)."""
    if resume:
        return _resume(resume, spec.output.store, progress, retry_errors, verbosity,
                       spec.launch.ray_address, spec)  # fmt: skip
    from quantbench.store import open_store

    executor = get_executor(spec)
    executor.open()
    with ExitStack() as held:  # the store closed, the locks released, however the run ends
        held.callback(executor.close)
        store = open_store(spec.output.store)
        held.callback(store.close)
        sweep_id = new_sweep_id() if executor.sweep else None
        books = _begin_new(spec, executor, store, held, sweep_id)
        return _carry(spec, executor, store, books, sweep_id, progress, verbosity)


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
    one of its runs, resumes the whole sweep, each run on its own node (``ray_address``:
    another address of the cluster than the stored one)."""
    return _resume(run_id, store, progress, retry_errors, verbosity, ray_address)


def _resume(
    run_id: str,
    store_url: str | None,
    progress: bool | None,
    retry_errors: bool,
    verbosity: int,
    ray_address: str | None,
    spec: RunSpec | None = None,
) -> RunResult | SweepResult:
    """:func:`resume` (``spec``: the settings to finish it with; default: the stored ones)."""
    from quantbench.runner.checks import spec_from_dict
    from quantbench.store import open_store

    store = open_store(store_url, create=False)
    with ExitStack() as held:
        held.callback(store.close)
        runs = _stored_runs(store, run_id)
        sweep_id = runs[0].get("sweep_id")
        if ray_address and not sweep_id:
            raise QuantbenchError(f"--ray-address resumes a sweep; run {run_id} is not part of one")
        for r in runs:  # all of them, before a cluster is reached: one resume at a time
            what = f"quantbench run --resume {sweep_id or run_id}"
            held.enter_context(lock_run(store, r["id"], what))
        spec = spec or spec_from_dict(runs[0].get("spec") or {})
        spec.output.store = store_url
        if ray_address:
            spec = spec.replace(ray_address=ray_address)
        executor = get_executor(spec)
        executor.open()
        held.callback(executor.close)
        books = []
        for r_id, place in executor.match(runs).items():
            if place is None:  # the executor said why
                continue
            out_dir, meta, done = _reopen(store, r_id, retry_errors, held, executor)
            meta.store = store.label
            executor.reopened(meta, place)
            begin(store, meta)
            todo = list(enumerate(spec.target.models, 1))
            books.append(Book(place, meta, out_dir, store.cells(meta.id), done, todo))
        return _carry(spec, executor, store, books, sweep_id, progress, verbosity)


def _stored_runs(store: Any, run_id: str) -> list[dict[str, Any]]:
    """The records of what ``run_id`` resumes: that run, or every run of its sweep (a
    sweep's id, or the id of one of its runs)."""
    meta = None if is_sweep_id(run_id) else store.run_meta(run_id)
    if meta is None or meta.get("sweep_id"):
        return store.sweep_runs(run_id if meta is None else meta["sweep_id"])
    return [meta]


def _begin_new(
    spec: RunSpec, executor: Executor, store: Any, held: ExitStack, sweep_id: str | None
) -> list[Book]:
    """A new run per place: its directory prepared, the run locked and begun. A sweep's
    runs go to ``--out/<node>``."""
    root = Path(spec.output.out) if spec.output.out else default_out_dir()
    books = []
    for place, meta in executor.records(executor.places()):
        what = f"quantbench run {meta.id}" + (f" (sweep {sweep_id})" if sweep_id else "")
        out = (
            root / re.sub(r"[^A-Za-z0-9_.\-]+", "-", str(place.label))
            if sweep_id
            else spec.output.out
        )
        out_dir = prepare_out_dir(out, held, what)
        # A resume elsewhere (a shared store) must wait for this run.
        held.enter_context(lock_run(store, meta.id, what))
        meta.sweep_id = sweep_id
        meta.out_dir, meta.store = str(out_dir), store.label
        begin(store, meta)
        books.append(Book(place, meta, out_dir, [], set(), list(enumerate(spec.target.models, 1))))
    if not books:
        raise QuantbenchError("no node could start the sweep (see the warnings above)")
    return books


def _reopen(
    store: Any, run_id: str, retry_errors: bool, held: ExitStack, executor: Executor
) -> tuple[Path, RunMeta, set[tuple[str, str]]]:
    """A stored run (locked already) to complete: its directory (locked until ``held``
    closes), its record as the last holder left it, and the cells it keeps (its
    ``error`` / ``timeout`` ones deleted first with ``retry_errors``, and those the
    executor would measure again)."""
    meta = RunMeta.from_dict(store.run_meta(run_id))
    out_dir = reopen_out_dir(meta.out_dir, run_id, held)
    meta = RunMeta.from_dict(store.run_meta(run_id))  # as the last holder left it
    rows = store.cell_rows(run_id)
    again = [(r["model"], r["recipe"]) for r in rows
             if retry_errors and r["status"] in ("error", "timeout")]  # fmt: skip
    again += executor.redo(store, run_id)
    if again:
        store.delete_cells(run_id, again)
    meta.status = "running"
    meta.resumed.append(now())
    return out_dir, meta, {(r["model"], r["recipe"]) for r in rows} - set(again)


def _carry(
    spec: RunSpec,
    executor: Executor,
    store: Any,
    books: list[Book],
    sweep_id: str | None,
    progress: bool | None,
    verbosity: int,
) -> RunResult | SweepResult:
    """Measure every run's models, finish the runs, write their reports."""
    if progress is None:
        progress = sys.stderr.isatty()
    prog = ProgressBar(count_steps(spec) * len(books), progress, verbosity)
    interrupted, fault = _dispatch(spec, executor, store, books, prog, sweep_id)
    for book in books:
        try:
            finish_run(store, spec, book, interrupted or fault is not None, prog)
        except DiskFault as e:
            fault = fault or e
    if fault is not None:
        raise _stopped_by(fault, store, books, sweep_id)
    executor.close()
    runs = [RunResult(b.out_dir, b.meta, b.results, _report(store, b), interrupted) for b in books]
    if sweep_id is None:
        return runs[0]
    return SweepResult(sweep_id, runs, store.label, interrupted, executor.warnings)


def _dispatch(
    spec: RunSpec,
    executor: Executor,
    store: Any,
    books: list[Book],
    prog: ProgressBar,
    sweep_id: str | None,
) -> tuple[bool, DiskFault | None]:
    """Measure each run's models, one at a time per run, all runs at once; keep each
    model's cells as it ends. (interrupted, the disk fault that stopped it)."""
    inflight: dict[Job, tuple[Book, Collector, str, Any, float]] = {}
    n_models = len(spec.target.models)

    def start(book: Book) -> None:  # the run's next model not stored yet
        while book.todo:
            i, ref = book.todo.pop(0)
            where = f"{book.label} [{i}/{n_models}]" if book.label else f"[{i}/{n_models}]"
            mspec = model_spec(spec, ref, book.done, book.out_dir, book.meta.threads)
            if mspec is None:
                prog.write(f"{where} {ref.name}: already stored, skipped")
                continue
            col = Collector(prog, mspec, ref, book.label)
            t0 = time.perf_counter()
            try:
                job = executor.start(book.place, mspec, ref, col.handle)
            except Exception as e:  # a failure is this model's cells, not the run's end
                job = Job(col.handle)
                job.send(Failed(str(e) or type(e).__name__))
            inflight[job] = (book, col, where, ref, t0)
            return

    def cancel() -> None:
        executor.cancel(list(inflight))
        inflight.clear()

    def on_term(signum: int, frame: Any) -> None:  # SIGTERM: stop like Ctrl-C, keep results
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        previous = None
    interrupted, fault = False, None
    try:
        for book in books:
            save_exports(book.out_dir, book.meta, book.results)
        for book in books:
            start(book)
        while inflight:
            for job in [j for j in inflight if j.ended] or executor.wait(list(inflight)):
                book, col, where, ref, t0 = inflight.pop(job)
                cells = keep_cells(store, book, col.cells or [], prog)
                save_exports(book.out_dir, book.meta, book.results)
                prog.write(model_line(where, ref, time.perf_counter() - t0, cells))
                start(book)
    except KeyboardInterrupt:
        interrupted = True
        cancel()
        prog.write(_interrupted(store, books, sweep_id))
    except DiskFault as e:  # the machine's fault: stop, keep what is measured
        fault = e
    finally:
        cancel()
        prog.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return interrupted, fault


def _interrupted(store: Any, books: list[Book], sweep_id: str | None) -> str:
    """What an interrupted run kept, and the command that finishes it."""
    stored = sum(len(b.results) - len(b.meta.unstored) for b in books)
    if sweep_id is not None:
        return (f"interrupted: {stored} cells of {len(books)} run(s) are stored in "
                f"{store.label} as sweep {sweep_id}; finish it with "
                f"'quantbench run --resume {sweep_id}'")  # fmt: skip
    meta = books[0].meta
    n_models = len({c.model for c in books[0].results})
    return (f"interrupted: {stored} cells of {n_models} model(s) are stored in {store.label} "
            f"as run {meta.id}; finish it with 'quantbench run --resume {meta.id}'")  # fmt: skip


def _stopped_by(fault: DiskFault, store: Any, books: list[Book], sweep_id: str | None) -> DiskFault:
    """``fault`` said with what the stopped run (or sweep) kept and how to finish it."""
    what, ident = ("sweep", sweep_id) if sweep_id else ("run", books[0].meta.id)
    try:
        n = sum(len(store.cell_rows(b.meta.id)) for b in books)
        kept = f"{n} cell(s) of {what} {ident} are stored in {store.label}"
    except Exception:  # the store is on the failing disk too
        kept = f"the cells of {what} {ident} stored so far are in {store.label}"
    return DiskFault(
        f"{fault}; the {what} stopped: {kept} (results.json keeps what it had); "
        f"{remedy(fault.errno)}, then finish it with 'quantbench run --resume {ident}'",
        fault.path, fault.errno,
    )  # fmt: skip


def _report(store: Any, book: Book) -> Path | None:
    """The run's report; a full disk says where its cells are and how to write it."""
    from quantbench.report import render_report

    meta = book.meta
    try:
        return render_report(book.out_dir, meta.to_dict(), book.results)
    except DiskFault as e:
        raise DiskFault(
            f"{e}; every cell of run {meta.id} is stored in {store.label}: "
            f"'quantbench report {meta.id} --out DIR' writes its report elsewhere",
            e.path, e.errno,
        ) from None  # fmt: skip
