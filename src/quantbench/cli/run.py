"""``quantbench run``: its flags (the settings' own, generated, and the run's), the run or
resume, and the lines it ends with (cells, recommendations, where everything went, what
the store lacks)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from quantbench.cli.settings_flags import add_setting_flag, add_settings_flags, run_overrides
from quantbench.cli.terminal import EXIT_INTERRUPTED, EXIT_NOT_STORED, say, verbosity
from quantbench.errors import QuantbenchError


def add_run(sub: Any) -> None:
    """The ``run`` subcommand: every setting (:mod:`quantbench.settings`) as a flag, plus
    what is not a setting (the config file, resume, progress)."""
    p = sub.add_parser(
        "run",
        help="quantize models and measure size, latency sweeps and fidelity",
        description="Quantize models with each recipe and measure size, latency sweeps and "
        "fidelity; write results.json, results.csv, plots/ and report.md. With no arguments, "
        "runs the lab: eight models, fp32 + dynamic-int8 + static-int8, both sweeps. "
        "Settings: flags > --config file > the preset (--preset, else the file's) > "
        "defaults; 'quantbench schema' lists them all.",
    )
    p.set_defaults(func=cmd_run)
    add_setting_flag(p, "preset")
    p.add_argument("--config", metavar="FILE.yaml", help="experiment file (see examples/)")
    p.add_argument("--resume", metavar="RUN_ID", help="finish a stored run: measure only "
                   "the cells it lacks (its settings come from the store); a sweep id "
                   "resumes the sweep on its Ray cluster")  # fmt: skip
    p.add_argument("--retry-errors", action="store_true", help="with --resume: measure the "
                   "cells that ended in error or timeout again, replacing them")  # fmt: skip
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: when stderr is a terminal)")  # fmt: skip
    add_settings_flags(p)


def cmd_run(args: argparse.Namespace) -> int:
    from quantbench.runner import run
    from quantbench.runner.checks import build_spec

    overrides = run_overrides(args)
    if args.retry_errors and not args.resume:
        raise QuantbenchError("--retry-errors needs --resume RUN_ID")
    progress = False if verbosity(args) < 0 and args.progress is None else args.progress
    if args.resume:
        given = [k for k in overrides if k not in ("store", "ray_address")]
        given += ["--preset"] * bool(args.preset) + ["--config"] * bool(args.config)
        if given:
            raise QuantbenchError(
                f"--resume takes the run's settings from the store; drop {', '.join(given)}"
            )
        from quantbench.runner import resume

        result = resume(
            args.resume,
            store=args.store,
            progress=progress,
            retry_errors=args.retry_errors,
            verbosity=verbosity(args),
            ray_address=args.ray_address,
        )
    else:
        spec = build_spec(preset=args.preset, config=args.config, overrides=overrides)
        result = run(spec, progress=progress, verbosity=verbosity(args))
    if hasattr(result, "sweep_id"):  # --executor ray: a run per node
        return print_sweep_summary(result)
    return print_run_summary(result)


def print_sweep_summary(sweep: Any) -> int:
    """The lines a sweep ends with: each node's run, then how to compare them; the exit
    code as for a run (130 interrupted, 1 when no cell of any node succeeded)."""
    from quantbench.runner.summary import counts as _counts
    from quantbench.runner.summary import recommendation_lines
    from quantbench.runner.summary import store_gap as _store_gap

    ok = 0
    for r in sweep.runs:
        counts = _counts(r.results)
        ok += counts.get("ok", 0)
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no cells"
        say(f"{r.run.node}: run {r.run.id}: {len(r.results)} cells: {summary}")
        for line in recommendation_lines(r):  # each node's pick, with its caveats
            say(f"  {line}")
        say(f"  report: {r.report}")
    gaps = [g for g in (_store_gap(r) for r in sweep.runs) if g]
    done = "INCOMPLETE, see below" if gaps else f"{len(sweep.runs)} runs"
    say(f"stored:  sweep {sweep.sweep_id} ({done}) in {sweep.store}")
    say(f"compare with: quantbench compare --sweep {sweep.sweep_id}")
    for gap in gaps:
        say(f"quantbench: error: {gap}", file=sys.stderr)
    if sweep.interrupted:
        return EXIT_INTERRUPTED
    if gaps:
        return EXIT_NOT_STORED
    if not ok:
        say("quantbench: no cell succeeded on any node", file=sys.stderr)
        return 1
    return 0


def print_run_summary(result: Any) -> int:
    """The lines a run ends with (``runner.summary``, what ``RunResult.summary()`` gives);
    the exit code: 130 interrupted, 3 when the store lacks cells, 1 when no cell
    succeeded, else 0."""
    from quantbench.runner.summary import counts, store_gap, summary_lines

    for line in summary_lines(result):
        say(line)
    gap = store_gap(result)
    if gap:
        print(f"quantbench: error: {gap}", file=sys.stderr)
    if result.interrupted:
        return EXIT_INTERRUPTED
    if gap:
        return EXIT_NOT_STORED
    if not counts(result.results).get("ok"):
        failed = [c for c in result.results if c.error]
        why = f": {failed[0].model} / {failed[0].recipe}: {failed[0].error}" if failed else ""
        say(f"quantbench: no cell succeeded{why}", file=sys.stderr)
        return 1
    return 0
