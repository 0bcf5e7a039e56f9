"""The command line's parser: the top level (``--version``, ``-v``/``-q``) and each
command's subparser, added by the module that runs it (in the order ``--help`` lists
them)."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from quantbench.cli import info, one_model, reports, run, stored
from quantbench.cli.terminal import EXIT_USAGE
from quantbench.version import __version__

# Each adds one subcommand (its flags, and ``func``: what runs it).
COMMANDS = (
    run.add_run,
    info.add_schema,
    one_model.add_quantize,
    one_model.add_sensitivity,
    info.add_list,
    reports.add_report,
    stored.add_runs,
    stored.add_show,
    stored.add_import,
    stored.add_export,
    reports.add_compare,
    info.add_doctor,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + error
        self.exit(EXIT_USAGE, f"quantbench: error: {message} (see '{self.prog} --help')\n")


def _add_verbosity(p: argparse.ArgumentParser, default: Any) -> None:
    """-v/-q; on subcommands too, there with suppressed defaults (not to reset the top's)."""
    p.add_argument("-v", "--verbose", action="count", default=default,
                   help="more output: -v per-stage progress lines, -vv also tracebacks")  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true", default=default,
                   help="only errors and the final result lines")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="quantbench",
        description="Quantize deep-learning models and measure what it buys and costs.",
    )
    parser.add_argument("--version", action="version", version=f"quantbench {__version__}")
    _add_verbosity(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    for p in sub.choices.values():
        _add_verbosity(p, argparse.SUPPRESS)
    return parser
