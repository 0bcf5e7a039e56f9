"""A sweep across the machines of a Ray cluster: ``quantbench run --executor ray``.

The driver (this process) connects to the cluster, probes every alive node with a tiny
task pinned to it (its machine fingerprint), keeps the nodes ``--on`` selects
(:mod:`quantbench.runner.sweeps`), and gives each one run of its own: the same models
and recipes, its own run id and fingerprint, one ``sweep_id`` shared by all. Each
model is one Ray task (:func:`quantbench.runner.ray_node.measure`) pinned to its node
with ``NodeAffinitySchedulingStrategy(soft=False)``; a node runs one model at a time
and the task reserves all of the node's CPUs (and GPUs), so no other Ray task, and no
other quantbench task, shares the machine while it measures. On the node the model is
measured as locally: in a spawned worker with the run's threads and pinning, its
timeout enforced there.

Cells are written into the driver's ``--store`` as each model finishes on each node. A
node that dies, or a task that is killed, leaves that model's cells as ``error`` cells
saying so (``ray node died: ...``), marked ``details["lost"]``; the other nodes go on.
``quantbench run --resume SWEEP_ID`` measures again what is missing or lost, on the same
node, or on the node that replaced it (same machine, started the same way).

Ray is imported only here, only when ``--executor ray`` is given.
"""

from __future__ import annotations

import re
import signal
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantbench.errors import QuantbenchError, first_line
from quantbench.locks import lock_run
from quantbench.redact import remember_url
from quantbench.results import CellResult, RunMeta
from quantbench.runner import ray_node
from quantbench.runner.launcher import ProgressBar, error_cells
from quantbench.runner.messages import Advance, Done, Failed, Progress, Snapshot
from quantbench.runner.orchestrate import (
    RunResult,
    _count_steps,
    _reopen,
    failed_model_cells,
    finish_run,
    keep_cells,
    model_line,
    model_spec,
    save_exports,
)  # fmt: skip
from quantbench.runner.outdir import prepare_out_dir
from quantbench.runner.ray_connect import connect as _connect
from quantbench.runner.ray_connect import import_ray as _import_ray
from quantbench.runner.sweeps import Node, labels, match_runs, new_sweep_id, select, shared_machines
from quantbench.settings import ModelRef, RunSpec, default_out_dir
from quantbench.version import __version__

PROBE_TIMEOUT_S = 120.0


@dataclass
class SweepResult:
    """What a sweep made: one :class:`RunResult` per node, all sharing ``sweep_id``."""

    sweep_id: str
    runs: list[RunResult]
    store: str
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass
class _NodeRun:
    """One node's run while the sweep goes on."""

    node: Node
    meta: RunMeta
    out_dir: Path
    results: list[CellResult]
    done: set[tuple[str, str]]
    todo: list[tuple[int, ModelRef]]
    current: tuple[str, ModelRef, RunSpec, float] | None = None  # where, ref, mspec, t0
    partial: dict[str, CellResult] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.meta.node or self.node.hostname


def _pinned(ray: Any, node: Node, reserve: bool) -> dict[str, Any]:
    """Ray options that run a task on ``node`` only, holding all its CPUs and GPUs when
    ``reserve`` (a measurement), none for a probe."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    opts: dict[str, Any] = {
        "scheduling_strategy": NodeAffinitySchedulingStrategy(node.node_id, soft=False),
        "max_retries": 0,  # a task lost with its node is reported, not run elsewhere
        "num_cpus": 0,
    }
    if reserve:
        for key, res in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
            n = node.resources.get(res, 0)
            opts[key] = int(n) if float(n).is_integer() else n
    return opts


def probe_nodes(ray: Any) -> list[Node]:
    """Every alive node, with the fingerprint its probe task returned (or why it failed)."""
    probe = ray.remote(ray_node.probe)
    nodes = [Node(n["NodeID"], n.get("NodeManagerAddress", "?"), dict(n.get("Resources") or {}),
                  dict(n.get("Labels") or {})) for n in ray.nodes() if n.get("Alive")]  # fmt: skip
    refs = {probe.options(**_pinned(ray, n, reserve=False)).remote(): n for n in nodes}
    ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=PROBE_TIMEOUT_S)
    for ref in late:
        refs[ref].error = f"no answer to its probe in {PROBE_TIMEOUT_S:g} s"
        ray.cancel(ref, force=True)
    for ref in ready:
        try:
            found = ray.get(ref)
        except ray.exceptions.RayError as e:
            refs[ref].error = _cause(e)
            continue
        refs[ref].host = found["host"]
        if found["quantbench_version"] != __version__:
            refs[ref].error = (f"quantbench {found['quantbench_version']} there, "
                               f"{__version__} here")  # fmt: skip
    return nodes


def _usable(ray: Any, warnings: list[str]) -> list[Node]:
    """:func:`probe_nodes`, warning about each node quantbench cannot run on."""
    nodes = probe_nodes(ray)
    for n in nodes:
        if n.error:
            _warn(f"node {n.describe()} left out: {n.error}", warnings)
    return nodes


def _cause(e: Exception) -> str:
    """A Ray error in one line: the node's own exception where there is one."""
    cause = getattr(e, "cause", None)
    return first_line(cause if isinstance(cause, BaseException) else e)


def _failure(ray: Any, e: Exception, label: str) -> str:
    """Why a model's task ended without its cells, for its cells' ``error``."""
    ex = ray.exceptions
    if isinstance(e, (ex.NodeDiedError, ex.LocalRayletDiedError)):
        return f"ray node died: {label} is dead or unreachable"
    if isinstance(e, ex.WorkerCrashedError):
        return f"ray worker died: the task measuring on {label} was killed"
    if isinstance(e, ex.OutOfMemoryError):
        return f"ray killed the task on {label}: the node ran out of memory"
    if isinstance(e, ex.TaskCancelledError):
        return f"ray task cancelled on {label}"
    return f"ray task failed on {label}: {_cause(e)}"


def _warn(text: str, warnings: list[str]) -> None:
    warnings.append(text)
    print(f"warning: {text}", file=sys.stderr, flush=True)


def _dir_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]+", "-", label)


def run_sweep(
    spec: RunSpec,
    progress: bool | None = None,
    resume: str | None = None,
    retry_errors: bool = False,
    verbosity: int = 0,
) -> SweepResult:
    """Measure ``spec`` on every node of the Ray cluster it selects, one run per node
    under a new sweep id (``resume``: a stored sweep's id to finish instead)."""
    from quantbench.store import open_store

    if resume:
        return resume_sweep(resume, store=spec.output.store, progress=progress,
                            retry_errors=retry_errors, verbosity=verbosity,
                            ray_address=spec.launch.ray_address)  # fmt: skip
    ray = _import_ray()
    root = Path(spec.output.out) if spec.output.out else default_out_dir()
    warnings: list[str] = []
    remember_url(spec.output.store)  # before Ray records our command line
    # The cluster first: a refused connection leaves no new store file behind.
    owned = _connect(ray, spec.launch.ray_address)
    store = None
    held = ExitStack()  # each node's output directory, locked until its report is written
    try:
        store = open_store(spec.output.store)
        chosen = select(_usable(ray, warnings), spec.launch.on)
        for group in shared_machines(chosen):
            _warn(f"nodes {', '.join(n.node_id[:8] for n in group)} are one machine "
                  f"({group[0].hostname}): their timings share its CPUs", warnings)  # fmt: skip
        names = labels(chosen)
        describe = ray.remote(ray_node.describe)
        refs = {n.node_id: describe.options(**_pinned(ray, n, True)).remote(spec.to_dict())
                for n in chosen}  # fmt: skip
        sweep_id = new_sweep_id()
        books = []
        for n in chosen:
            try:
                meta = RunMeta.from_dict(ray.get(refs[n.node_id]))
            except ray.exceptions.RayError as e:
                _warn(f"node {names[n.node_id]} left out: {_failure(ray, e, names[n.node_id])}",
                      warnings)  # fmt: skip
                continue
            what = f"quantbench run {meta.id} (sweep {sweep_id})"
            out_dir = prepare_out_dir(root / _dir_name(names[n.node_id]), held, what)
            held.enter_context(lock_run(store, meta.id, what))
            meta.spec = spec.to_dict()  # as given: each node resolves its engine again
            meta.sweep_id, meta.node, meta.ray_node = sweep_id, names[n.node_id], n.record()
            meta.out_dir, meta.store = str(out_dir), store.label
            _begin(store, meta)
            todo = list(enumerate(spec.target.models, 1))
            books.append(_NodeRun(n, meta, out_dir, [], set(), todo))
        if not books:
            raise QuantbenchError("no node could start the sweep (see the warnings above)")
        interrupted = _measure(ray, spec, store, books, progress, verbosity, sweep_id)
    except BaseException:
        held.close()
        raise
    finally:
        if store is not None:
            store.close()
        if owned:
            ray.shutdown()
    with held:
        return _result(sweep_id, books, store.label, interrupted, warnings)


def resume_sweep(
    sweep_id: str,
    store: str | None = None,
    progress: bool | None = None,
    retry_errors: bool = False,
    verbosity: int = 0,
    ray_address: str | None = None,
) -> SweepResult:
    """Finish stored sweep ``sweep_id``: on each run's node (the same Ray node, or the
    same machine started again), measure the cells it lacks or lost to Ray (and with
    ``retry_errors`` those that ended in error or timeout)."""
    from quantbench.runner.checks import spec_from_dict
    from quantbench.store import open_store

    ray = _import_ray()
    warnings: list[str] = []
    remember_url(store)  # before Ray records our command line
    st = open_store(store, create=False)
    owned = False
    held = ExitStack()  # each run, and its output directory, locked until its report is written
    try:
        runs = st.sweep_runs(sweep_id)
        for r in runs:  # all of them, before Ray is reached: one resume of a sweep at a time
            held.enter_context(lock_run(st, r["id"], f"quantbench run --resume {sweep_id}"))
        spec = spec_from_dict(runs[0].get("spec") or {})
        spec.output.store = store
        owned = _connect(ray, ray_address or spec.launch.ray_address)
        where = match_runs(runs, _usable(ray, warnings))
        books = []
        for r in runs:
            node = where[r["id"]]
            if node is None:
                _warn(f"run {r['id']} ({r.get('node')}): no alive node is its machine; its "
                      "missing cells stay missing (start that node again and resume)",
                      warnings)  # fmt: skip
                continue
            out_dir, meta, done = _reopen(st, r["id"], retry_errors, held, _lost_cells, True)
            meta.store, meta.ray_node = st.label, node.record()
            _begin(st, meta)
            todo = list(enumerate(spec.target.models, 1))
            books.append(_NodeRun(node, meta, out_dir, st.cells(meta.id), done, todo))
        interrupted = _measure(ray, spec, st, books, progress, verbosity, sweep_id)
    except BaseException:
        held.close()
        raise
    finally:
        st.close()
        if owned:
            ray.shutdown()
    with held:
        return _result(sweep_id, books, st.label, interrupted, warnings)


def _lost_cells(store: Any, run_id: str) -> list[tuple[str, str]]:
    """The cells of ``run_id`` that Ray lost: measured again by a resumed sweep."""
    return [(c.model, c.recipe) for c in store.cells(run_id) if c.details.get("lost")]


def _begin(store: Any, meta: RunMeta) -> None:
    try:
        store.begin_run(meta.to_dict())
    except Exception as e:  # locked, read-only, gone away
        from quantbench.storefaults import store_fault

        why = store_fault(store, e)
        why = f": {why}" if why else f" to {store.label}: {first_line(e)}"
        raise QuantbenchError(f"cannot write run {meta.id}{why}") from None


def _result(
    sweep_id: str, books: list[_NodeRun], store: str, interrupted: bool, warnings: list[str]
) -> SweepResult:
    """Each run's report (read from its cells, as a local run's), and the sweep."""
    from quantbench.report import render_report

    runs = []
    for b in books:
        report = render_report(b.out_dir, b.meta.to_dict(), b.results)
        runs.append(RunResult(b.out_dir, b.meta, b.results, report, interrupted))
    return SweepResult(sweep_id, runs, store, interrupted, warnings)


def _measure(
    ray: Any,
    spec: RunSpec,
    store: Any,
    books: list[_NodeRun],
    progress: bool | None,
    verbosity: int,
    sweep_id: str,
) -> bool:
    """Measure every node's models, one at a time per node, all nodes at once; store
    each model's cells as it finishes. Whether the sweep was interrupted."""
    if progress is None:
        progress = sys.stderr.isatty()
    prog = ProgressBar(_count_steps(spec) * len(books), progress, verbosity)
    measure = ray.remote(ray_node.measure)
    inflight: dict[Any, _NodeRun] = {}
    n_models = len(spec.target.models)

    def start(b: _NodeRun) -> None:
        while b.todo:
            i, ref = b.todo.pop(0)
            where = f"{b.label} [{i}/{n_models}]"
            mspec = model_spec(spec, ref, b.done, b.out_dir)
            if mspec is None:
                prog.write(f"{where} {ref.name}: already stored, skipped")
                continue
            opts = _pinned(ray, b.node, reserve=True)
            gen = measure.options(**opts, name=f"quantbench {ref.name}").remote(
                mspec.to_dict(), ref.model_dump()
            )
            b.current, b.partial = (where, ref, mspec, time.perf_counter()), {}
            inflight[gen] = b
            return

    def on_term(signum: int, frame: Any) -> None:  # SIGTERM: stop like Ctrl-C, keep results
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        previous = None
    interrupted = False
    try:
        for b in books:
            start(b)
        while inflight:
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
            for gen in ready:
                b = inflight[gen]
                cells = _next_message(ray, gen, b, prog)
                if cells is None:
                    continue
                del inflight[gen]
                where, ref, _, t0 = b.current  # type: ignore[misc]
                cells = keep_cells(store, b.meta, b.results, cells, b.done, prog)
                save_exports(b.out_dir, b.meta, b.results)
                prog.write(model_line(where, ref, time.perf_counter() - t0, cells))
                start(b)
    except KeyboardInterrupt:
        interrupted = True
        for gen in inflight:
            ray.cancel(gen, force=True)
        n = sum(len(b.results) for b in books)
        prog.write(f"interrupted: {n} cells of {len(books)} run(s) are stored in {store.label} "
                   f"as sweep {sweep_id}; finish it with 'quantbench run --resume {sweep_id}'")  # fmt: skip
    finally:
        prog.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    for b in books:
        finish_run(store, spec, b.meta, b.out_dir, b.results, interrupted, prog)
    return interrupted


def _next_message(ray: Any, gen: Any, b: _NodeRun, prog: ProgressBar) -> list[CellResult] | None:
    """Handle the next message of node ``b``'s task: its model's cells when it ended
    (measured, failed, or lost with the node), None while it runs on."""
    where, ref, mspec, _ = b.current  # type: ignore[misc]
    try:
        msg = ray.get(next(gen))
    except StopIteration:
        return _lost(b, f"ray task on {b.label} ended without its cells")
    except ray.exceptions.RayError as e:
        return _lost(b, _failure(ray, e, b.label))
    if isinstance(msg, Progress):
        prog.text(f"{b.label}: {msg.text}")
    elif isinstance(msg, Advance):
        prog.advance(msg.steps)
    elif isinstance(msg, Snapshot):
        b.partial = {d["recipe"]: CellResult.from_dict(d) for d in msg.cells}
    elif isinstance(msg, Done):
        return [CellResult.from_dict(d) for d in msg.cells]
    elif isinstance(msg, Failed):
        reason = (msg.error.splitlines() or ["worker failed"])[0]
        return failed_model_cells(mspec, ref, reason, msg.traceback)
    return None


def _lost(b: _NodeRun, reason: str) -> list[CellResult]:
    """The cells of a model whose task Ray lost: those measured keep their numbers, all
    become ``error`` with ``reason``, marked lost (a resumed sweep measures them again)."""
    _, ref, mspec, _ = b.current  # type: ignore[misc]
    cells = error_cells(mspec, ref, "error", reason, b.partial)
    for c in cells:
        if c.error == reason:
            c.details["lost"] = True
    return cells
