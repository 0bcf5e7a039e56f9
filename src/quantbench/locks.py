"""Locks: one quantbench at a time measures a run, and writes an output directory.

Two ``run --resume`` of one run at once would both measure the missing cells, and the
run's results.json would no longer match the store; two commands writing one directory
would replace each other's files. So:

- an output directory is locked by a file in it, ``.quantbench.lock`` (:func:`lock_dir`),
  by every command that writes one (run, resume, a sweep's node directories, report,
  compare, sensitivity);
- a run is locked in its store (:func:`lock_run`), so that two resumes exclude each other
  even when they write different directories (a relative ``--out`` resolved from another
  working directory) or run on different machines sharing a PostgreSQL store. PostgreSQL:
  a session advisory lock on a connection of its own, named after its holder
  (``application_name``). SQLite: a lock file next to the store file (an SQLite store is
  shared only by the processes of one machine, so a lock of that machine is enough).

A lock file is held with ``flock``: the kernel releases it when its process dies, however
it dies, and PostgreSQL releases an advisory lock when its connection ends, so a killed
quantbench never leaves a lock that blocks. The file names its holder (pid, host, since,
what); the second command says who holds the lock, in one line, and exits 2. A file left
by a killed process is taken over with a note. Where the filesystem has no ``flock``
(some network filesystems), the file alone decides: a holder that is not running any
more on this host is taken over, one on another host is reported.
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from quantbench.errors import QuantbenchError

DIR_LOCK = ".quantbench.lock"
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS)


class Locked(QuantbenchError):
    """Another process holds the lock: its holder (pid, host, since, what) as recorded."""

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def holder_record(what: str) -> dict[str, Any]:
    """Who this process is, as a lock file records it."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": _now(), "what": what}


def describe(holder: dict[str, Any]) -> str:
    """``quantbench run --resume R (pid 4242 on lab1, since 2026-12-05 07:01:23 UTC)``."""
    if not holder:
        return "another process (its lock file names no holder yet)"
    what = holder.get("what") or "quantbench"
    return (f"{what} (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            f"since {holder.get('since', '?')})")  # fmt: skip


def _alive(pid: Any) -> bool:
    """Whether process ``pid`` runs on this host (a pid we may not signal runs)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OverflowError):
        return isinstance(pid, int)
    return True


def _read(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 4096)
        found = json.loads(data.decode("utf-8")) if data.strip() else {}
        return found if isinstance(found, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(fd: int, holder: dict[str, Any]) -> None:
    """Record the holder; best effort: on a full disk the lock still holds, unnamed."""
    try:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(holder) + "\n").encode("utf-8"))
    except OSError:
        pass


class FileLock:
    """An exclusive lock held through the file at ``path`` (see the module's text)."""

    def __init__(self, path: Path, fd: int, flocked: bool) -> None:
        self.path, self.fd, self.flocked = path, fd, flocked

    def update(self, what: str) -> None:
        """Say what the holder does now (a new run's id, once it has one)."""
        holder = holder_record(what)
        holder["since"] = _read(self.fd).get("since", holder["since"])
        _write(self.fd, holder)

    def release(self) -> None:
        if self.fd < 0:
            return
        try:  # removed while still held: whoever opened it sees it replaced and retries
            if os.path.exists(self.path) and os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = -1


def _busy(subject: str, holder: dict[str, Any], hint: str = "") -> Locked:
    return Locked(f"{subject} is in use by {describe(holder)}{hint}; wait for it to end, "
                  "or stop it", holder)  # fmt: skip


def _took_over(subject: str, previous: dict[str, Any]) -> None:
    print(f"quantbench: note: {subject}: taking over the lock left by {describe(previous)}, "
          "which is no longer running", file=sys.stderr)  # fmt: skip


def acquire_file(path: Path, what: str, subject: str) -> FileLock:
    """Take the lock file ``path`` for ``what``, or raise :class:`Locked` saying that
    ``subject`` is in use by its holder. Prints a note when it takes over a lock file a
    dead process left."""
    import fcntl

    for _ in range(20):  # a holder that releases between our open and our flock: retry
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise _busy(subject, holder) from None
        except OSError as e:
            os.close(fd)
            if e.errno not in _NO_FLOCK:
                raise
            return _acquire_pidfile(path, what, subject)
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # its holder removed it as it released it: take the new one
            os.close(fd)
            continue
        previous = _read(fd)
        if previous:  # nobody holds it, yet it names a holder: one that was killed
            _took_over(subject, previous)
        _write(fd, holder_record(what))
        return FileLock(path, fd, True)
    raise QuantbenchError(f"{subject}: could not take the lock {path} (it keeps changing)")


def _acquire_pidfile(path: Path, what: str, subject: str) -> FileLock:
    """:func:`acquire_file` on a filesystem without ``flock``: the file, created only if
    missing, is the lock; one whose holder no longer runs on this host is taken over."""
    for _ in range(20):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                with open(path, encoding="utf-8") as f:
                    previous = json.loads(f.read() or "{}")
            except (OSError, ValueError):
                previous = {}
            if not isinstance(previous, dict) or not previous:
                raise _busy(subject, {}, f" (if nothing is running, remove {path})") from None
            if previous.get("host") != socket.gethostname():
                raise _busy(subject, previous, f" (if it is gone, remove {path})") from None
            if _alive(previous.get("pid")):
                raise _busy(subject, previous) from None
            _took_over(subject, previous)
            Path(path).unlink(missing_ok=True)
            continue
        _write(fd, holder_record(what))
        return FileLock(path, fd, False)
    raise QuantbenchError(f"{subject}: could not take the lock {path} (it keeps changing)")


@contextmanager
def lock_dir(path: str | Path, what: str) -> Iterator[FileLock]:
    """Hold output directory ``path`` (made if missing) for ``what`` while the block runs."""
    from quantbench.files import writing

    path = Path(path)
    try:
        with writing(path):  # the directory, not the lock file, is what the user named
            path.mkdir(parents=True, exist_ok=True)
            lock = acquire_file(path / DIR_LOCK, what, f"output directory '{path}'")
    except OSError as e:
        raise QuantbenchError(
            f"cannot write to output directory '{path}': {e.strerror or e}"
        ) from None
    try:
        yield lock
    finally:
        lock.release()


# ------------------------------------------------------------------------ runs in a store


def _run_lock_file(store: Any, run_id: str) -> Path | None:
    """The lock file of ``run_id`` next to an SQLite store's file (None: in memory)."""
    db = getattr(store.engine.url, "database", None)
    if not db or db == ":memory:":
        return None
    db = Path(db)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_id)
    return db.with_name(f".{db.name}.run-{safe}.lock")


def _pg_keys(run_id: str) -> tuple[int, int]:
    """The two int4 keys of ``run_id``'s advisory lock: quantbench's, then the run's."""
    digest = hashlib.sha256(f"quantbench run {run_id}".encode()).digest()
    return 0x51420001, int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@contextmanager
def _pg_lock(store: Any, run_id: str, what: str) -> Iterator[None]:
    import sqlalchemy as sa

    k1, k2 = _pg_keys(run_id)
    con = store.engine.connect()
    try:
        name = f"quantbench {os.getpid()}@{socket.gethostname()}"[:63]
        con.execute(sa.text("select set_config('application_name', :n, false)"), {"n": name})
        got = con.execute(sa.text("select pg_try_advisory_lock(:a, :b)"), {"a": k1, "b": k2})
        if not got.scalar():
            row = con.execute(sa.text(
                "select a.application_name, a.backend_start from pg_locks l join "
                "pg_stat_activity a on a.pid = l.pid where l.locktype = 'advisory' and "
                "l.granted and l.classid = :a and l.objid = :b and l.objsubid = 2"
            ), {"a": k1, "b": k2}).first()  # fmt: skip
            con.rollback()
            holder = _pg_holder(row)
            raise Locked(f"run {run_id} is in use by {describe(holder)} (store "
                         f"{store.label}); wait for it to end, or stop it", holder)  # fmt: skip
        con.commit()  # the lock is the session's: it outlives this transaction
    except BaseException:
        con.close()
        raise
    try:
        yield
    finally:
        try:
            con.execute(sa.text("select pg_advisory_unlock(:a, :b)"), {"a": k1, "b": k2})
            con.commit()
        except Exception:  # the server is gone: so is the lock
            pass
        con.close()


def _pg_holder(row: Any) -> dict[str, Any]:
    if row is None:  # released in between
        return {}
    name, since = row[0] or "", row[1]
    pid, _, host = name.removeprefix("quantbench ").partition("@")
    when = since.astimezone(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if since else "?"
    if not name.startswith("quantbench ") or not pid.isdigit():
        return {"what": f"a client named {name!r}" if name else "another client", "since": when,
                "pid": "?", "host": "?"}  # fmt: skip
    return {"what": "another quantbench", "pid": int(pid), "host": host or "?", "since": when}


@contextmanager
def lock_run(store: Any, run_id: str, what: str) -> Iterator[None]:
    """Hold run ``run_id`` of ``store`` for ``what`` while the block runs, or raise
    :class:`Locked` naming who holds it. A store of another kind than SQLite and
    PostgreSQL is not locked (its output directory still is)."""
    engine = getattr(store, "engine", None)
    dialect = engine.dialect.name if engine is not None else None
    if dialect == "postgresql":
        with _pg_lock(store, run_id, what):
            yield
        return
    path = _run_lock_file(store, run_id) if dialect == "sqlite" else None
    if path is None:
        yield
        return
    try:
        lock = acquire_file(path, what, f"run {run_id}")
    except OSError as e:  # beside the store: where SQLite writes its journal too
        from quantbench.files import fault_message
        from quantbench.storefaults import read_only_message

        db = Path(store.engine.url.database)
        why = read_only_message(store.label, db) or fault_message(e.errno or 0, path)
        raise QuantbenchError(
            f"cannot write run {run_id}: {why or f'cannot lock it ({path}): {e.strerror or e}'}"
        ) from None
    try:
        yield
    finally:
        lock.release()
