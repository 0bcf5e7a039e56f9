"""Commands on the store: ``runs`` (list), ``show`` (one run), ``export`` (a run as JSON
or CSV) and ``import`` (a run's results.json into a store)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from quantbench.cli.terminal import say
from quantbench.errors import QuantbenchError

STORE_HELP = "results database (default ./quantbench.db)"


def load_stored(run_id: str, store: str | None) -> tuple[dict, list]:
    """A stored run's record and cells (the store only read)."""
    from quantbench.store import open_store

    st = open_store(store, create=False)
    try:
        return st.load_run(run_id)
    finally:
        st.close()


def add_runs(sub: Any) -> None:
    p = sub.add_parser("runs", help="list the runs in the store")
    p.set_defaults(func=cmd_runs)
    p.add_argument("--store", help=STORE_HELP)
    p.add_argument("--limit", type=int, default=50, help="newest N runs (default 50)")


def cmd_runs(args: argparse.Namespace) -> int:
    from quantbench.store import open_store

    st = open_store(args.store, create=False)
    try:
        rows = st.runs(limit=args.limit)
    finally:
        st.close()
    if not rows:
        say(f"no runs in {st.label} yet")
        return 0
    say(f"{'run id':24s} {'started (UTC)':20s} {'status':11s} {'cells':>5s}  machine / models")
    for r in rows:
        say(f"{r['id']:24s} {(r['started_at'] or '')[:19]:20s} {r['status'] or '?':11s} "
            f"{r['cells']:5d}  {r['machine']} / {r['models']}")  # fmt: skip
    return 0


def add_show(sub: Any) -> None:
    p = sub.add_parser("show", help="a stored run: machine, settings and its cells")
    p.set_defaults(func=cmd_show)
    p.add_argument("run_id")
    p.add_argument("--store", help=STORE_HELP)


def cmd_show(args: argparse.Namespace) -> int:
    meta, cells = load_stored(args.run_id, args.store)
    host = meta.get("host") or {}
    say(f"run:      {meta['id']} ({meta.get('status')})")
    say(f"date:     {meta.get('started_at')} -> {meta.get('finished_at') or '...'}")
    say(f"machine:  {host.get('cpu')}, {host.get('cores')} cores, "
        f"ISA {', '.join(host.get('isa_flags') or [])}")  # fmt: skip
    v = meta.get("versions") or {}
    say("versions: " + ", ".join(f"{k} {x}" for k, x in v.items()))
    say(f"output:   {meta.get('out_dir')}")
    print()
    mw = max([16, *(len(c.model) for c in cells)])  # the model column fits the longest name
    rw = max([28, *(len(c.recipe) for c in cells)])
    say(f"{'model':{mw}s} {'recipe':{rw}s} {'status':11s} {'size MiB':>9s} "
        f"{'speedup [95% CI]':>22s}  metric")  # fmt: skip
    from quantbench.measure.contention import is_contended
    from quantbench.measure.metrics import point_speedup
    from quantbench.report.fmt import fmt_speedup
    from quantbench.runner.summary import closing_lines
    from quantbench.shapes import ref_sizes, reference_point

    sizes = ref_sizes(meta.get("spec"))
    contended = False
    for c in cells:
        pt = reference_point(c, sizes) if c.latency else None
        sp = (
            str(fmt_speedup(point_speedup(pt, None)))
            if pt and pt.speedup
            else ("1.00x" if pt else "—")
        )
        if pt is not None and is_contended(pt):
            sp, contended = sp + "*", True
        size = f"{c.size_bytes / 2**20:.1f}" if c.size_bytes else "—"
        acc = c.accuracy
        metric = f"{acc.metric} {acc.value:.4f}" if acc and acc.value is not None else ""
        if not metric and c.fidelity and c.fidelity.cosine is not None:
            metric = f"cosine {c.fidelity.cosine:.4f}"
        say(f"{c.model:{mw}s} {c.recipe:{rw}s} {c.status:11s} {size:>9s} {sp:>22s}  {metric}")
    if contended:
        say("* measured while other work held the cores (contended)")
    failed = [c for c in cells if c.status != "ok"]
    if failed:
        print()
        say("why cells did not succeed:")
        for c in failed:
            say(f"  {c.model} / {c.recipe} ({c.status}): {c.error or 'no reason recorded'}")
    closing = closing_lines(meta, cells)
    if closing:  # what the run ended with: the recommendation, as the timings allow
        print()
        for line in closing:
            say(line)
    return 0


def add_import(sub: Any) -> None:
    p = sub.add_parser(
        "import",
        help="put a run's results.json into a store (what a store that failed mid-run lacks)",
        description="Write the run of RESULTS (a results.json, or its run directory) into the "
        "store: its record and every cell the store lacks. Cells already there must be "
        "identical (skipped); a store holding a different cell or another run under the same "
        "id is refused, and nothing is written. Importing twice writes nothing the second time.",
    )
    p.set_defaults(func=cmd_import)
    p.add_argument("results", metavar="RESULTS", help="results.json or the run's directory")
    p.add_argument("--store", help=STORE_HELP)


def cmd_import(args: argparse.Namespace) -> int:
    from quantbench.importer import import_results

    done = import_results(args.results, args.store)
    if done.written or done.record_updated:
        print(f"imported run {done.run_id} into {done.store}: {done.written} cell(s) written, "
              f"{done.skipped} already there (identical)")  # fmt: skip
    else:
        print(f"run {done.run_id} is already in {done.store}: all {done.skipped} cell(s) "
              "identical, nothing written")  # fmt: skip
    return 0


def add_export(sub: Any) -> None:
    p = sub.add_parser("export", help="a stored run as JSON or CSV on stdout (or --output)")
    p.set_defaults(func=cmd_export)
    p.add_argument("run_id")
    p.add_argument("--format", choices=["json", "csv"], default="json")
    p.add_argument("--output", "-o", help="file to write (default: stdout); never the store")
    p.add_argument("--force", action="store_true", help="overwrite an existing --output file")
    p.add_argument("--store", help=STORE_HELP)


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from quantbench.measure.metrics import csv_text
    from quantbench.results import json_doc
    from quantbench.strictjson import dumps

    if args.output:  # before the store is read: a bad target fails at once
        from quantbench.files import check_new_file

        check_new_file(args.output, args.force, args.store)
    meta, cells = load_stored(args.run_id, args.store)
    if args.format == "json":
        text = dumps(json_doc(meta, cells), indent=2) + "\n"
    else:
        text = csv_text(cells, meta)
    if args.output:
        from quantbench.files import atomic_write_text

        try:  # without --force, a file that appeared meanwhile is not replaced either
            atomic_write_text(Path(args.output), text, overwrite=args.force)
        except OSError as e:
            raise QuantbenchError(f"cannot write '{args.output}': {e.strerror or e}") from None
        say(f"wrote {args.output}")
    else:
        from quantbench.inert import data_stream

        data_stream(sys.stdout).write(text)  # byte for byte into a pipe; inert on a terminal
    return 0
