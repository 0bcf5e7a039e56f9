"""One model measured in a worker process of its own (or inline), and what the parent
makes of it: the cells it finished, or ``error`` / ``timeout`` cells with the reason
when it raised, died or overran its timeout. Also the run's progress bar.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import sys
import time
from typing import Any

from quantbench.errors import QuantbenchError, first_line
from quantbench.inert import terminal_text
from quantbench.measure import memory
from quantbench.results import CellResult
from quantbench.runner.cells import current_traceback
from quantbench.runner.messages import Advance, Done, Failed, Message, Progress, Snapshot
from quantbench.runner.pipeline import measure_model, recipes_for
from quantbench.runner.process import exit_with_parent, quiet_libraries
from quantbench.settings import ModelRef, RunSpec


class ModelFailed(Exception):
    """A model failed before any of its cells was measured; ``traceback`` when it was
    an unexpected exception."""

    def __init__(self, message: str, traceback: str | None = None) -> None:
        super().__init__(message)
        self.traceback = traceback


def failure_of(e: BaseException) -> Failed:
    """The message for a model's measurement that raised ``e`` (being handled now): a
    :class:`QuantbenchError` is the user's to fix and needs no traceback."""
    if isinstance(e, QuantbenchError):
        return Failed(str(e))
    return Failed(first_line(e), current_traceback())


def _worker_entry(spec_dict: dict[str, Any], ref_dict: dict[str, Any], conn: Any) -> None:
    from quantbench.inert import guard_terminal

    with guard_terminal():  # a worker writes to the terminal too
        _measure_in_worker(spec_dict, ref_dict, conn)


def _measure_in_worker(spec_dict: dict[str, Any], ref_dict: dict[str, Any], conn: Any) -> None:
    quiet_libraries()
    exit_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C does
    spec = RunSpec(**{**spec_dict, "models": []})
    ref = ModelRef(**ref_dict)
    # Connection.send writes synchronously, so a snapshot sent before a kill arrives.
    try:
        cells = measure_model(spec, ref, conn.send)
        conn.send(Done([c.to_dict() for c in cells]))
    except BaseException as e:
        conn.send(failure_of(e))
    finally:
        conn.close()


def error_cells(spec: RunSpec, ref: ModelRef, status: str, reason: str,
                partial: dict[str, CellResult],
                traceback: str | None = None) -> list[CellResult]:  # fmt: skip
    """Every variant's cell after a failure: those measured keep their numbers, all that
    were still ``ok`` take ``status`` and ``reason`` (and the traceback, when known)."""
    out = []
    for r in recipes_for(spec):
        cell = partial.get(r) or CellResult(model=ref.name, recipe=r)
        if cell.status in ("ok",):
            cell.status, cell.error = status, reason
            if traceback:
                cell.details["traceback"] = traceback
        out.append(cell)
    return out


class ProgressBar:
    """A tqdm bar on stderr, or plain lines when disabled.

    ``verbosity``: -1 keeps only warnings and the interruption notice; 1 also prints each
    stage's progress as a line when there is no bar; 0 is in between."""

    def __init__(self, total: int, enabled: bool, verbosity: int = 0) -> None:
        self.bar = None
        self.verbosity = verbosity
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stderr)

    def text(self, s: str) -> None:
        s = terminal_text(s, keep="")  # a model's name may hold a newline: one line each
        if self.bar is not None:
            self.bar.set_description_str(s[:60])
        elif self.verbosity > 0:
            print(f"  {s}", file=sys.stderr, flush=True)

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def write(self, s: str) -> None:
        s = terminal_text(s, keep="\t")
        if self.verbosity < 0 and not s.startswith(("warning", "interrupted")):
            return
        if self.bar is not None:
            self.bar.write(s, file=sys.stderr)
        else:
            print(s, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def snapshot(self, msg: Snapshot) -> None:
        """A worker's cells so far (kept by the :class:`Collector`; the Ray executor's
        relay passes them on to its driver)."""


class Collector:
    """Handles a worker's progress and snapshot messages, whichever process sent them."""

    def __init__(self, prog: ProgressBar) -> None:
        self.prog = prog
        self.partial: dict[str, CellResult] = {}

    def handle(self, msg: Message) -> None:
        if isinstance(msg, Progress):
            self.prog.text(msg.text)
        elif isinstance(msg, Advance):
            self.prog.advance(msg.steps)
        elif isinstance(msg, Snapshot):
            self.partial = {d["recipe"]: CellResult.from_dict(d) for d in msg.cells}
            self.prog.snapshot(msg)


def run_isolated(spec: RunSpec, ref: ModelRef, prog: ProgressBar) -> list[CellResult]:
    """Measure ``ref`` in a spawned worker; its cells, or error/timeout cells."""
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_worker_entry,
        args=(spec.to_dict(), ref.__dict__, send),
        name=f"quantbench-{ref.name}",
    )
    proc.start()
    send.close()  # the child holds the only writer: EOF on our side means it is gone
    start = time.monotonic()
    col = Collector(prog)
    peak = 0
    try:
        while True:
            peak = max(peak, memory.peak_bytes_of(proc.pid) or 0)
            if not recv.poll(0.2):
                if (
                    spec.timing.timeout_s is not None
                    and time.monotonic() - start > spec.timing.timeout_s
                ):
                    proc.kill()
                    proc.join()
                    reason = f"timed out after {spec.timing.timeout_s:g} s"
                    return error_cells(spec, ref, "timeout", reason, col.partial)
                continue
            try:
                msg = recv.recv()
            except (EOFError, OSError):
                proc.join()
                reason = death_reason(proc.exitcode, peak)
                return error_cells(spec, ref, "error", reason, col.partial)
            if isinstance(msg, Done):
                proc.join()
                return [CellResult.from_dict(d) for d in msg.cells]
            if isinstance(msg, Failed):
                proc.join()
                reason = (msg.error.splitlines() or ["worker failed"])[0]
                if not col.partial:
                    raise ModelFailed(reason, msg.traceback)
                return error_cells(spec, ref, "error", reason, col.partial, msg.traceback)
            col.handle(msg)
    finally:
        recv.close()
        if proc.is_alive():
            proc.kill()
            proc.join()


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


def run_inline(spec: RunSpec, ref: ModelRef, prog: ProgressBar) -> list[CellResult]:
    """Measure ``ref`` in this process (``--no-isolate``); failures as in a worker."""
    col = Collector(prog)
    try:
        return measure_model(spec, ref, col.handle)
    except Exception as e:
        failed = failure_of(e)
        if not col.partial:
            raise ModelFailed(failed.error, failed.traceback) from None
        return error_cells(spec, ref, "error", failed.error, col.partial, failed.traceback)
