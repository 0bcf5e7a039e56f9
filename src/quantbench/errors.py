"""Errors that the CLI turns into one clear line and exit code 2."""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable
from typing import Any

from quantbench.redact import scrub

# The longest message an error carries: a value quoted in it (a name, a path, a setting)
# comes from the user and may be megabytes long; the head and the tail of the message
# (what went wrong, the valid names) are what a reader needs.
MAX_MESSAGE = 2000
# The longest a single user value is quoted in a message.
MAX_QUOTED = 120


class QuantbenchError(Exception):
    """A problem with the user's input or environment: reported in one line, exit 2.

    A message longer than :data:`MAX_MESSAGE` characters keeps its head and its tail
    (a user value quoted in it is never printed whole)."""

    def __init__(self, *args: Any) -> None:
        if len(args) == 1 and isinstance(args[0], str) and len(args[0]) > MAX_MESSAGE:
            text = args[0]
            cut = len(text) - MAX_MESSAGE
            head = MAX_MESSAGE * 2 // 3
            args = (f"{text[:head]} [... {cut} characters cut ...] {text[head + cut :]}",)
        super().__init__(*args)


def clip(text: str, limit: int = MAX_QUOTED) -> str:
    """``text`` when short, else its start and how long it was: a user value as an error
    quotes it.

    >>> clip("x" * 200, 10)
    'xxxxxxxxxx... (200 characters)'
    """
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxdict, _SHOWN.maxlist, _SHOWN.maxtuple = 3, 4, 6, 6
_SHOWN.maxset, _SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlong = 6, MAX_QUOTED, 60, 40


def shown(value: Any) -> str:
    """``repr(value)`` bounded in size and depth (a YAML structure of a million values, a
    recursive one, a megabyte string): what an error message quotes.

    >>> shown(list(range(100)))
    '[0, 1, 2, 3, 4, 5, ...]'
    """
    return clip(_SHOWN.repr(value), 2 * MAX_QUOTED)


class UnsupportedError(Exception):
    """A recipe does not apply to a model (recorded as an ``unsupported`` cell)."""


def first_line(e: BaseException, with_type: bool = True) -> str:
    """An exception as one line: ``"ValueError: first line of its message"``.

    ``with_type=False`` gives the message's first line alone (or the type's name when
    the message is empty), for errors whose text already says what went wrong.

    >>> first_line(ValueError("bad\\nmore"))
    'ValueError: bad'
    >>> first_line(OSError(""), with_type=False)
    'OSError'
    """
    lines = scrub(str(e)).strip().splitlines()  # a driver's message may echo a password
    if not lines:
        return type(e).__name__
    return f"{type(e).__name__}: {lines[0]}" if with_type else lines[0]


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> QuantbenchError:
    """Build the error for an unknown registry name, listing the valid ones."""
    valid = sorted(valid)
    name = clip(str(name))  # a longer one matches nothing and is not printed whole
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return QuantbenchError(f"unknown {kind} '{name}'.{hint} Valid {kind}s: {', '.join(valid)}")
