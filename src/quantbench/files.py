"""Files quantbench writes: whole or not at all, never over what is not its own, and a
fault of the machine (a full disk, a quota, a file-size limit, a read-only filesystem)
named as what it is.

- :func:`atomic_write` writes through a temporary file in the same directory and renames
  it into place: a reader sees the old file or the new one, never half of one, and a
  write that fails leaves no partial file behind.
- :func:`check_new_file` is what a command that writes a file the user names
  (``export -o``, ``quantize -o``) asks first: an existing file needs ``--force``; a
  database (the results store above all, however its path is spelled: through a
  symlink, another spelling, a hard link) is never written over.
- :class:`DiskFault` is the one-line error for ``ENOSPC``, ``EDQUOT``, ``EFBIG``,
  ``EROFS`` and ``EIO``: "no space left on /data (ext4 /dev/sdb1) writing PATH".

Example::

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write_text(d / "a.txt", "one")
    >>> atomic_write_text(d / "a.txt", "two", overwrite=False)
    Traceback (most recent call last):
    quantbench.errors.QuantbenchError: output '...a.txt' exists; use --force to overwrite it
"""

from __future__ import annotations

import errno
import os
import resource
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from quantbench.errors import QuantbenchError

_SQLITE_MAGIC = b"SQLite format 3\x00"
_FAULTS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO)


class DiskFault(QuantbenchError):
    """Writing ``path`` failed because of the machine, not of the data: ``errno`` says how."""

    def __init__(self, message: str, path: Path, errno_: int) -> None:
        super().__init__(message)
        self.path, self.errno = Path(path), errno_


def file_mode() -> int:
    """The mode a plain new file gets under this process's umask (mkstemp gives 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _unescape(field: str) -> str:  # mountinfo writes space, tab, newline, \ as \ooo
    import re

    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def filesystem(path: str | os.PathLike[str]) -> str:
    """The filesystem holding ``path``, in words: ``/data (ext4 /dev/sdb1)``, or ``/mnt/x
    (tmpfs)`` (its mount point, type and source; the mount point alone off Linux)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    real = os.path.realpath(p)
    best: tuple[str, str, str] | None = None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields, rest = left.split(), right.split()
                if len(fields) < 5 or len(rest) < 2:
                    continue
                mnt = _unescape(fields[4])
                inside = real == mnt or real.startswith(mnt.rstrip("/") + "/")
                if inside and (best is None or len(mnt) >= len(best[0])):
                    best = (mnt, rest[0], _unescape(rest[1]))
    except OSError:
        pass
    if best is None:
        mnt = real
        while not os.path.ismount(mnt) and mnt != os.path.dirname(mnt):
            mnt = os.path.dirname(mnt)
        return mnt
    mnt, fstype, source = best
    return f"{mnt} ({fstype})" if source in (fstype, "none", "") else f"{mnt} ({fstype} {source})"


def fault_message(code: int, path: str | os.PathLike[str]) -> str | None:
    """The line that names fault ``code`` (an errno) met writing ``path``; None when
    ``code`` is not a fault of the machine."""
    if code not in _FAULTS:
        return None
    where = filesystem(path)
    if code == errno.ENOSPC:
        return f"no space left on {where} writing {path}"
    if code == errno.EDQUOT:
        return f"disk quota exceeded on {where} writing {path}"
    if code == errno.EROFS:
        return f"{where} is read-only: cannot write {path}"
    if code == errno.EIO:
        return f"input/output error on {where} writing {path} (a failing disk?)"
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    why = f"the file size limit (ulimit -f) is {limit} bytes" if limit != resource.RLIM_INFINITY \
        else "larger than the filesystem allows"  # fmt: skip
    return f"file too large writing {path} on {where}: {why}"


def remedy(code: int) -> str:
    """What to do about fault ``code`` (an errno), as a clause: "free some space"."""
    return {
        errno.EROFS: "make it writable",
        errno.EFBIG: "raise the limit or write elsewhere",
        errno.EIO: "check the disk",
    }.get(code, "free some space")


def disk_fault(e: BaseException, path: str | os.PathLike[str]) -> DiskFault | None:
    """``e`` as a :class:`DiskFault` when it is a fault of the machine, else None."""
    code = getattr(e, "errno", None)
    if not isinstance(e, OSError) or code is None:
        return None
    message = fault_message(code, path)
    return DiskFault(message, Path(path), code) if message else None


@contextmanager
def writing(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn a fault of the machine met inside the block into a :class:`DiskFault` on
    ``path``; other errors pass unchanged."""
    try:
        yield
    except OSError as e:
        fault = disk_fault(e, path)
        if fault is None:
            raise
        raise fault from None


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None],
                 overwrite: bool = True) -> None:  # fmt: skip
    """Call ``write(tmp)`` on a temporary file next to ``path``, then put it in place.

    A reader never sees a half-written file; a write that fails removes the temporary
    file. ``overwrite=False`` never replaces a file that exists (checked and placed in
    one step, a hard link, where the filesystem has them). A full disk, a quota, a file
    size limit or a read-only filesystem raises :class:`DiskFault`."""
    path = Path(path)
    with writing(path):
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        with writing(path):
            try:
                write(tmp)
            except OSError:
                raise
            except Exception as e:  # a library that hides the errno (torch: "unexpected pos")
                code = _hidden_fault(tmp)
                if code is None:
                    raise
                raise OSError(code, os.strerror(code)) from e
            os.chmod(tmp, file_mode())  # reports, exports, artifacts are for sharing
            if overwrite:
                os.replace(tmp, path)
            else:
                _place_new(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _hidden_fault(tmp: Path) -> int | None:
    """The fault a failed write of ``tmp`` most likely met when the library that wrote it
    did not say: the file size limit reached, or (almost) no space left; else None."""
    try:
        size = tmp.stat().st_size
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY and size >= limit:
            return errno.EFBIG
        st = os.statvfs(tmp.parent)
    except OSError:
        return None
    free = (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize
    return errno.ENOSPC if free < 1 << 20 else None


def _place_new(tmp: Path, path: Path) -> None:
    """Move ``tmp`` to ``path`` only if ``path`` does not exist, atomically."""
    try:
        os.link(tmp, path)  # fails with EEXIST instead of replacing
    except FileExistsError:
        raise QuantbenchError(f"output '{path}' exists; use --force to overwrite it") from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV,
                           errno.EMLINK, errno.ENOSYS):  # fmt: skip
            raise
        if path.exists() or path.is_symlink():  # no hard links here: check, then rename
            raise QuantbenchError(f"output '{path}' exists; use --force to overwrite it") from None
        os.replace(tmp, path)


def atomic_write_text(path: str | os.PathLike[str], text: str, overwrite: bool = True) -> None:
    """Write ``text`` (UTF-8) to ``path`` with :func:`atomic_write`."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)

    atomic_write(path, write, overwrite)


def _store_path(store: str | os.PathLike[str] | None) -> Path | None:
    """The file of a store given as a path or ``sqlite:///`` URL (None for a server)."""
    from quantbench.settings.output import default_store

    target = str(store or default_store())
    if target.startswith("sqlite:///") and len(target) > len("sqlite:///"):
        return Path(target[len("sqlite:///") :].split("?")[0])
    return None if "://" in target else Path(target).expanduser()


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file: the same inode when both exist (symlinks,
    spellings, hard links), else the same resolved path (one that does not exist yet)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def is_database(path: Path) -> bool:
    """Whether ``path`` is an SQLite database file (a results store, or anyone's)."""
    try:
        with open(path, "rb") as f:
            return f.read(16) == _SQLITE_MAGIC
    except OSError:
        return False


def check_new_file(
    path: str | os.PathLike[str], force: bool = False, store: str | None = None
) -> Path:
    """The path a command may write the user's output to, or a :class:`QuantbenchError`:
    a directory, the results store (``store``, default ``$QUANTBENCH_STORE`` or
    ``./quantbench.db``; its journal files too) or any other database is refused even
    with ``force``; another existing file needs ``force``."""
    p = Path(path)
    if p.is_dir():
        raise QuantbenchError(f"output '{p}' is a directory; give a file path")
    db = _store_path(store)
    if db is not None:
        for suffix in ("", "-journal", "-wal", "-shm"):  # SQLite's own files beside it
            own = db.with_name(db.name + suffix)
            if _same_file(p, own):
                what = f"the results store '{db}'" if not suffix else \
                    f"SQLite's {suffix[1:]} file of the results store '{db}'"  # fmt: skip
                raise QuantbenchError(
                    f"output '{p}' is {what}; it is never written over, even with --force: "
                    "give another file"
                )
    if is_database(p):
        raise QuantbenchError(
            f"output '{p}' is a database (a results store?); it is never written over, "
            "even with --force: give another file"
        )
    if (p.exists() or p.is_symlink()) and not force:
        raise QuantbenchError(f"output '{p}' exists; use --force to overwrite it")
    if not p.parent.exists():
        raise QuantbenchError(f"output directory '{p.parent}' does not exist")
    if not os.access(p.parent, os.W_OK):
        read_only = os.statvfs(p.parent).f_flag & os.ST_RDONLY
        raise QuantbenchError(
            fault_message(errno.EROFS, p) if read_only
            else f"cannot write to output directory '{p.parent}'"
        )  # fmt: skip
    return p
