"""Objects handed to the Python API (an ``nn.Module``, batches of data, an ``eval_fn``),
named so that the spec and the results can refer to them: ``mem:<kind>:<label>``.

They live in this process only: a run that uses one runs its models inline (a worker
process could not see them), and a stored run that used one cannot be resumed by
another process (it says so in one line).

Example::

    >>> name = put("eval_fn", len, "len")
    >>> name, get(name, "eval_fn") is len
    ('mem:eval_fn:len', True)
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from quantbench.errors import QuantbenchError

PREFIX = "mem:"
_OBJECTS: dict[str, Any] = {}
_COUNTER = itertools.count(1)


def put(kind: str, obj: Any, label: str | None = None) -> str:
    """Keep ``obj`` under a new name ``mem:<kind>:<label>`` (a number is added when taken)."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", label or kind).strip("-") or kind
    name = f"{PREFIX}{kind}:{base}"
    while name in _OBJECTS and _OBJECTS[name] is not obj:
        name = f"{PREFIX}{kind}:{base}-{next(_COUNTER)}"
    _OBJECTS[name] = obj
    return name


def is_memory(name: Any) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def get(name: str, kind: str) -> Any:
    """The object kept as ``name``; a clear error when this process does not hold it."""
    if not name.startswith(f"{PREFIX}{kind}:") or name not in _OBJECTS:
        raise QuantbenchError(
            f"in-memory {kind} '{name}' is not held by this process: objects given to the "
            "Python API exist only in the process that gave them"
        )
    return _OBJECTS[name]


def label(name: str) -> str:
    """``mem:model:mine`` -> ``mine``."""
    return name.split(":", 2)[-1]
