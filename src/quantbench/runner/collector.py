"""What the parent makes of one model's messages, whichever executor relays them: its
progress on the bar, the cells measured so far, and its cells when it ends, the
``error`` / ``timeout`` ones included (a failure is a row, not a crash).

Example::

    >>> from quantbench.runner.messages import Snapshot
    >>> from quantbench.runner.progress import ProgressBar
    >>> col = Collector(ProgressBar(1, enabled=False))
    >>> col.handle(Snapshot.of([CellResult(model="m", recipe="fp32", size_bytes=1)]))
    >>> col.partial["fp32"].size_bytes, col.cells
    (1, None)
"""

from __future__ import annotations

from typing import Any

from quantbench.results import CellResult
from quantbench.runner.messages import Advance, Done, Ended, Failed, Message, Progress, Snapshot
from quantbench.runner.pipeline import recipes_for


def error_cells(spec: Any, ref: Any, status: str, reason: str, partial: dict[str, CellResult],
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


class Collector:
    """One model's messages: progress to ``prog`` (prefixed with ``label``, the node of a
    sweep), snapshots kept in :attr:`partial`, and its final cells in :attr:`cells` once
    its last message came (``spec``: the settings it was measured with, ``ref``: it)."""

    def __init__(self, prog: Any, spec: Any = None, ref: Any = None,
                 label: str | None = None) -> None:  # fmt: skip
        self.prog, self.spec, self.ref, self.label = prog, spec, ref, label
        self.partial: dict[str, CellResult] = {}
        self.cells: list[CellResult] | None = None

    def handle(self, msg: Message) -> None:
        if isinstance(msg, Progress):
            self.prog.text(f"{self.label}: {msg.text}" if self.label else msg.text)
        elif isinstance(msg, Advance):
            self.prog.advance(msg.steps)
        elif isinstance(msg, Snapshot):
            self.partial = {d["recipe"]: CellResult.from_dict(d) for d in msg.cells}
        elif isinstance(msg, Done):
            self.cells = [CellResult.from_dict(d) for d in msg.cells]
        elif isinstance(msg, Failed):
            self.cells = self._ended("error", msg.error, msg.traceback)
        elif isinstance(msg, Ended):
            self.cells = self._ended(msg.status, msg.reason)
            if msg.lost:  # those it had not measured: a resumed sweep measures them again
                for c in self.cells:
                    if c.error == msg.reason:
                        c.details["lost"] = True

    def _ended(self, status: str, reason: str, traceback: str | None = None) -> list[CellResult]:
        return error_cells(self.spec, self.ref, status, reason, self.partial, traceback)
