"""Executors: where a run's models are measured, behind one protocol.

The lifecycle (:mod:`quantbench.runner.lifecycle`) is the same for every executor: it
opens the store, asks the executor where the run measures (:meth:`Executor.places`; a
run per place, under one sweep id when the executor spreads over several machines),
locks and begins each run, then hands the executor one model at a time per place
(:meth:`Executor.start`) and waits (:meth:`Executor.wait`) for their messages
(:mod:`quantbench.runner.messages`), keeping each model's cells as it ends.

Every public module of this package is an executor, named as the ``executor`` setting
takes it, and defines ``make(spec) -> Executor``:

- :mod:`~quantbench.runner.executors.local`: this machine; each model in a worker
  process of its own, or in this process with ``isolate: false``;
- :mod:`~quantbench.runner.executors.ray`: the nodes of a Ray cluster, one run per node.

Adding one (an SSH host list, a Kubernetes job) is one module here: a subclass of
:class:`Executor` whose ``start`` runs one model where it belongs, and whose ``wait``
passes on what it says (what a node runs for that: :func:`local.measure_here`).

Example::

    >>> sorted(executor_names())
    ['local', 'ray']
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from quantbench.errors import unknown_name
from quantbench.results import RunMeta
from quantbench.runner.messages import Emit, Message, is_last


@dataclass
class Place:
    """Where one run measures: this machine (no ``label``), or one node of a cluster
    (``label``: how lines and tables name it; ``node``: the executor's own handle)."""

    label: str | None = None
    node: Any = None


class Job:
    """One model being measured: each of its messages goes to ``emit``; ``ended`` once
    its last one did."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.ended = False

    def send(self, msg: Message) -> None:
        self.ended = self.ended or is_last(msg)
        self.emit(msg)


class Executor:
    """Where a run's models are measured. The defaults are this machine's: one place,
    the run's record made here; subclasses measure (``start``, ``wait``)."""

    name = "?"
    sweep = False  # True: one run per place, the runs grouped under one sweep id

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self.warnings: list[str] = []

    def open(self) -> None:
        """Get ready (check, connect), before a new run's store is opened."""

    def places(self) -> list[Place]:
        """Where a new run measures: one run each."""
        return [Place()]

    def records(self, places: list[Place]) -> Iterator[tuple[Place, RunMeta]]:
        """Each place's new run record, made there; a place that cannot make one is left
        out with a warning."""
        from quantbench.runner.books import run_metadata

        for place in places:
            yield place, run_metadata(self.spec)

    def match(self, runs: list[dict[str, Any]]) -> dict[str, Place | None]:
        """For each stored run being resumed (its record), the place that measures what
        it lacks; None (warned about) where there is none."""
        return {r["id"]: Place() for r in runs}

    def reopened(self, meta: RunMeta, place: Place) -> None:
        """Update a resumed run's record for where it measures now."""

    def redo(self, store: Any, run_id: str) -> list[tuple[str, str]]:
        """Stored cells of ``run_id`` a resume measures again (besides ``--retry-errors``)."""
        return []

    def start(self, place: Place, spec: Any, ref: Any, emit: Emit) -> Job:
        """Start measuring model ``ref`` with settings ``spec`` at ``place``; every message
        it sends goes to ``emit``, the last one ending it."""
        raise NotImplementedError

    def wait(self, jobs: list[Job]) -> list[Job]:
        """Pass on what ``jobs`` say, for a short while at most; those that ended."""
        raise NotImplementedError

    def cancel(self, jobs: list[Job]) -> None:
        """Stop ``jobs`` (the run was interrupted or failed); their cells are not awaited."""

    def close(self) -> None:
        """Let go of what :meth:`open` took (a cluster connection). Called once or more."""

    def warn(self, text: str) -> None:
        """A warning on stderr, kept for the result (a sweep's ``warnings``)."""
        self.warnings.append(text)
        print(f"warning: {text}", file=sys.stderr, flush=True)


def executor_names() -> list[str]:
    """Every executor, by the name the ``executor`` setting takes: this package's modules."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def get_executor(spec: Any) -> Executor:
    """The executor ``spec.executor`` names, for ``spec`` (only its module is imported)."""
    names = executor_names()
    if spec.launch.executor not in names:
        raise unknown_name("executor", spec.launch.executor, names)
    return importlib.import_module(f"{__name__}.{spec.launch.executor}").make(spec)
