"""Strict JSON: what every JSON file and stored JSON text of quantbench goes through.

Python's ``json`` writes a NaN or an infinity as the bare tokens ``NaN`` / ``Infinity``,
which are not JSON (RFC 8259): most parsers (``jq``, browsers, PostgreSQL's ``json``
type) refuse the whole file. Here a non-finite float becomes ``null`` and the fact is
kept: the paths of the values replaced are returned, and :func:`dumps` records them in
the document itself (a mapping's :data:`RECORD_KEY`).

Example::

    >>> dumps({"cosine": float("nan"), "n": 4})
    '{"cosine": null, "n": 4, "nonfinite_as_null": ["cosine"]}'
    >>> finite([1.0, float("inf")])
    ([1.0, None], ['[1]'])
"""

from __future__ import annotations

import json
import math
from typing import Any

# The key under which dumps() lists the values it wrote as null (a mapping document).
RECORD_KEY = "nonfinite_as_null"
_MAX_RECORDED = 50


def finite(obj: Any, path: str = "") -> tuple[Any, list[str]]:
    """A copy of ``obj`` (dicts, lists, tuples as lists) with every NaN/inf float as
    None, and the paths (``a.b[2]``) of those it replaced."""
    bad: list[str] = []

    def walk(x: Any, where: str) -> Any:
        if isinstance(x, float):
            if math.isfinite(x):
                return x
            bad.append(where or "(the value)")
            return None
        if isinstance(x, dict):
            return {k: walk(v, f"{where}.{k}" if where else str(k)) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(x)]
        return x

    return walk(obj, path), bad


def dumps(obj: Any, *, indent: int | None = None, record: bool = True) -> str:
    """``json.dumps`` that never writes NaN/Infinity: non-finite floats are null, and
    (``record``, for a mapping) their paths are listed under :data:`RECORD_KEY`."""
    clean, bad = finite(obj)
    if bad and record and isinstance(clean, dict):
        clean[RECORD_KEY] = sorted(set(clean.get(RECORD_KEY) or []) | set(bad))[:_MAX_RECORDED]
    return json.dumps(clean, indent=indent, allow_nan=False)


def note(bad: list[str], how: str) -> str:
    """The line a record keeps about values it holds as null: ``how`` they got there."""
    shown = ", ".join(bad[:8]) + (f" and {len(bad) - 8} more" if len(bad) > 8 else "")
    return f"non-finite values (NaN/inf) {how} as null: {shown}"
