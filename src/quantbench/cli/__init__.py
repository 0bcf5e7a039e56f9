"""Command line: parse, call one library function, print. Heavy imports stay lazy.

- :mod:`~quantbench.cli.parser`: the parser, its commands in ``--help`` order;
- :mod:`~quantbench.cli.run`: ``run`` (and resume) and the lines a run ends with;
- :mod:`~quantbench.cli.settings_flags`: the run's setting flags, generated from
  :mod:`quantbench.settings`;
- :mod:`~quantbench.cli.one_model`: ``quantize``, ``sensitivity``;
- :mod:`~quantbench.cli.stored`: ``runs``, ``show``, ``import``, ``export``;
- :mod:`~quantbench.cli.reports`: ``report``, ``compare``;
- :mod:`~quantbench.cli.info`: ``schema``, ``list``, ``doctor``;
- :mod:`~quantbench.cli.terminal`: printing one line, exit codes, errors as one line.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from quantbench.cli.parser import build_parser
from quantbench.cli.run import print_run_summary, print_sweep_summary
from quantbench.cli.settings_flags import run_overrides
from quantbench.cli.terminal import EXIT_NOT_STORED, EXIT_USAGE, run_command

__all__ = [
    "EXIT_NOT_STORED",
    "EXIT_USAGE",
    "build_parser",
    "main",
    "print_run_summary",
    "print_sweep_summary",
    "run_overrides",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``quantbench`` console script; returns the exit code.

    Everything printed, by quantbench or a library, goes through one guard that shows
    control characters as escapes: names are user input, never terminal commands."""
    from quantbench.inert import guard_terminal

    with guard_terminal():
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
