"""What a file given to quantbench actually is, for the one line that refuses it.

Every loader of a user's file (an artifact, a weights file, results.json, a dataset, a
model directory) reads it inside :func:`expecting`: whatever the library underneath
raises (onnxruntime's protobuf error, torch's zip error, a UnicodeDecodeError) becomes
one :class:`~quantbench.errors.QuantbenchError` that names the file, what was expected
and what the file looks like instead (empty, a ZIP archive, a PNG image, JSON text...).

Example::

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.onnx"
    >>> _ = p.write_bytes(b'{"a": 1}')
    >>> str(not_a(p, "an ONNX model"))  # doctest: +ELLIPSIS
    "'.../m.onnx' is not an ONNX model: it is JSON text"
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from quantbench.errors import QuantbenchError, first_line

TORCH_CHECKPOINT = ("a ZIP archive", "a Python pickle")  # what torch.save writes
TRUST_HINT = "pass trust_code=True only if you trust where the file came from"

# Leading bytes of the formats a file given in the wrong place most often is.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip file"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x89HDF", "an HDF5 file"),
    (b"\x7fELF", "an executable (ELF)"),
)


def describe(path: str | Path, limit: int = 4096) -> str | None:
    """What the bytes of ``path`` look like ("empty", "a ZIP archive", "JSON text",
    "text", "binary data"); None when it cannot be read.

    >>> describe("/nonexistent") is None
    True
    """
    try:
        with open(path, "rb") as f:
            head = f.read(limit)
    except OSError:
        return None
    if not head:
        return "empty"
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not merely a character cut at the limit
            return "binary data"
        text = head[: e.start].decode("utf-8")
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped[:1] in ("{", "["):
        return "JSON text"
    if "\x00" in text:
        return "binary data"
    return "text"


def not_a(
    path: str | Path, expected: str, detail: str | None = None, container: tuple[str, ...] = ()
) -> QuantbenchError:
    """The one line for a file that is not ``expected`` ("an ONNX model"): what it looks
    like instead when that is another kind of file, else ``detail`` (what the library
    reading it said). ``container``: what the expected format itself looks like to
    :func:`describe` ("a ZIP archive" for a torch checkpoint): such a file is corrupt."""
    what = describe(path)
    if what == "empty":
        why = "the file is empty"
    elif what in ("binary data", None, *container):
        why = f"truncated or corrupt ({detail})" if detail else "truncated or corrupt"
    else:
        why = f"it is {what}"
    return QuantbenchError(f"'{path}' is not {expected}: {why}")


@contextlib.contextmanager
def expecting(path: str | Path, expected: str, container: tuple[str, ...] = ()) -> Iterator[None]:
    """Read ``path`` inside this block: any error but a QuantbenchError becomes
    :func:`not_a` (``KeyboardInterrupt`` and ``MemoryError`` pass through)."""
    try:
        yield
    except QuantbenchError:
        raise
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as e:
        raise not_a(path, expected, _short(e), container) from None


def _short(e: BaseException) -> str:
    """A library's error in a few words: its first sentence, without a bracketed prefix
    ("[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : ...") and cut to 160 characters."""
    text = first_line(e, with_type=False)
    if text.startswith("[") and " : " in text:
        text = text.rsplit(" : ", 1)[-1]
    text = re.sub(r"^\[[^\]]*\][\s.:]*", "", text)  # "[enforce fail at file.cc:180] . "
    if " failed:" in text:  # "Load model from PATH failed:WHY": the path is said already
        text = text.rsplit(" failed:", 1)[-1].strip()
    text = text.split(". ", 1)[0].rstrip(".")
    return text if len(text) <= 160 else text[:157] + "..."


def torch_load(path: Path, expected: str) -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, never
    pickled code. A file that pickles Python objects (a whole ``nn.Module`` saved with
    ``torch.save(model)``) is refused, naming the first object it would import."""
    import pickle

    import torch

    with expecting(path, expected, TORCH_CHECKPOINT):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
            if found is None:
                raise not_a(path, expected, "not a torch.save file", TORCH_CHECKPOINT) from None
            raise QuantbenchError(
                f"'{path}' is not {expected}: it pickles Python objects ({found.group(1)}), "
                "which quantbench never unpickles (that can run code); save the "
                "model's state_dict() instead"
            ) from None


# --------------------------------------------------------------------------- .pt2


def check_pt2(path: Path) -> None:
    """Refuse a file that is not a ``torch.export.save`` archive, without unpickling
    anything in it (a garbage file gets its one line whether code is trusted or not)."""
    import zipfile

    what = "a .pt2 program (torch.export.save)"
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise not_a(path, what, first_line(e, with_type=False), ("a ZIP archive",)) from None
    if not any(n.endswith("/archive_format") for n in names):
        raise QuantbenchError(f"'{path}' is not {what}: a ZIP archive without a program in it")


def read_pt2(path: Path, trust_code: bool, load: Callable[[Path], Any]) -> Any:
    """``load(path)`` of a ``.pt2`` file, only when ``trust_code``: ``torch.export.load``
    unpickles what the archive holds with ``weights_only=False`` (its sample inputs,
    constants), so a ``.pt2`` file from elsewhere can run code as it is read."""
    check_pt2(path)
    if not trust_code:
        raise QuantbenchError(
            f"'{path}' is a torch.export program: loading it unpickles the Python objects "
            f"it holds, which can run code; {TRUST_HINT}"
        )
    with _quiet_torch_export(), expecting(path, "a loadable .pt2 program", ("a ZIP archive",)):
        return load(path)


@contextlib.contextmanager
def _quiet_torch_export() -> Iterator[None]:
    """torch.export.load logs a whole traceback at WARNING before it raises on a bad
    archive: the one line quantbench raises says it."""
    loggers = [logging.getLogger(n) for n in ("torch.export", "torch._export.serde.serialize")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
