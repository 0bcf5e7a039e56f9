"""What a measuring worker tells its parent, one small typed message at a time.

Messages go through a ``multiprocessing`` pipe (pickled) from a worker process, a Ray
streaming generator from a node, or straight to the collector when a model is measured
inline (:mod:`quantbench.runner.executors`). Cells travel as ``CellResult.to_dict()``
dicts, the form results.json holds. A model's last message is :class:`Done`,
:class:`Failed` or :class:`Ended` (:func:`is_last`).

Example::

    >>> emit = print
    >>> emit(Progress("resnet18: quantizing"))
    Progress(text='resnet18: quantizing')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from quantbench.errors import QuantbenchError, first_line
from quantbench.results import CellResult
from quantbench.runner.cells import current_traceback


@dataclass(frozen=True)
class Progress:
    """What the worker is doing now, for the progress bar."""

    text: str


@dataclass(frozen=True)
class Advance:
    """``steps`` of the run's total are done (see ``books.count_steps``)."""

    steps: int = 1


@dataclass(frozen=True)
class Snapshot:
    """Every cell of the model so far: what is kept if the worker dies next."""

    cells: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, cells: Iterable[CellResult]) -> Snapshot:
        return cls([c.to_dict() for c in cells])


@dataclass(frozen=True)
class Done:
    """The model is measured: its final cells."""

    cells: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Failed:
    """The model's measurement stopped: the reason in one line, and the whole traceback
    when it was an unexpected exception (None for a :class:`QuantbenchError`)."""

    error: str
    traceback: str | None = None

    @classmethod
    def of(cls, e: BaseException) -> Failed:
        """The message for a measurement that raised ``e`` (being handled now): a
        :class:`QuantbenchError` is the user's to fix and needs no traceback."""
        if isinstance(e, QuantbenchError):
            return cls(str(e))
        return cls(first_line(e), current_traceback())

    def one_line(self) -> Failed:
        """This failure with its error cut to its first line, as a parent records it."""
        return Failed((self.error.splitlines() or ["worker failed"])[0], self.traceback)


@dataclass(frozen=True)
class Ended:
    """The model's measurement ended without its cells, said by whoever watched it: its
    worker died (``error``) or overran its timeout (``timeout``), or Ray lost the task
    (``lost``: a resumed sweep measures those cells again)."""

    status: str
    reason: str
    lost: bool = False


Message = Progress | Advance | Snapshot | Done | Failed | Ended
Emit = Callable[[Message], None]


def is_last(msg: Message) -> bool:
    """Whether ``msg`` ends its model's measurement."""
    return isinstance(msg, (Done, Failed, Ended))
