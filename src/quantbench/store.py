"""The results store: every run, cell and raw timing sample, in a database.

SQLite by default (``./quantbench.db``; ``--store PATH``, or ``$QUANTBENCH_STORE``), or any
SQLAlchemy URL (``postgresql://user@host/db`` for a team sharing one store across
machines; its password is best given by ``PGPASSWORD`` or ``~/.pgpass``, and is never
recorded: :mod:`quantbench.redact`). Every PostgreSQL round trip has a deadline
(:mod:`quantbench.postgres`): a server that does not answer is an error, never a hang.
Each finished cell is committed in its own transaction as soon as its model's worker
returns, so a run killed at any moment loses at most the cells in flight;
``results.json`` / ``results.csv`` are exports of the same data.

Tables: ``quantbench_meta`` (marker and schema version), ``runs`` (one row a run: the
machine fingerprint, versions, spec and the rest of the run's metadata), ``cells`` (one
row per (run, model, recipe)) and ``samples`` (every timed sample of every latency
point). The schema is versioned; older stores are migrated on open, newer ones refused.

Example::

    >>> from quantbench.store import open_store
    >>> store = open_store("sqlite://")            # in memory
    >>> store.runs()
    []
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from quantbench import storefaults
from quantbench.errors import QuantbenchError, first_line
from quantbench.postgres import postgres_driver, server_refusal, with_deadlines
from quantbench.redact import scrub, strip_url
from quantbench.results import CellResult
from quantbench.settings.output import default_store
from quantbench.strictjson import RECORD_KEY, finite
from quantbench.strictjson import dumps as _dumps

SCHEMA_VERSION = 1
APP = "quantbench"
_SQLITE_MAGIC = b"SQLite format 3\x00"


def _tables() -> tuple[Any, dict[str, Any]]:
    import sqlalchemy as sa

    md = sa.MetaData()
    t = {
        "meta": sa.Table(
            "quantbench_meta", md,
            sa.Column("key", sa.String(64), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        ),
        "runs": sa.Table(
            "runs", md,
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("started_at", sa.String(40)),
            sa.Column("finished_at", sa.String(40)),
            sa.Column("status", sa.String(20)),
            sa.Column("machine", sa.Text),
            sa.Column("models", sa.Text),
            sa.Column("out_dir", sa.Text),
            sa.Column("fingerprint", sa.Text),  # JSON: host (CPU, ISA, cores, OS, bench)
            sa.Column("versions", sa.Text),  # JSON
            sa.Column("spec", sa.Text),  # JSON
            sa.Column("meta", sa.Text),  # JSON: everything else of the run's metadata
        ),
        "cells": sa.Table(
            "cells", md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=False),
            sa.Column("model", sa.Text, nullable=False),
            sa.Column("recipe", sa.Text, nullable=False),
            sa.Column("status", sa.String(20), nullable=False),
            sa.Column("size_bytes", sa.BigInteger),
            sa.Column("finished_at", sa.String(40)),
            sa.Column("data", sa.Text, nullable=False),  # JSON: the CellResult, no samples
            sa.UniqueConstraint("run_id", "model", "recipe", name="one_cell"),
        ),
        "samples": sa.Table(
            "samples", md,
            sa.Column("cell_id", sa.Integer, sa.ForeignKey("cells.id"), nullable=False,
                      index=True),
            sa.Column("point", sa.Integer, nullable=False),  # index into the cell's latency
            sa.Column("batch_size", sa.Integer, nullable=False),
            sa.Column("input_size", sa.Integer, nullable=False),
            sa.Column("seq", sa.Integer, nullable=False),
            sa.Column("value", sa.Float, nullable=False),
        ),
    }  # fmt: skip
    return md, t


# Migrations: MIGRATIONS[v] upgrades a store at schema version v to v + 1.
MIGRATIONS: dict[int, Callable[[Any], None]] = {}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _without_secrets(meta: dict[str, Any]) -> dict[str, Any]:
    """A run's metadata with the passwords of its store and Ray addresses removed."""

    def clean(d: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
        return {k: strip_url(v) if k in keys and isinstance(v, str) else v for k, v in d.items()}

    meta = clean(meta, ("store",))
    if isinstance(meta.get("spec"), dict):
        meta["spec"] = clean(meta["spec"], ("store", "ray_address"))
    return meta


def _sqlite_checks(path: Path) -> None:
    """Refuse what is not an SQLite file; detect a truncated or corrupted one."""
    if path.is_dir():
        raise QuantbenchError(f"store '{path}' is a directory, not a database file")
    if not path.exists() or path.stat().st_size == 0:
        if not path.parent.exists():
            raise QuantbenchError(f"store directory '{path.parent}' does not exist")
        return
    with path.open("rb") as f:
        head = f.read(16)
    if head != _SQLITE_MAGIC:
        raise QuantbenchError(
            f"store '{path}' is not a quantbench database (not an SQLite file); "
            "refusing to overwrite it"
        )
    size = path.stat().st_size
    if size < 512:
        raise QuantbenchError(f"store '{path}' is truncated ({size} bytes): not replaced")
    import sqlite3

    try:  # another process holding it locked is waited for, a bounded time
        con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True,
                              timeout=storefaults.BUSY_TIMEOUT_S)  # fmt: skip
        try:
            rows = con.execute("PRAGMA quick_check").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        why = storefaults.describe(e, f"'{path}'", path)
        raise QuantbenchError(
            why
            or f"store '{path}' is corrupted ({first_line(e, with_type=False)}): not "
            "replaced; move it away or give another --store"
        ) from None
    if rows != [("ok",)]:
        raise QuantbenchError(storefaults.integrity_problem(f"'{path}'", rows))


class Store:
    """A quantbench results database (use :func:`open_store`)."""

    def __init__(self, engine: Any, label: str) -> None:
        self.engine = engine
        self.label = label
        _, self.t = _tables()

    # -------------------------------------------------------------- runs
    def begin_run(self, meta: dict[str, Any]) -> None:
        """Insert the run's row (or update it when resuming)."""
        row = self._run_row(meta)
        with self.engine.begin() as con:
            exists = con.execute(
                self.t["runs"].select().where(self.t["runs"].c.id == meta["id"])
            ).first()
            if exists:
                con.execute(
                    self.t["runs"].update().where(self.t["runs"].c.id == meta["id"]).values(**row)
                )
            else:
                con.execute(self.t["runs"].insert().values(**row))

    finish_run = begin_run  # the same row, written again with the final metadata

    def _run_row(self, meta: dict[str, Any]) -> dict[str, Any]:
        meta = _without_secrets(meta)
        host = meta.get("host") or {}
        rest = {k: v for k, v in meta.items() if k not in ("host", "versions", "spec")}
        machine = f"{host.get('cpu', '?')} ({host.get('cores', '?')} cores)"
        if host.get("hostname"):
            machine = f"{host['hostname']}: {machine}"
        models = [m["name"] if isinstance(m, dict) else str(m)
                  for m in (meta.get("spec") or {}).get("models", [])]  # fmt: skip
        return {
            "id": meta["id"], "started_at": meta.get("started_at"),
            "finished_at": meta.get("finished_at"), "status": meta.get("status", "running"),
            "machine": machine, "models": ",".join(models), "out_dir": meta.get("out_dir"),
            "fingerprint": _dumps(host), "versions": _dumps(meta.get("versions") or {}),
            "spec": _dumps(meta.get("spec") or {}), "meta": _dumps(rest),
        }  # fmt: skip

    def runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs, newest first: id, started_at, finished_at, status, machine, models, cells."""
        import sqlalchemy as sa

        r, c = self.t["runs"], self.t["cells"]
        q = (
            sa.select(r.c.id, r.c.started_at, r.c.finished_at, r.c.status, r.c.machine,
                      r.c.models, r.c.out_dir, sa.func.count(c.c.id).label("cells"))
            .select_from(r.outerjoin(c, c.c.run_id == r.c.id))
            .group_by(r.c.id, r.c.started_at, r.c.finished_at, r.c.status, r.c.machine,
                      r.c.models, r.c.out_dir)
            .order_by(r.c.started_at.desc(), r.c.id.desc())
        )  # fmt: skip
        if limit:
            q = q.limit(limit)
        with self.engine.connect() as con:
            return [dict(row._mapping) for row in con.execute(q)]

    def run_meta(self, run_id: str) -> dict[str, Any]:
        with self.engine.connect() as con:
            row = con.execute(self.t["runs"].select().where(self.t["runs"].c.id == run_id)).first()
        if row is None:
            recent = ", ".join(r["id"] for r in self.runs(limit=5)) or "none yet"
            raise QuantbenchError(
                f"no run '{run_id}' in store {self.label} (recent runs: {recent})"
            )
        m = row._mapping
        meta = json.loads(m["meta"])
        meta.update(host=json.loads(m["fingerprint"]), versions=json.loads(m["versions"]),
                    spec=json.loads(m["spec"]))  # fmt: skip
        meta, bad = finite(meta)  # a NaN an older quantbench stored is read as null
        if bad:
            meta[RECORD_KEY] = bad
        return _without_secrets(meta)  # a run stored by an older quantbench may hold one

    def sweep_runs(self, sweep_id: str) -> list[dict[str, Any]]:
        """The metadata of every run of sweep ``sweep_id`` (one per machine), oldest first;
        an unknown sweep is a :class:`QuantbenchError` naming the recent ones."""
        with self.engine.connect() as con:
            rows = con.execute(
                self.t["runs"].select().order_by(self.t["runs"].c.started_at)
            ).fetchall()
        metas = []
        sweeps: list[str] = []
        for row in rows:
            sid = json.loads(row._mapping["meta"] or "{}").get("sweep_id")
            if sid and sid not in sweeps:
                sweeps.append(sid)
            if sid == sweep_id:
                metas.append(self.run_meta(row._mapping["id"]))
        if not metas:
            known = ", ".join(sweeps[-5:]) or "none yet"
            raise QuantbenchError(f"no sweep '{sweep_id}' in store {self.label} (sweeps: {known})")
        return metas

    # -------------------------------------------------------------- cells
    def write_cells(self, run_id: str, cells: Iterable[CellResult]) -> int:
        """Insert finished cells, each in its own transaction; a cell already stored for
        this run is left untouched. Returns how many were written."""
        import sqlalchemy as sa

        n, failed, gone = 0, [], False
        for cell in cells:
            if gone:  # one deadline for the batch, not one per cell
                failed.append(f"{cell.model}/{cell.recipe}: not tried (the store is not answering)")
                continue
            try:
                n += self._write_cell(run_id, cell)
            except sa.exc.SQLAlchemyError as e:  # the others are still stored
                why = scrub(first_line(e.orig or e, with_type=False))
                failed.append(f"{cell.model}/{cell.recipe}: {why}")
                # connection lost, timed out, refused: the next cell would wait as long
                gone = isinstance(e, sa.exc.OperationalError)
        if failed:
            raise QuantbenchError(f"{len(failed)} cell(s) not stored: {'; '.join(failed)}")
        return n

    def _write_cell(self, run_id: str, cell: CellResult) -> int:
        import sqlalchemy as sa

        c, s = self.t["cells"], self.t["samples"]
        data = cell.to_dict()
        samples = []
        for i, p in enumerate(data.get("latency") or []):
            for j, v in enumerate(p.pop("samples", None) or []):
                if not math.isfinite(v):
                    continue  # a NaN/inf sample cannot be a timing; not stored
                samples.append({"point": i, "batch_size": p["batch_size"],
                                "input_size": p["input_size"], "seq": j, "value": float(v)})  # fmt: skip
        with self.engine.begin() as con:
            found = con.execute(
                sa.select(c.c.id).where(
                    c.c.run_id == run_id, c.c.model == cell.model, c.c.recipe == cell.recipe
                )
            ).first()
            if found:
                return 0
            cid = con.execute(
                c.insert().values(
                    run_id=run_id,
                    model=cell.model,
                    recipe=cell.recipe,
                    status=cell.status,
                    size_bytes=cell.size_bytes,
                    finished_at=_now(),
                    data=_dumps(data),
                )  # fmt: skip
            ).inserted_primary_key[0]
            if samples:
                con.execute(s.insert(), [{"cell_id": cid, **x} for x in samples])
        return 1

    def delete_cells(self, run_id: str, keys: Iterable[tuple[str, str]]) -> None:
        """Remove (model, recipe) cells of a run and their samples, in one transaction
        (``--resume --retry-errors`` measures them again)."""
        import sqlalchemy as sa

        c, s = self.t["cells"], self.t["samples"]
        with self.engine.begin() as con:
            for model, recipe in keys:
                ids = sa.select(c.c.id).where(
                    c.c.run_id == run_id, c.c.model == model, c.c.recipe == recipe
                )
                con.execute(s.delete().where(s.c.cell_id.in_(ids)))
                con.execute(c.delete().where(c.c.id.in_(ids)))

    def cells(self, run_id: str) -> list[CellResult]:
        """The run's cells, in the order they were stored, with their raw samples."""
        import sqlalchemy as sa

        c, s = self.t["cells"], self.t["samples"]
        with self.engine.connect() as con:
            rows = con.execute(sa.select(c.c.id, c.c.data).where(c.c.run_id == run_id)
                               .order_by(c.c.id)).all()  # fmt: skip
            out = []
            for cid, data in rows:
                d = json.loads(data)
                pts = d.get("latency") or []
                for p in pts:
                    p["samples"] = []
                q = sa.select(s.c.point, s.c.value).where(s.c.cell_id == cid)
                for point, value in con.execute(q.order_by(s.c.point, s.c.seq)):
                    if 0 <= point < len(pts):
                        pts[point]["samples"].append(value)
                out.append(CellResult.from_dict(d))
        return out

    def cell_rows(self, run_id: str) -> list[dict[str, Any]]:
        """(id, model, recipe, status, finished_at) of the run's cells: what is stored."""
        import sqlalchemy as sa

        c = self.t["cells"]
        q = sa.select(c.c.id, c.c.model, c.c.recipe, c.c.status, c.c.finished_at)
        with self.engine.connect() as con:
            rows = con.execute(q.where(c.c.run_id == run_id).order_by(c.c.id))
            return [dict(r._mapping) for r in rows]

    def load_run(self, run_id: str) -> tuple[dict[str, Any], list[CellResult]]:
        from quantbench.storefaults import reading

        with reading(self, f"run {run_id}"):  # damaged rows: one line, not a traceback
            return self.run_meta(run_id), self.cells(run_id)

    def close(self) -> None:
        self.engine.dispose()


def _check_and_migrate(engine: Any, label: str) -> None:
    import sqlalchemy as sa

    md, t = _tables()
    insp = sa.inspect(engine)
    names = set(insp.get_table_names())
    if "quantbench_meta" not in names:
        if names:
            raise QuantbenchError(
                f"store {label} is a database but not a quantbench one (it has tables "
                f"{', '.join(sorted(names)[:5])}); refusing to write into it"
            )
        with engine.begin() as con:  # tables and marker together, or neither
            md.create_all(con)
            con.execute(t["meta"].insert(), [
                {"key": "app", "value": APP},
                {"key": "schema_version", "value": str(SCHEMA_VERSION)},
                {"key": "created_at", "value": _now()},
            ])  # fmt: skip
        return
    with engine.connect() as con:
        meta = {k: v for k, v in con.execute(sa.select(t["meta"].c.key, t["meta"].c.value))}
    if meta.get("app") != APP:
        raise QuantbenchError(f"store {label} is not a quantbench database")
    from quantbench.storefaults import schema_version

    version = schema_version(label, meta)
    if version > SCHEMA_VERSION:
        raise QuantbenchError(
            f"store {label} has schema version {version}, newer than this quantbench "
            f"understands ({SCHEMA_VERSION}): upgrade quantbench"
        )
    while version < SCHEMA_VERSION:
        with engine.begin() as con:
            MIGRATIONS[version](con)
            version += 1
            con.execute(t["meta"].update().where(t["meta"].c.key == "schema_version")
                        .values(value=str(version)))  # fmt: skip


def open_store(target: str | os.PathLike[str] | None = None, create: bool = True) -> Store:
    """Open the store at a path or SQLAlchemy URL, validated; ``create``: make a new
    SQLite file when there is none (read-only commands pass False)."""
    import sqlalchemy as sa

    target = str(target or default_store())
    path: Path | None = None
    if "://" in target:
        url, label = postgres_driver(target), strip_url(target)
        if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
            path = Path(url[len("sqlite:///") :])
            _sqlite_checks(path)
    else:
        path = Path(target).expanduser().resolve()
        _sqlite_checks(path)
        if not create and not path.exists():
            raise QuantbenchError(
                f"no store at '{target}' (a run creates it; or give --store PATH|URL)"
            )
        # URL.create, not an f-string: a path may hold '?' or '#'
        url, label = sa.engine.URL.create("sqlite", database=str(path)), f"'{target}'"
    try:
        engine = sa.create_engine(url)
    except Exception as e:  # bad URL, missing driver
        raise QuantbenchError(
            f"cannot use store {label}: {scrub(first_line(e, with_type=False))}"
        ) from None
    with_deadlines(engine)
    is_sqlite = engine.dialect.name == "sqlite"
    if is_sqlite:

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_con: Any, _record: Any) -> None:
            cur = dbapi_con.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(storefaults.BUSY_TIMEOUT_S * 1000)}")
            cur.close()

    try:
        with engine.connect():
            pass
        _check_and_migrate(engine, label)
    except QuantbenchError:
        engine.dispose()
        raise
    except sa.exc.DatabaseError as e:
        engine.dispose()
        from quantbench.storefaults import describe

        why = first_line(e.orig or e, with_type=False)
        named = describe(e, label, path if is_sqlite else None)
        if named:
            raise QuantbenchError(named) from None
        if is_sqlite:
            raise QuantbenchError(f"store {label} is corrupted or not a database: {why}") from None
        raise QuantbenchError(f"store {label} {server_refusal(why, engine.url)}") from None
    except Exception as e:
        engine.dispose()
        raise QuantbenchError(
            f"cannot open store {label}: {scrub(first_line(e, with_type=False))}"
        ) from None
    return Store(engine, label)
