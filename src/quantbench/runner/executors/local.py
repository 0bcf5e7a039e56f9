"""``executor: local``: every model measured on this machine, one after another.

With ``isolate`` (the default) each model is measured in a spawned worker process of its
own (:class:`ProcessExecutor`): a crash, a leak or an overrun timeout costs that model
only, and each model starts from a fresh interpreter. The worker's environment is set up
in one place, :func:`_enter_worker`, before anything heavy is imported. With ``isolate:
false`` (the Python API's in-memory models and ``eval_fn``) models are measured in this
process (:class:`InlineExecutor`): nothing is spawned and no timeout is enforced.

What a worker ended with is said as a message: its cells (``Done``), its failure
(``Failed``), or, when it died or overran its timeout, why (``Ended``), with the peak
memory seen when it was killed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from multiprocessing.connection import wait as _ready
from typing import Any

from quantbench.runner.executors import Executor, Job, Place
from quantbench.runner.messages import Done, Emit, Ended, Failed
from quantbench.runner.process import kept_process_state, quiet_libraries

POLL_S = 0.2  # how often a worker's memory and timeout are checked while it is silent


def make(spec: Any) -> Executor:
    """A worker process per model, or this process with ``isolate: false``."""
    return ProcessExecutor(spec) if spec.launch.isolate else InlineExecutor(spec)


class InlineExecutor(Executor):
    """Each model measured in this process, in turn: ``start`` returns once it is done."""

    name = "local"

    def open(self) -> None:
        quiet_libraries()

    def start(self, place: Place, spec: Any, ref: Any, emit: Emit) -> Job:
        from quantbench import waitpolicy
        from quantbench.runner.pipeline import measure_model

        # torch is loaded here already: only ONNX Runtime follows (the record says so),
        # and the caller's environment is not ours to change
        waitpolicy.apply(spec.timing.wait_policy, environ=False)

        job = Job(emit)
        try:
            with kept_process_state():  # the caller's threads and CPUs, as they were
                cells = measure_model(spec, ref, job.send)
        except Exception as e:  # a failure is this model's cells, not the run's end
            job.send(Failed.of(e))
        else:
            job.send(Done([c.to_dict() for c in cells]))
        return job

    def wait(self, jobs: list[Job]) -> list[Job]:
        return [j for j in jobs if j.ended]


class WorkerJob(Job):
    """A model measured in a worker process: the process, the pipe it talks on, the
    highest memory seen of it, its timeout."""

    def __init__(self, emit: Emit, proc: Any, recv: Any, timeout_s: float | None) -> None:
        super().__init__(emit)
        self.proc, self.recv, self.timeout_s = proc, recv, timeout_s
        self.started = time.monotonic()
        self.peak = 0

    def receive(self) -> None:
        """Pass on the worker's next message, or why it ended without a word."""
        try:
            msg = self.recv.recv()
        except (EOFError, OSError):
            self.proc.join()
            self.end(Ended("error", death_reason(self.proc.exitcode, self.peak)))
            return
        if isinstance(msg, Failed):
            msg = msg.one_line()
        if isinstance(msg, (Done, Failed)):
            self.proc.join()
            self.end(msg)
        else:
            self.send(msg)

    def overdue(self) -> bool:
        return self.timeout_s is not None and time.monotonic() - self.started > self.timeout_s

    def end(self, msg: Done | Failed | Ended) -> None:
        self.stop()
        self.send(msg)

    def stop(self) -> None:
        self.recv.close()
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


class ProcessExecutor(Executor):
    """Each model measured in a spawned worker process of its own."""

    name = "local"

    def open(self) -> None:
        from quantbench.runner.guard import check_main_guard

        # Workers re-import the calling script: it needs a __main__ guard.
        check_main_guard("run")
        quiet_libraries()

    def start(self, place: Place, spec: Any, ref: Any, emit: Emit) -> WorkerJob:
        ctx = mp.get_context("spawn")
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_worker_main,
            args=(spec.to_dict(), ref.__dict__, send),
            name=f"quantbench-{ref.name}",
        )
        proc.start()
        send.close()  # the child holds the only writer: EOF on our side means it is gone
        return WorkerJob(emit, proc, recv, spec.timing.timeout_s)

    def wait(self, jobs: list[Job]) -> list[Job]:
        from quantbench.measure import memory

        live = [j for j in jobs if isinstance(j, WorkerJob) and not j.ended]
        for j in live:
            j.peak = max(j.peak, memory.peak_bytes_of(j.proc.pid) or 0)
        ready = _ready([j.recv for j in live], timeout=POLL_S)
        for j in live:
            if j.recv in ready:
                j.receive()
            elif j.overdue():
                j.end(Ended("timeout", f"timed out after {j.timeout_s:g} s"))
        return [j for j in jobs if j.ended]

    def cancel(self, jobs: list[Job]) -> None:
        for j in jobs:
            if isinstance(j, WorkerJob):
                j.stop()


def death_reason(exitcode: int | None, peak: int) -> str:
    """Why a worker ended without a word: the signal that killed it, or its exit code."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = " (out of memory?)" if name == "SIGKILL" else ""
        mem = f", peak RSS seen {peak / 2**20:.0f} MiB" if peak else ""
        return f"worker killed by {name}{why}{mem}"
    return f"worker exited with code {exitcode}"


def measure_here(spec: Any, ref: Any, emit: Emit) -> None:
    """Measure ``ref`` on this machine as a local run does (a worker process, or this
    one with ``isolate: false``), every message to ``emit``, the last one ending it:
    what a node of a cluster runs for each model."""
    executor = make(spec)
    job = executor.start(Place(), spec, ref, emit)
    try:
        while not executor.wait([job]):
            pass
    finally:
        executor.cancel([job])


# ----------------------------------------------------------------- in the worker process


def _worker_main(spec_dict: dict[str, Any], ref_dict: dict[str, Any], conn: Any) -> None:
    """A worker process: its environment first, then one model, every message sent on
    ``conn`` (``Connection.send`` writes synchronously: a snapshot sent before a kill
    arrives)."""
    from quantbench.inert import guard_terminal

    with guard_terminal():  # a worker writes to the terminal too
        _enter_worker(spec_dict.get("wait_policy"))
        from quantbench.runner.pipeline import measure_model
        from quantbench.settings import ModelRef, RunSpec

        try:
            spec = RunSpec(**{**spec_dict, "models": []})
            cells = measure_model(spec, ModelRef(**ref_dict), conn.send)
            conn.send(Done([c.to_dict() for c in cells]))
        except BaseException as e:
            conn.send(Failed.of(e))
        finally:
            conn.close()


def _enter_worker(wait_policy: str | None = None) -> None:
    """The one place a worker process's environment is set up: what idle runtime threads
    do (before torch loads OpenMP, which reads its environment once), libraries quiet,
    Ctrl-C left to the parent, and the worker gone with its parent."""
    from quantbench import waitpolicy

    waitpolicy.apply(wait_policy or waitpolicy.DEFAULT)
    quiet_libraries()
    _exit_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C does


def _exit_with_parent() -> None:
    """A worker whose parent died (killed, SIGTERM) stops too instead of running on."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()
