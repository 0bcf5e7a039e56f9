"""``executor: ray``: a sweep across the machines of a Ray cluster.

The driver (this process) connects to the cluster (with a deadline,
:mod:`quantbench.runner.ray_connect`), probes every alive node with a tiny task pinned
to it (its machine fingerprint), keeps the nodes ``--on`` selects
(:mod:`quantbench.runner.sweeps`), and gives each one run of its own: the same models
and recipes, its own run id and fingerprint, one ``sweep_id`` shared by all. Each model
is one Ray task (:func:`quantbench.runner.ray_node.measure`) pinned to its node with
``NodeAffinitySchedulingStrategy(soft=False)``; a node runs one model at a time and the
task reserves all of the node's CPUs (and GPUs), so no other Ray task, and no other
quantbench task, shares the machine while it measures. On the node the model is
measured as locally (:func:`quantbench.runner.executors.local.measure_here`), its
messages streamed back as they come.

A node that dies, or a task that is killed, ends that model with ``error`` cells saying
so (``ray node died: ...``), marked ``details["lost"]``; the other nodes go on. A
resumed sweep measures again what is missing or lost, on the same node, or on the node
that replaced it (same machine, started the same way).

Ray is imported only here, only when ``--executor ray`` is given.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from quantbench.errors import first_line
from quantbench.redact import remember_url
from quantbench.results import RunMeta
from quantbench.runner import ray_node
from quantbench.runner.executors import Executor, Job, Place
from quantbench.runner.messages import Emit, Ended, Failed
from quantbench.runner.ray_connect import connect, import_ray
from quantbench.runner.sweeps import Node, labels, match_runs, select, shared_machines
from quantbench.version import __version__

PROBE_TIMEOUT_S = 120.0
WAIT_S = 1.0  # how long one wait for the next message of any node lasts at most


def make(spec: Any) -> Executor:
    return RayExecutor(spec)


class RayJob(Job):
    """A model's Ray task: its streaming generator of messages, and its node's label."""

    def __init__(self, emit: Emit, gen: Any, label: str) -> None:
        super().__init__(emit)
        self.gen, self.label = gen, label


class RayExecutor(Executor):
    """One run per selected node of a Ray cluster; a model at a time on each."""

    name = "ray"
    sweep = True

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.ray: Any = None
        self.owned = False  # this process connected: it disconnects when done
        self._measure: Any = None

    def open(self) -> None:
        self.ray = import_ray()
        remember_url(self.spec.output.store)  # before Ray records our command line
        self.owned = connect(self.ray, self.spec.launch.ray_address)

    def close(self) -> None:
        if self.owned:
            self.owned = False
            self.ray.shutdown()

    def places(self) -> list[Place]:
        chosen = select(self._usable(), self.spec.launch.on)
        for group in shared_machines(chosen):
            self.warn(f"nodes {', '.join(n.node_id[:8] for n in group)} are one machine "
                      f"({group[0].hostname}): their timings share its CPUs")  # fmt: skip
        names = labels(chosen)
        return [Place(names[n.node_id], n) for n in chosen]

    def records(self, places: list[Place]) -> Iterator[tuple[Place, RunMeta]]:
        ray = self.ray
        describe = ray.remote(ray_node.describe)
        given = self.spec.to_dict()
        refs = [(p, describe.options(**pinned(p.node, reserve=True)).remote(given))
                for p in places]  # fmt: skip
        for place, ref in refs:
            try:
                meta = RunMeta.from_dict(ray.get(ref))
            except ray.exceptions.RayError as e:
                self.warn(f"node {place.label} left out: {failure_reason(ray, e, place.label)}")
                continue
            meta.spec = given  # as given: each node resolves its engine again
            meta.node, meta.ray_node = place.label, place.node.record()
            yield place, meta

    def match(self, runs: list[dict[str, Any]]) -> dict[str, Place | None]:
        where = match_runs(runs, self._usable())
        out: dict[str, Place | None] = {}
        for r in runs:
            node = where[r["id"]]
            if node is None:
                self.warn(f"run {r['id']} ({r.get('node')}): no alive node is its machine; its "
                          "missing cells stay missing (start that node again and resume)")  # fmt: skip
            out[r["id"]] = None if node is None else Place(r.get("node") or node.hostname, node)
        return out

    def reopened(self, meta: RunMeta, place: Place) -> None:
        meta.ray_node = place.node.record()

    def redo(self, store: Any, run_id: str) -> list[tuple[str, str]]:
        """The cells Ray lost: measured again by a resumed sweep."""
        return [(c.model, c.recipe) for c in store.cells(run_id) if c.details.get("lost")]

    def start(self, place: Place, spec: Any, ref: Any, emit: Emit) -> RayJob:
        if self._measure is None:
            self._measure = self.ray.remote(ray_node.measure)
        opts = pinned(place.node, reserve=True)
        gen = self._measure.options(**opts, name=f"quantbench {ref.name}").remote(
            spec.to_dict(), ref.model_dump()
        )
        return RayJob(emit, gen, str(place.label))

    def wait(self, jobs: list[Job]) -> list[Job]:
        by_gen = {j.gen: j for j in jobs if isinstance(j, RayJob) and not j.ended}
        ready, _ = self.ray.wait(list(by_gen), num_returns=1, timeout=WAIT_S)
        for gen in ready:
            self._next_message(by_gen[gen])
        return [j for j in jobs if j.ended]

    def _next_message(self, job: RayJob) -> None:
        """Pass on the next message of ``job``'s task, or why Ray lost it."""
        ray = self.ray
        try:
            msg = ray.get(next(job.gen))
        except StopIteration:
            msg = Ended("error", f"ray task on {job.label} ended without its cells", lost=True)
        except ray.exceptions.RayError as e:
            msg = Ended("error", failure_reason(ray, e, job.label), lost=True)
        job.send(msg.one_line() if isinstance(msg, Failed) else msg)

    def cancel(self, jobs: list[Job]) -> None:
        for j in jobs:
            if isinstance(j, RayJob) and not j.ended:
                with contextlib.suppress(Exception):  # the cluster may be gone already
                    self.ray.cancel(j.gen, force=True)

    def _usable(self) -> list[Node]:
        """:func:`probe_nodes`, warning about each node quantbench cannot run on."""
        nodes = probe_nodes(self.ray)
        for n in nodes:
            if n.error:
                self.warn(f"node {n.describe()} left out: {n.error}")
        return nodes


def pinned(node: Node, reserve: bool) -> dict[str, Any]:
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
    refs = {probe.options(**pinned(n, reserve=False)).remote(): n for n in nodes}
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


def _cause(e: Exception) -> str:
    """A Ray error in one line: the node's own exception where there is one."""
    cause = getattr(e, "cause", None)
    return first_line(cause if isinstance(cause, BaseException) else e)


def failure_reason(ray: Any, e: Exception, label: str) -> str:
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
