"""What a measuring worker tells its parent, one small typed message at a time.

Messages go through a ``multiprocessing`` pipe (pickled) from a worker process, or
straight to the collector when a model is measured inline. Cells travel as
``CellResult.to_dict()`` dicts, the form results.json holds.

Example::

    >>> emit = print
    >>> emit(Progress("resnet18: quantizing"))
    Progress(text='resnet18: quantizing')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from quantbench.results import CellResult


@dataclass(frozen=True)
class Progress:
    """What the worker is doing now, for the progress bar."""

    text: str


@dataclass(frozen=True)
class Advance:
    """``steps`` of the run's total are done (see ``orchestrate._count_steps``)."""

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


Message = Progress | Advance | Snapshot | Done | Failed
Emit = Callable[[Message], None]
