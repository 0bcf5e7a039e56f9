"""What is wrong with a store, in one line: locked by another process (after a bounded
wait), read-only, on a full disk, damaged (the integrity report's first problem and how
many more), or with a schema version row missing or nonsense.

An SQLite error carries its code (``sqlite3.Error.sqlite_errorcode``): that code, not
the exception's class (every one is a ``DatabaseError``), says which it is.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: How long a command waits for a store another process holds locked (SQLite's busy
#: timeout), before it says so.
BUSY_TIMEOUT_S = 10.0

_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26
_HEADER = "*** in database main ***"


def sqlite_code(e: BaseException) -> int | None:
    """The primary SQLite result code of ``e`` (an ``sqlite3.Error`` or SQLAlchemy's
    wrapper of one); None for any other error."""
    for err in (getattr(e, "orig", None), e):
        code = getattr(err, "sqlite_errorcode", None)
        if isinstance(code, int):
            return code & 0xFF
    return None


def lock_holders(path: Path) -> list[int]:
    """The processes holding a POSIX lock on file ``path`` (``/proc/locks``; Linux), as
    SQLite's locks are; empty when it cannot tell."""
    try:
        st = os.stat(path)
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = []
    for line in lines:
        fields = line.split()
        if "->" in fields:  # a waiter, not a holder
            continue
        if len(fields) >= 6 and fields[5] == dev and fields[4].isdigit():
            pid = int(fields[4])
            if pid not in pids and pid != os.getpid() and pid > 0:
                pids.append(pid)
    return pids


def locked_message(label: str, path: Path | None) -> str:
    """``store 'q.db' is locked by another process (pid 4242): waited 10 s; ...``."""
    pids = lock_holders(path) if path is not None else []
    who = f" (pid {', '.join(map(str, pids))})" if pids else ""
    return (f"store {label} is locked by another process{who}: waited {BUSY_TIMEOUT_S:g} s "
            "for it; try again once it is done")  # fmt: skip


def _read_only(path: Path | None) -> str | None:
    """Why ``path`` (or, when it does not exist, its directory) cannot be written: a
    read-only filesystem, an immutable file, no permission; None when it can."""
    if path is None:
        return None
    from quantbench.files import filesystem

    target = path if path.exists() else path.parent
    try:
        if os.statvfs(target).f_flag & os.ST_RDONLY:
            return f"the filesystem {filesystem(target)} is mounted read-only"
    except OSError:
        return None
    if not os.access(target, os.W_OK):
        return "the file is not writable: its mode, or chattr +i" if path.exists() \
            else f"its directory '{path.parent}' is not writable"  # fmt: skip
    return None


def read_only_message(label: str, path: Path | None) -> str | None:
    """``store 'q.db' is read-only (why): ...`` when store file ``path`` cannot be
    written (or, missing, created); None when it can."""
    ro = _read_only(path)
    if ro is None or path is None:
        return None
    if not path.exists():
        return f"cannot create store {label}: {ro}"
    return f"store {label} is read-only ({ro}): it can be read (runs, show, export, " \
        "report, compare) but not written"  # fmt: skip


def describe(e: BaseException, label: str, path: Path | None) -> str | None:
    """One line naming what is wrong with store ``label`` (file ``path`` for SQLite) that
    ``e`` reveals; None when ``e`` is none of the faults named here."""
    from quantbench.errors import first_line
    from quantbench.files import fault_message

    code = sqlite_code(e)
    if code is None:
        return None
    why = first_line(getattr(e, "orig", None) or e, with_type=False)
    if code in (_BUSY, _LOCKED):
        return locked_message(label, path)
    if code == _FULL:
        return fault_message(errno.ENOSPC, path or label)
    if code in (_READONLY, _CANTOPEN, _IOERR):
        ro = read_only_message(label, path)
        if ro is not None:
            return ro
        if code == _READONLY:
            return f"store {label} is read-only ({why}): it can be read but not written"
        if code == _IOERR:
            return f"store {label}: input/output error ({why}); is the disk failing or full?"
        return f"cannot open store {label}: {why}"
    if code in (_CORRUPT, _NOTADB):
        return (f"store {label} is corrupted ({why}): not replaced; move it away or give "
                "another --store")  # fmt: skip
    return None


def integrity_problem(label: str, rows: list[Any]) -> str:
    """The one line for a failed ``PRAGMA quick_check``: its first problem and how many
    more (SQLite reports each on a line, several to a row, under a header line)."""
    problems = [line.strip() for row in rows for line in str(row[0]).splitlines()
                if line.strip() and line.strip() != _HEADER]  # fmt: skip
    first = problems[0] if problems else "failed"
    more = f" and {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
    return (f"store {label} is corrupted (integrity check: {first}{more}): not replaced; "
            "move it away or give another --store")  # fmt: skip


def schema_version(label: str, meta: dict[str, str]) -> int:
    """The store's schema version from its ``quantbench_meta`` rows, or a
    :class:`~quantbench.errors.QuantbenchError` saying exactly what is wrong with it."""
    from quantbench.errors import QuantbenchError

    if "schema_version" not in meta:
        raise QuantbenchError(
            f"store {label} has no schema_version row in quantbench_meta: it is damaged; "
            "not changed (restore it from a backup, or give another --store)"
        )
    value = meta["schema_version"]
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        shown = repr(value) if len(str(value)) <= 40 else repr(str(value)[:40]) + "..."
        raise QuantbenchError(
            f"store {label} has schema version {shown}, not a version number (1, 2, ...): "
            "it is damaged; not changed (restore it from a backup, or give another --store)"
        )
    return int(text)


def store_fault(store: Any, e: BaseException) -> str | None:
    """:func:`describe` for an error met using an open store (its file found from its
    engine); None when ``e`` is none of those faults."""
    engine = getattr(store, "engine", None)
    if engine is None:
        return None
    db = getattr(engine.url, "database", None) if engine.dialect.name == "sqlite" else None
    path = Path(db) if db and db != ":memory:" else None
    return describe(e, getattr(store, "label", "?"), path)


@contextmanager
def reading(store: Any, what: str) -> Iterator[None]:
    """Reading ``what`` from ``store``: a row that does not decode (bytes damaged inside
    a record, which SQLite's quick check does not see), or a fault named by
    :func:`store_fault`, is one line instead of a traceback."""
    import json

    from quantbench.errors import QuantbenchError

    try:
        yield
    except QuantbenchError:
        raise
    except json.JSONDecodeError as e:
        raise QuantbenchError(_damaged(store, what, f"not valid JSON: {e.msg}")) from None
    except UnicodeDecodeError:
        raise QuantbenchError(_damaged(store, what, "not UTF-8 text")) from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise QuantbenchError(_damaged(store, what, f"{type(e).__name__}")) from None
    except Exception as e:
        why = store_fault(store, e)
        if why is None and "decode" in str(e):  # SQLite text that is not UTF-8
            why = _damaged(store, what, "not UTF-8 text")
        if why is None:
            raise
        raise QuantbenchError(why) from None


def _damaged(store: Any, what: str, why: str) -> str:
    # the damaged text itself is never shown: it may hold any bytes, control ones included
    return (f"store {getattr(store, 'label', '?')} is damaged: a row of {what} is {why}; "
            "restore it from a backup, or give another --store")  # fmt: skip
