"""Commands that present stored runs: ``report`` (re-render a run's or a sweep's report)
and ``compare`` (runs side by side, or machines)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from quantbench.cli.stored import STORE_HELP, load_stored
from quantbench.cli.terminal import say
from quantbench.errors import QuantbenchError


def add_report(sub: Any) -> None:
    p = sub.add_parser(
        "report", help="re-render report.md, report.html and plots (never re-measures)"
    )
    p.set_defaults(func=cmd_report)
    p.add_argument("run", nargs="?", help="a stored run id, or a directory holding results.json")
    p.add_argument("--sweep", metavar="SWEEP_ID", help="instead of one run: a sweep across "
                   "machines, a table and a figure per model with a column per machine")  # fmt: skip
    p.add_argument("--store", help=STORE_HELP)
    p.add_argument("--out", help="write the report here (default: the run's directory; "
                   "quantbench-runs/sweep-ID for --sweep)")  # fmt: skip


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from quantbench.report import render_report
    from quantbench.results import read_json

    if args.sweep is not None:
        return _report_sweep(args)
    if not args.run:
        raise QuantbenchError("report needs a run id or directory, or --sweep SWEEP_ID")
    if Path(args.run).is_dir() or "/" in args.run or Path(args.run).exists():
        path = Path(args.run) / "results.json"
        if not path.is_file():
            raise QuantbenchError(f"'{args.run}' holds no results.json")
        try:
            meta, results = read_json(path)
        except (ValueError, KeyError, TypeError) as e:
            raise QuantbenchError(f"'{path}' is not a quantbench results file: {e}") from None
        out = Path(args.out or args.run)
    else:
        meta, results = load_stored(args.run, args.store)
        out = Path(args.out or meta.get("out_dir") or f"quantbench-runs/{args.run}")
    from quantbench.outdir import claim_out_dir

    with claim_out_dir(out, "run", str((meta or {}).get("id") or args.run)):  # own, or free
        report = render_report(out, meta, results)
    say(f"report: {report}")
    say(f"html:   {report.with_suffix('.html')}")
    return 0


def _report_sweep(args: argparse.Namespace) -> int:
    from pathlib import Path

    from quantbench.machines import load
    from quantbench.report import render_sweep_report

    if args.run:
        raise QuantbenchError("report takes a run or --sweep SWEEP_ID, not both")
    cmp = load(sweep_id=args.sweep, store=args.store)
    out = Path(args.out or f"quantbench-runs/sweep-{args.sweep}")
    from quantbench.outdir import claim_out_dir

    with claim_out_dir(out, "sweep", args.sweep):
        report = render_sweep_report(out, cmp)
    say(f"report: {report}")
    say(f"html:   {report.with_suffix('.html')}")
    return 0


def add_compare(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="compare stored runs side by side (latency, paired speedup, size, accuracy)",
        description="The first run is the baseline; every later one is compared with it on "
        "the cells they share, each latency change tested for significance on the raw "
        "samples. Writes compare.md and plots to --out. Gates (for CI) are all evaluated; "
        "exit 1 when any fails, exit 2 when one has nothing to check. -q prints only the "
        "verdicts and the gates' results. The store is only read.",
    )
    p.set_defaults(func=cmd_compare)
    p.add_argument("run_ids", nargs="*", metavar="RUN", help="a run id, an unambiguous id "
                   "prefix, a run directory or a results.json file; the first is the "
                   "baseline")  # fmt: skip
    p.add_argument("--format", choices=["text", "json"], default="text", help="json: the "
                   "comparison as strict JSON on stdout, for CI (compare.md is still written)")  # fmt: skip
    p.add_argument("--sweep", metavar="SWEEP_ID", help="compare the machines of a sweep: per "
                   "model, a column per machine (speedup vs its own fp32, latency, size) and "
                   "the machines' fingerprints")  # fmt: skip
    p.add_argument("--machines", action="store_true", help="compare the RUN_IDs as machines, "
                   "as --sweep does, instead of against the first run")  # fmt: skip
    p.add_argument("--store", help=STORE_HELP)
    p.add_argument("--out", help="output directory (default quantbench-runs/compare-...)")
    p.add_argument("--fail-if-slower", metavar="PCT",
                   help="exit 1 when a shared point is significantly slower than the baseline "
                   "by more than PCT percent")  # fmt: skip
    p.add_argument("--fail-if-less-accurate", metavar="PP",
                   help="exit 1 when a variant's accuracy dropped by more than PP percentage "
                   "points")  # fmt: skip
    p.add_argument("--fail-if-larger", metavar="PCT",
                   help="exit 1 when a variant's size grew by more than PCT percent")  # fmt: skip


def cmd_compare(args: argparse.Namespace) -> int:
    from quantbench.report.compare import run_compare

    if args.sweep is not None or args.machines:
        return _compare_machines(args)
    if not args.run_ids:
        raise QuantbenchError("compare needs RUN_IDs (or --sweep SWEEP_ID)")
    res = run_compare(args.run_ids, args.store, args.out, args.fail_if_slower,
                      args.fail_if_less_accurate, args.fail_if_larger)  # fmt: skip
    if args.format == "json":
        from quantbench.inert import data_stream
        from quantbench.strictjson import dumps

        data_stream(sys.stdout).write(dumps(res.to_dict(), indent=2) + "\n")
    elif getattr(args, "quiet", None):
        from quantbench.report.compare_json import quiet_lines

        for line in quiet_lines(res):
            say(line)
    else:
        print(res.text)
        say(f"written: {res.out_dir / 'compare.md'} (+ compare_latency.png, compare_speedup.png)")
    if args.format == "json" or getattr(args, "quiet", None):  # the text shows them at its top
        for w in res.warnings:
            say(f"quantbench: warning: {w}", file=sys.stderr)
    return 1 if res.gates.failed else 0


def _compare_machines(args: argparse.Namespace) -> int:
    from quantbench.report.compare import run_compare_machines

    gates = [f for f, v in (("--fail-if-slower", args.fail_if_slower),
                            ("--fail-if-less-accurate", args.fail_if_less_accurate),
                            ("--fail-if-larger", args.fail_if_larger)) if v is not None]  # fmt: skip
    what = "--sweep" if args.sweep is not None else "--machines"
    if args.format == "json" or getattr(args, "quiet", None):
        flag = "--format json" if args.format == "json" else "-q"
        raise QuantbenchError(f"{flag} is for runs compared with a baseline, not with {what}")
    if gates:
        raise QuantbenchError(f"{gates[0]} compares against a baseline run; machines compared "
                              f"with {what} have none (compare two run ids for the gates)")  # fmt: skip
    if args.sweep is not None and (args.run_ids or args.machines):
        raise QuantbenchError("compare takes RUN_IDs or --sweep SWEEP_ID, not both")
    if args.machines and not args.run_ids:
        raise QuantbenchError("compare --machines needs RUN_IDs (one column each)")
    res = run_compare_machines(args.run_ids or None, args.sweep, args.store, args.out)
    print(res.text)
    say(f"written: {res.out_dir / 'compare.md'} (+ {len(res.figures)} figure(s), one per model)")
    return 0
