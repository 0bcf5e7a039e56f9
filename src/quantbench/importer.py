"""``quantbench import``: put a run's results.json into a store.

A run writes every cell to its results.json as well as to the store; when the store
fails during the run (a PostgreSQL server stopped, a disk full), results.json alone
holds the cells measured after that. Importing it writes what the store lacks:

- the run's record (created, or brought up to date: status, end time, recommendations);
- every cell the store does not hold; a cell it holds already must be identical (it is
  skipped), and a store holding a different cell, or a different run under the same id,
  is refused before anything is written.

Importing twice writes nothing the second time.

Example::

    >>> from quantbench.importer import import_results
    >>> done = import_results("quantbench-runs/r1/results.json", "quantbench.db")  # doctest: +SKIP
    >>> done.written, done.skipped                                                # doctest: +SKIP
    (12, 0)
"""

from __future__ import annotations

import datetime as _dt
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantbench.errors import QuantbenchError, clip
from quantbench.results import CellResult, read_json
from quantbench.strictjson import RECORD_KEY

# Keys of a run's record that say how it was stored, not what was measured: they may
# differ between the store and results.json of the same run.
_BOOKKEEPING = ("unstored", "record_unstored", "store_errors", "imported", "store", RECORD_KEY)


@dataclass
class Imported:
    """What :func:`import_results` did: the run, its cells written and those already there."""

    run_id: str
    store: str
    written: int
    skipped: int
    record_updated: bool


def import_command(results_json: str | Path, store: str | None) -> str:
    """The command line that imports ``results_json`` into ``store`` (its password, if
    the URL has one, removed: the user gives it as PGPASSWORD or in ~/.pgpass)."""
    from quantbench.redact import strip_url
    from quantbench.store import default_store

    target = store or default_store()
    if "://" in target:
        target = strip_url(target)
    return f"quantbench import {shlex.quote(str(results_json))} --store {shlex.quote(target)}"


def _results_path(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    if not p.is_file():
        raise QuantbenchError(f"'{clip(str(path))}' is not a results.json (nor a run directory)")
    return p


def _measured(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if k not in _BOOKKEEPING}


def _first_difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    keys = [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
    return ", ".join(keys[:3]) or "?"


def import_results(path: str | Path, store: str | None = None) -> Imported:
    """Write the run in ``path`` (a results.json, or the run's directory) into ``store``
    (a path or URL; default as for ``run``): its record and every cell the store lacks.
    Raises :class:`QuantbenchError` when the store holds something else under its id."""
    from quantbench.store import open_store

    p = _results_path(path)
    meta, cells = read_json(p)
    run_id = meta.get("id") if isinstance(meta, dict) else None
    if not isinstance(run_id, str) or not run_id:
        raise QuantbenchError(f"'{p}' has no run id: not a results.json quantbench wrote")
    st = open_store(store)
    try:
        try:
            stored_meta: dict[str, Any] | None = st.run_meta(run_id)
        except QuantbenchError:  # not in this store yet
            stored_meta = None
        if stored_meta is not None and (
            stored_meta.get("started_at") != meta.get("started_at")
            or stored_meta.get("spec") != meta.get("spec")
        ):
            raise QuantbenchError(
                f"store {st.label} holds another run with id {run_id} (started "
                f"{stored_meta.get('started_at')}, not {meta.get('started_at')}); nothing imported"
            )
        have = {(c.model, c.recipe): c for c in st.cells(run_id)} if stored_meta else {}
        todo: list[CellResult] = []
        conflicts = []
        for c in cells:
            old = have.get((c.model, c.recipe))
            if old is None:
                todo.append(c)
            elif old.to_dict() != c.to_dict():
                conflicts.append((c, _first_difference(old.to_dict(), c.to_dict())))
        if conflicts:
            c, diff = conflicts[0]
            raise QuantbenchError(
                f"{len(conflicts)} cell(s) of run {run_id} in store {st.label} differ from "
                f"'{p}' (first: {c.model} / {c.recipe}: {diff}); nothing imported"
            )
        record = {k: v for k, v in meta.items() if k not in ("unstored", "record_unstored")}
        differ = stored_meta is not None and _measured(stored_meta) != _measured(record)
        update = stored_meta is None or differ or bool(todo)
        if differ and stored_meta.get("status") != "running":
            # A final record that differs is newer than this file (a later --resume):
            # what the file says must not replace it.
            raise QuantbenchError(
                f"store {st.label} holds run {run_id} as {stored_meta.get('status')} "
                f"({_first_difference(_measured(stored_meta), _measured(record))} differ from "
                f"'{p}'); nothing imported"
            )
        if update:
            now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            record["imported"] = [*(stored_meta or {}).get("imported", []), now]
            record["store"] = st.label
            st.begin_run(record)  # the row first: cells refer to it
            st.write_cells(run_id, todo)
        return Imported(run_id, st.label, len(todo), len(cells) - len(todo), bool(update))
    finally:
        st.close()
