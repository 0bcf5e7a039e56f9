"""Errors that the CLI turns into one clear line and exit code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class QuantbenchError(Exception):
    """A problem with the user's input or environment: reported in one line, exit 2."""


class UnsupportedError(Exception):
    """A recipe does not apply to a model (recorded as an ``unsupported`` cell)."""


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> QuantbenchError:
    """Build the error for an unknown registry name, listing the valid ones."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return QuantbenchError(f"unknown {kind} '{name}'.{hint} Valid {kind}s: {', '.join(valid)}")
