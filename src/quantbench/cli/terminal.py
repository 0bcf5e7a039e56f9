"""What the CLI prints and how it ends: one line per message, control characters made
visible, exit codes, and the one place errors become a line on stderr.

Every command prints through :func:`say` (and :func:`quantbench.cli.main` runs under
the terminal guard: names and reasons are user input, never terminal commands);
:func:`run_command` turns a :class:`~quantbench.errors.QuantbenchError` into one line and
exit 2, an interrupt into 130, and a bug into one line (the traceback with
``QUANTBENCH_DEBUG=1`` or ``-vv``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from quantbench.errors import QuantbenchError
from quantbench.redact import scrub

EXIT_USAGE = 2
# Measured, but the store failed during the run: results.json holds cells (or the run's
# final record) the store lacks. Distinct from 1 (nothing succeeded) so that a script
# can tell "import results.json" from "measure again".
EXIT_NOT_STORED = 3
EXIT_INTERRUPTED = 130
EXIT_PIPE_CLOSED = 141  # as a shell reports a command ended by SIGPIPE


def say(text: str, file: Any = None) -> None:
    """Print ``text`` as one line: a name or a reason in it may hold newlines (and the
    terminal guard of :func:`quantbench.cli.main` shows every other control character as
    an escape)."""
    from quantbench.inert import terminal_text

    print(terminal_text(str(text), keep="\t"), file=file)


def error(text: str) -> None:
    """``quantbench: error: <text>`` on stderr, secrets scrubbed."""
    say(f"quantbench: error: {scrub(text)}", file=sys.stderr)


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports an error on it)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no real stdout
        return False


def verbosity(args: argparse.Namespace) -> int:
    """-1 with -q, else the number of -v (0: the default output)."""
    return -1 if getattr(args, "quiet", None) else int(getattr(args, "verbose", None) or 0)


def run_command(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run ``command(args)``: its exit code, or the one its failure means (one line on
    stderr, never a traceback unless asked for)."""
    if getattr(args, "quiet", None) and getattr(args, "verbose", None):
        print("quantbench: error: -q and -v cannot be combined", file=sys.stderr)
        return EXIT_USAGE
    if verbosity(args) >= 2:  # tracebacks: the CLI's and every worker's
        os.environ["QUANTBENCH_DEBUG"] = "1"
    from quantbench.runner import quiet_libraries

    quiet_libraries()
    try:
        code = command(args)
        sys.stdout.flush()  # here, where a reader that has gone is told apart (below)
        return code
    except QuantbenchError as e:
        error(str(e))
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("quantbench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # a bug: still one line, traceback on request
        if isinstance(e, BrokenPipeError) and _stdout_closed():
            # `quantbench list recipes | head`: the reader has what it wanted; say nothing,
            # and keep the interpreter's last flush from failing again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_PIPE_CLOSED
        if os.environ.get("QUANTBENCH_DEBUG"):
            raise
        say(
            f"quantbench: internal error: {type(e).__name__}: {scrub(str(e))} "
            "(set QUANTBENCH_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
