"""Errors that the CLI turns into one clear line and exit code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from quantbench.redact import scrub


class QuantbenchError(Exception):
    """A problem with the user's input or environment: reported in one line, exit 2."""


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
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return QuantbenchError(f"unknown {kind} '{name}'.{hint} Valid {kind}s: {', '.join(valid)}")
