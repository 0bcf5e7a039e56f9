"""Command line: parse, call one library function, print. Heavy imports stay lazy."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from quantbench import __version__
from quantbench.errors import QuantbenchError
from quantbench.redact import scrub

EXIT_USAGE = 2
# Measured, but the store failed during the run: results.json holds cells (or the run's
# final record) the store lacks. Distinct from 1 (nothing succeeded) so that a script
# can tell "import results.json" from "measure again".
EXIT_NOT_STORED = 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + error
        self.exit(EXIT_USAGE, f"quantbench: error: {message} (see '{self.prog} --help')\n")


def _say(text: str, file: Any = None) -> None:
    """Print ``text`` as one line: a name or a reason in it may hold newlines (and the
    terminal guard of :func:`main` shows every other control character as an escape)."""
    from quantbench.inert import terminal_text

    print(terminal_text(str(text), keep="\t"), file=file)


def _add_run(sub: Any) -> None:
    """The ``run`` subcommand. Every setting of the model (quantbench.spec.RunSpec) is a
    flag: ``--`` + its key with ``_`` as ``-``, dest the key (a test walks the fields)."""
    p = sub.add_parser(
        "run",
        help="quantize models and measure size, latency sweeps and fidelity",
        description="Quantize models with each recipe and measure size, latency sweeps and "
        "fidelity; write results.json, results.csv, plots/ and report.md. With no arguments, "
        "runs the lab: eight models, fp32 + dynamic-int8 + static-int8, both sweeps. "
        "Settings: flags > --config file > the preset (--preset, else the file's) > "
        "defaults; 'quantbench schema' lists them all.",
    )
    p.add_argument(
        "--preset",
        help="lab (default: the full lab), quick (a few minutes) or targets "
        "(every recipe at the reference shape); wins over the file's preset",
    )
    p.add_argument("--config", metavar="FILE.yaml", help="experiment file (see examples/)")
    p.add_argument("--models", help="comma-separated: aliases, hf:<id-or-dir>, tv:<name>")
    p.add_argument(
        "--recipes",
        help="comma-separated recipe names, or 'all' (see 'quantbench list recipes')",
    )
    p.add_argument("--recipe-options", metavar="MAPPING", help="a recipe's own settings as an "
                   "inline YAML/JSON mapping, e.g. '{static-int8: {per_channel: false}}'")  # fmt: skip
    g = p.add_argument_group("sweeps and the reference shape")
    g.add_argument("--batch-sizes", help="batch sweep, both families (e.g. 1,2,4,8)")
    g.add_argument("--vision-batch-sizes", help="batch sweep of vision models")
    g.add_argument("--text-batch-sizes", help="batch sweep of text models")
    g.add_argument("--image-sizes", help="image-size sweep in px at batch 1 (e.g. 64,128,224)")
    g.add_argument("--seq-lens", help="sequence-length sweep at batch 1 (e.g. 32,128,512)")
    g.add_argument("--ref-batch", type=int, help="reference batch the report quotes "
                   "(default 1; added to the batch sweep)")  # fmt: skip
    g.add_argument("--ref-image-size", type=int, help="reference image size: the batch sweep "
                   "runs there (default: the sweep's size nearest 224 px)")  # fmt: skip
    g.add_argument("--ref-seq-len", type=int, help="reference sequence length: the batch "
                   "sweep runs there (default: the sweep's length nearest 128)")  # fmt: skip
    g.add_argument("--grid", action=argparse.BooleanOptionalAction, default=None,
                   help="time every batch size x input size (fills the speedup heatmap; the "
                   "sweeps alone time a cross)")  # fmt: skip
    g = p.add_argument_group("measuring")
    g.add_argument("--measure", help="comma-separated subset of size,latency,fidelity")
    g.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    g.add_argument("--device", help="cpu (default), cuda, or auto (cuda when torch sees a GPU); "
                   "CPU-only recipes are unsupported cells on cuda")  # fmt: skip
    g.add_argument("--weights", help="random | pretrained | PATH (default: random for aliases)")
    g.add_argument("--engine", help="quantized engine (default: x86 on x86-64, qnnpack on ARM)")
    g.add_argument("--seed", type=int, help="seed for random weights and inputs (default 0)")
    g.add_argument("--calib-batches", type=int, help="calibration batches for static recipes")
    g.add_argument("--calib-batch-size", type=int, help="inputs per calibration batch (4)")
    g.add_argument("--fidelity-batch-size", type=int, help="inputs compared with fp32 (4)")
    g.add_argument("--warmup", type=int, help="untimed passes before timing (default 2)")
    g.add_argument("--min-runs", type=int, help="timed passes per point, at least (default 10)")
    g.add_argument("--min-time-s", "--min-time", type=float, dest="min_time_s",
                   help="seconds per point, at least (0.5)")  # fmt: skip
    g.add_argument("--max-time-s", "--max-time", type=float, dest="max_time_s",
                   help="cap on timing per point, s (30)")  # fmt: skip
    g.add_argument("--timeout-s", "--timeout", type=float, dest="timeout_s",
                   help="seconds per model, then stop it")  # fmt: skip
    g.add_argument("--max-warmup", type=int, help="cap on warm-up passes until settled (20)")
    g.add_argument("--min-cosine", type=float, help="keeps fidelity: cosine to fp32 >= (0.99)")
    g.add_argument("--min-top1", type=float, help="... and top-1 agreement >= (0.99)")
    g.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                   help="each model in a worker process (default; --no-isolate: this process)")  # fmt: skip
    g.add_argument("--pin", action=argparse.BooleanOptionalAction, default=None,
                   help="pin each worker to --threads CPUs")  # fmt: skip
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="also time each eager torch recipe under torch.compile (<recipe>+compile)")  # fmt: skip
    g.add_argument("--save-artifacts", action=argparse.BooleanOptionalAction, default=None,
                   help="write each measured variant's file to "
                   "<out>/artifacts/<model>/<variant>.<ext>")  # fmt: skip
    g = p.add_argument_group("accuracy on real data")
    g.add_argument("--dataset", help="evaluation data: an ImageFolder directory, a .csv/.jsonl "
                   "of labelled text, or a .txt of sentences (see README)")  # fmt: skip
    g.add_argument("--limit", type=int, help="evaluate on a seeded subset of N examples")
    g.add_argument("--calibration", help="calibration data for static recipes (same forms as "
                   "--dataset; the same file is split, disjoint from evaluation)")  # fmt: skip
    g.add_argument("--calibration-samples", type=int, help="calibration examples (default 128)")
    g.add_argument("--eval-batch-size", type=int, help="batch size when scoring (default 32)")
    g.add_argument("--max-accuracy-drop", type=float,
                   help="the bar: keep >= (1 - X) of fp32's metric (default 0.01); implies "
                   "--fallback")  # fmt: skip
    g.add_argument("--fallback", action=argparse.BooleanOptionalAction, default=None,
                   help="add <recipe>+fallback variants that keep sensitive layers in float "
                   "until the bar is met")  # fmt: skip
    g.add_argument("--fallback-max-layers", type=int, help="... at most N layers (default 8)")
    g.add_argument("--train-dataset", help="labelled training data for qat-int8")
    g.add_argument("--qat-steps", type=int, help="qat-int8 fine-tuning steps (default 100)")
    g.add_argument("--qat-lr", type=float, help="qat-int8 learning rate (default 1e-4)")
    p.add_argument("--out", help="output directory (default: quantbench-runs/<timestamp>)")
    p.add_argument("--store", help="results database: a path or SQLAlchemy URL "
                   "(default ./quantbench.db, or $QUANTBENCH_STORE)")  # fmt: skip
    p.add_argument("--resume", metavar="RUN_ID", help="finish a stored run: measure only "
                   "the cells it lacks (its settings come from the store); a sweep id "
                   "resumes the sweep on its Ray cluster")  # fmt: skip
    g = p.add_argument_group("sweeps across machines (Ray)")
    g.add_argument("--executor", help="local (default) or ray: one run per node of a Ray "
                   "cluster, under one sweep id")  # fmt: skip
    g.add_argument("--ray-address", help="the Ray cluster's address: HOST:6379 or auto "
                   "(default: $RAY_ADDRESS, else a local Ray)")  # fmt: skip
    g.add_argument("--on", metavar="SELECTOR,...", help="the nodes: all (default), cpu:vnni, "
                   "cpu:arm, cpu:x86, cpu:<ISA flag>, gpu, a custom resource or hostname, "
                   "KEY=VALUE (node label), node:<id>; a node matching any runs")  # fmt: skip
    p.add_argument("--retry-errors", action="store_true", help="with --resume: measure the "
                   "cells that ended in error or timeout again, replacing them")  # fmt: skip
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: when stderr is a terminal)")  # fmt: skip


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
    _add_run(sub)
    sub.add_parser(
        "schema",
        help="print the run settings' JSON Schema (every key, type, default, description)",
        description="The JSON Schema of a run's settings: the keys of an experiment file "
        "(examples/lab.yaml), of Python overrides, and (as --key-with-dashes) of the run flags.",
    )
    p = sub.add_parser(
        "quantize",
        help="quantize one model with one recipe and write the deployable artifact",
        description="Write what a user ships: an .onnx file for ONNX Runtime recipes, a .pt2 "
        "program for pt2e-static-int8, or a weights-only torch checkpoint that "
        "quantbench.load_artifact(PATH) turns back into a callable module. It is built as "
        "'quantbench run' builds it for the same settings (--config takes a run's): the same "
        "calibration, recipe settings and seed, and with --fallback the same +fallback search.",
    )
    p.add_argument("model", help="alias, hf:<id-or-dir>, tv:<name>, py:<file>:<obj>, or a "
                   "model named in --config")  # fmt: skip
    p.add_argument("--recipe", required=True, help="recipe name (see 'quantbench list recipes')")
    p.add_argument(
        "--output",
        "-o",
        required=True,
        help="file to write (.onnx for ort-* recipes, .pt2 for pt2e-static-int8)",
    )
    p.add_argument("--config", metavar="FILE.yaml", help="a run config: its calibration, "
                   "recipe_options, seed, engine, weights, dataset... (flags override it)")  # fmt: skip
    p.add_argument("--weights", help="random | pretrained | PATH (default: as for run)")
    p.add_argument("--engine", help="quantized engine (default: the platform's)")
    p.add_argument("--calib-batches", type=int, help="synthetic calibration batches (default 8)")
    p.add_argument("--seed", type=int, help="seed for random weights and inputs (default 0)")
    p.add_argument("--calibration", help="calibration data for static recipes (as for run)")
    p.add_argument("--dataset", help="evaluation data: the accuracy bar of --fallback")
    p.add_argument("--max-accuracy-drop", type=float, help="the bar: keep >= (1 - X) of fp32's "
                   "metric (default 0.01); implies --fallback")  # fmt: skip
    p.add_argument("--fallback", action="store_true", help="when the recipe misses the bar, "
                   "ship its +fallback variant (sensitive layers kept in float), as run does")  # fmt: skip
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p = sub.add_parser(
        "sensitivity",
        help="rank a model's layers by what quantizing them costs",
        description="Quantize MODEL with RECIPE leaving one layer at a time in float "
        "(float-one) or quantizing one layer at a time (quantize-one), and rank the layers by "
        "their effect on the task metric (with --dataset) or on the cosine to fp32 outputs. "
        "Writes sensitivity.json, sensitivity.md and sensitivity.png.",
    )
    p.add_argument("model", help="alias, hf:<id-or-dir> or tv:<name>")
    p.add_argument("--recipe", required=True, help="dynamic-int8, static-int8, qat-int8 or "
                   "pt2e-static-int8")  # fmt: skip
    p.add_argument("--dataset", help="evaluation data (as for run)")
    p.add_argument("--calibration", help="calibration data (as for run)")
    p.add_argument("--limit", type=int, help="evaluate on a seeded subset of N examples")
    p.add_argument("--mode", default="float-one", help="float-one (default) or quantize-one")
    p.add_argument("--weights", default="auto", help="random | pretrained | PATH")
    p.add_argument("--num-classes", type=int, help="classes of a torchvision model's head")
    p.add_argument("--out", help="output directory (default: quantbench-runs/<timestamp>)")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("list", help="list models, recipes, datasets or presets")
    p.add_argument("what", choices=["models", "recipes", "datasets", "presets"])
    p.add_argument("--markdown", action="store_true", help="recipes: the support matrix (recipe "
                   "x model family x device, available here or why not) as a markdown table")  # fmt: skip
    p = sub.add_parser(
        "report", help="re-render report.md, report.html and plots (never re-measures)"
    )
    p.add_argument("run", nargs="?", help="a stored run id, or a directory holding results.json")
    p.add_argument("--sweep", metavar="SWEEP_ID", help="instead of one run: a sweep across "
                   "machines, a table and a figure per model with a column per machine")  # fmt: skip
    p.add_argument("--store", help="results database (default ./quantbench.db)")
    p.add_argument("--out", help="write the report here (default: the run's directory; "
                   "quantbench-runs/sweep-ID for --sweep)")  # fmt: skip
    p = sub.add_parser("runs", help="list the runs in the store")
    p.add_argument("--store", help="results database (default ./quantbench.db)")
    p.add_argument("--limit", type=int, default=50, help="newest N runs (default 50)")
    p = sub.add_parser("show", help="a stored run: machine, settings and its cells")
    p.add_argument("run_id")
    p.add_argument("--store", help="results database (default ./quantbench.db)")
    p = sub.add_parser(
        "import",
        help="put a run's results.json into a store (what a store that failed mid-run lacks)",
        description="Write the run of RESULTS (a results.json, or its run directory) into the "
        "store: its record and every cell the store lacks. Cells already there must be "
        "identical (skipped); a store holding a different cell or another run under the same "
        "id is refused, and nothing is written. Importing twice writes nothing the second time.",
    )
    p.add_argument("results", metavar="RESULTS", help="results.json or the run's directory")
    p.add_argument("--store", help="results database (default ./quantbench.db)")
    p = sub.add_parser("export", help="a stored run as JSON or CSV on stdout (or --output)")
    p.add_argument("run_id")
    p.add_argument("--format", choices=["json", "csv"], default="json")
    p.add_argument("--output", "-o", help="file to write (default: stdout); never the store")
    p.add_argument("--force", action="store_true", help="overwrite an existing --output file")
    p.add_argument("--store", help="results database (default ./quantbench.db)")
    p = sub.add_parser(
        "compare",
        help="compare stored runs side by side (latency, paired speedup, size, accuracy)",
        description="The first run is the baseline; every later one is compared with it on "
        "the cells they share, each latency change tested for significance on the raw "
        "samples. Writes compare.md and plots to --out. Gates (for CI) are all evaluated; "
        "exit 1 when any fails. The store is only read.",
    )
    p.add_argument("run_ids", nargs="*", metavar="RUN_ID")
    p.add_argument("--sweep", metavar="SWEEP_ID", help="compare the machines of a sweep: per "
                   "model, a column per machine (speedup vs its own fp32, latency, size) and "
                   "the machines' fingerprints")  # fmt: skip
    p.add_argument("--machines", action="store_true", help="compare the RUN_IDs as machines, "
                   "as --sweep does, instead of against the first run")  # fmt: skip
    p.add_argument("--store", help="results database (default ./quantbench.db)")
    p.add_argument("--out", help="output directory (default quantbench-runs/compare-...)")
    p.add_argument("--fail-if-slower", metavar="PCT",
                   help="exit 1 when a shared point is significantly slower than the baseline "
                   "by more than PCT percent")  # fmt: skip
    p.add_argument("--fail-if-less-accurate", metavar="PP",
                   help="exit 1 when a variant's accuracy dropped by more than PP percentage "
                   "points")  # fmt: skip
    p.add_argument("--fail-if-larger", metavar="PCT",
                   help="exit 1 when a variant's size grew by more than PCT percent")  # fmt: skip
    p = sub.add_parser("doctor", help="print the machine fingerprint and what will affect results")
    p.add_argument("--threads", type=int, help="threads for the micro-benchmark")
    p.add_argument("--seconds", type=float, default=1.0, help="micro-benchmark duration")
    for p in sub.choices.values():
        _add_verbosity(p, argparse.SUPPRESS)
    return parser


def _verbosity(args: argparse.Namespace) -> int:
    """-1 with -q, else the number of -v (0: the default output)."""
    return -1 if getattr(args, "quiet", None) else int(getattr(args, "verbose", None) or 0)


def run_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The run flags as settings: every RunSpec key whose flag was given (None: unset)."""
    from quantbench.spec import BATCH_SIZES_ALIAS, RunSpec

    keys = [k for k in [*RunSpec.model_fields, BATCH_SIZES_ALIAS] if k != "preset"]
    overrides = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    if args.max_accuracy_drop is not None and args.fallback is None:
        overrides["fallback"] = True  # a bar implies trying to meet it
    return overrides


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of the run settings (quantbench.spec.RunSpec)."""
    from quantbench.spec import RunSpec
    from quantbench.strictjson import dumps

    print(dumps(RunSpec.model_json_schema(), indent=2))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from quantbench.runner import run
    from quantbench.spec import build_spec

    overrides = run_overrides(args)
    if args.retry_errors and not args.resume:
        raise QuantbenchError("--retry-errors needs --resume RUN_ID")
    progress = False if _verbosity(args) < 0 and args.progress is None else args.progress
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
            verbosity=_verbosity(args),
            ray_address=args.ray_address,
        )
    else:
        spec = build_spec(preset=args.preset, config=args.config, overrides=overrides)
        result = run(spec, progress=progress, verbosity=_verbosity(args))
    if hasattr(result, "sweep_id"):  # --executor ray: a run per node
        return print_sweep_summary(result)
    return print_run_summary(result)


def print_sweep_summary(sweep: Any) -> int:
    """The lines a sweep ends with: each node's run, then how to compare them; the exit
    code as for a run (130 interrupted, 1 when no cell of any node succeeded)."""
    ok = 0
    for r in sweep.runs:
        counts: dict[str, int] = {}
        for c in r.results:
            counts[str(c.status)] = counts.get(str(c.status), 0) + 1
        ok += counts.get("ok", 0)
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no cells"
        _say(f"{r.run.node}: run {r.run.id}: {len(r.results)} cells: {summary}")
        _say(f"  report: {r.report}")
    gaps = [g for g in (_store_gap(r) for r in sweep.runs) if g]
    done = "INCOMPLETE, see below" if gaps else f"{len(sweep.runs)} runs"
    _say(f"stored:  sweep {sweep.sweep_id} ({done}) in {sweep.store}")
    _say(f"compare with: quantbench compare --sweep {sweep.sweep_id}")
    for gap in gaps:
        _say(f"quantbench: error: {gap}", file=sys.stderr)
    if sweep.interrupted:
        return 130
    if gaps:
        return EXIT_NOT_STORED
    if not ok:
        _say("quantbench: no cell succeeded on any node", file=sys.stderr)
        return 1
    return 0


def print_run_summary(result: Any) -> int:
    """The lines a run ends with; the exit code: 130 interrupted, 1 when no cell
    succeeded, else 0."""
    counts: dict[str, int] = {}
    for c in result.results:
        counts[str(c.status)] = counts.get(str(c.status), 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    _say(f"{len(result.results)} cells: {summary}")
    from quantbench.best import summary_lines

    for line in summary_lines(result.run.spec, result.run.recommendations, result.results):
        _say(f"  {line}")
    gap = _store_gap(result)
    if gap:
        n = len(result.run.unstored)
        _say(f"stored:  INCOMPLETE: {n} of {len(result.results)} cells of run {result.run.id} "
              f"are only in results.json, not in {result.run.store}")  # fmt: skip
    else:
        _say(f"stored:  run {result.run.id} in {result.run.store}")
    _say(f"results: {result.out_dir / 'results.json'}")
    _say(f"report:  {result.report} (and report.html)")
    _print_artifacts(result)
    if gap:
        print(f"quantbench: error: {gap}", file=sys.stderr)
    if result.interrupted:
        return 130
    if gap:
        return EXIT_NOT_STORED
    if not counts.get("ok"):
        failed = [c for c in result.results if c.error]
        why = f": {failed[0].model} / {failed[0].recipe}: {failed[0].error}" if failed else ""
        _say(f"quantbench: no cell succeeded{why}", file=sys.stderr)
        return 1
    return 0


def _store_gap(result: Any) -> str | None:
    """One line when the store lacks what results.json holds (it failed during the run):
    how much, and the command that puts it in; None when the store has everything."""
    from quantbench.importer import import_command

    meta = result.run
    if not meta.unstored and not meta.record_unstored:
        return None
    why = meta.store_errors[-1] if meta.store_errors else "it failed"
    if meta.unstored:
        what = f"{len(meta.unstored)} of {len(result.results)} cell(s) of run {meta.id} are only"
    else:
        what = f"run {meta.id}'s final record (status, recommendations) is only"
    command = import_command(result.out_dir / "results.json", (meta.spec or {}).get("store"))
    return (
        f"the store failed during the run ({why}): {what} in results.json; put them into "
        f"the store with: {command}"
    )


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


def _print_artifacts(result: Any) -> None:
    """Where ``--save-artifacts`` wrote the variants' files (nothing when it was off)."""
    cells = [c for c in result.results if c.details.get("artifact")]
    missed = [c for c in result.results if any("artifact not saved" in n for n in c.notes)]
    if not cells and not missed:
        return
    files = {c.details["artifact"]["path"]: c.details["artifact"]["bytes"] for c in cells}
    total = sum(files.values()) / 2**20
    _say(f"artifacts: {result.out_dir / 'artifacts'} ({len(files)} files, {total:.1f} MiB"
          f"{f'; {len(missed)} not saved, see their notes' if missed else ''})")  # fmt: skip


def cmd_quantize(args: argparse.Namespace) -> int:
    from quantbench.build import quantize

    w = quantize(
        args.model, args.recipe, args.output, config=args.config, force=args.force,
        weights=args.weights, engine=args.engine, seed=args.seed,
        calib_batches=args.calib_batches, calibration=args.calibration, dataset=args.dataset,
        fallback=True if args.fallback else None, max_accuracy_drop=args.max_accuracy_drop,
    )  # fmt: skip
    _say(f"wrote {w.path} ({w.size_bytes / 2**20:.2f} MiB, {w.size_bytes} bytes, {w.variant}, "
          f"runtime {w.runtime})")  # fmt: skip
    if w.measured_bytes is not None and w.measured_bytes != w.size_bytes:
        _say(f"size:  {w.measured_bytes} bytes as 'run' reports it (the state_dict; the file "
              f"adds {w.size_bytes - w.measured_bytes} bytes of metadata to rebuild it)")  # fmt: skip
    _say(f"calibration: {w.calibration or f'none ({w.recipe} does not calibrate activations)'}")
    if w.accuracy is not None:
        a, bar = w.accuracy, "met" if w.accuracy.get("passes") else "missed"
        rel = f"{a['relative']:.1%} of fp32; " if a.get("relative") is not None else ""
        _say(f"accuracy: {a['metric']} {a['value']:.4f} on {a['dataset']} ({rel}bar {bar})")
    for note in w.notes:
        _say(note)
    return 0


def cmd_sensitivity(args: argparse.Namespace) -> int:
    from quantbench.runner.sensitivity import analyse

    result, out = analyse(
        args.model, args.recipe, dataset=args.dataset, calibration=args.calibration,
        limit=args.limit, mode=args.mode, weights=args.weights, seed=args.seed, out=args.out,
        num_classes=args.num_classes,
    )  # fmt: skip
    _say(f"{result.model} · {result.recipe} · {result.mode} · metric: {result.metric}")
    _say(f"fp32 {result.fp32_score:.4f}   fully quantized {result.quantized_score:.4f}")
    for e in result.layers[:15]:
        eff = f"{e.effect:+.4f}" if e.effect is not None else f"error: {e.error}"
        _say(f"  {e.layer:40s} {e.kind:10s} {eff}")
    if len(result.layers) > 15:
        _say(f"  ... {len(result.layers) - 15} more in {out / 'sensitivity.md'}")
    _say(f"report: {out / 'sensitivity.md'}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "models":
        from quantbench.models import list_models

        for name, family, desc in list_models():
            print(f"{name:14s} {family:7s} {desc}")
        print("hf:<id-or-dir>  any Hugging Face model id or save_pretrained directory")
        print("tv:<name>       any torchvision classification builder, e.g. tv:resnet50")
        print("py:<file>:<obj> your own nn.Module class or factory in a Python file")
    elif args.what == "recipes":
        _list_recipes(args.markdown)
    elif args.what == "datasets":
        from quantbench.datasets import list_kinds

        for name, desc in list_kinds():
            print(f"{name:12s} {desc}")
    else:
        from quantbench.spec import PRESETS

        for name, p in PRESETS.items():
            print(f"{name:8s} models: {', '.join(p.get('models', ['all eight lab models']))}")
    return 0


def _list_recipes(markdown: bool) -> None:
    from quantbench.recipes import list_recipes
    from quantbench.recipes.support import DEVICE_COLUMNS, matrix, matrix_markdown

    recipes = list_recipes()
    rows = matrix(recipes)
    if markdown:
        print(matrix_markdown(rows))
        return
    for r, row in zip(recipes, rows, strict=True):
        print(f"{r.name:27s} {r.runtime:13s} {r.description}")
        settings = {k: v for k, v in r.config_record().items() if k != "version"}
        facts = [f"quantizes {', '.join(r.quantizes) or 'nothing'}", f"ships {r.file_format}",
                 f"models {', '.join(r.families)}"]  # fmt: skip
        if settings:
            facts.append("settings " + ", ".join(f"{k}={v!r}" for k, v in settings.items()))
        print(f"{'':27s} {'':13s} ({'; '.join(facts)})")
        for d in DEVICE_COLUMNS:
            why = row["here"][d]
            print(
                f"{'':27s} {'':13s} {d}: " + ("available" if why is None else f"unavailable: {why}")
            )
    print("\nSettings go in a config file as recipe_options: {RECIPE: {SETTING: VALUE}}.")
    print("'quantbench list recipes --markdown' prints the support matrix as a table.")


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
        meta, results = _load_stored(args.run, args.store)
        out = Path(args.out or meta.get("out_dir") or f"quantbench-runs/{args.run}")
    from quantbench.runner.outdir import claim_out_dir

    with claim_out_dir(out, "run", str((meta or {}).get("id") or args.run)):  # own, or free
        report = render_report(out, meta, results)
    _say(f"report: {report}")
    _say(f"html:   {report.with_suffix('.html')}")
    return 0


def _report_sweep(args: argparse.Namespace) -> int:
    from pathlib import Path

    from quantbench.machines import load
    from quantbench.report import render_sweep_report

    if args.run:
        raise QuantbenchError("report takes a run or --sweep SWEEP_ID, not both")
    cmp = load(sweep_id=args.sweep, store=args.store)
    out = Path(args.out or f"quantbench-runs/sweep-{args.sweep}")
    from quantbench.runner.outdir import claim_out_dir

    with claim_out_dir(out, "sweep", args.sweep):
        report = render_sweep_report(out, cmp)
    _say(f"report: {report}")
    _say(f"html:   {report.with_suffix('.html')}")
    return 0


def _load_stored(run_id: str, store: str | None) -> tuple[dict, list]:
    from quantbench.store import open_store

    st = open_store(store, create=False)
    try:
        return st.load_run(run_id)
    finally:
        st.close()


def cmd_runs(args: argparse.Namespace) -> int:
    from quantbench.store import open_store

    st = open_store(args.store, create=False)
    try:
        rows = st.runs(limit=args.limit)
    finally:
        st.close()
    if not rows:
        _say(f"no runs in {st.label} yet")
        return 0
    _say(f"{'run id':24s} {'started (UTC)':20s} {'status':11s} {'cells':>5s}  machine / models")
    for r in rows:
        _say(f"{r['id']:24s} {(r['started_at'] or '')[:19]:20s} {r['status'] or '?':11s} "
              f"{r['cells']:5d}  {r['machine']} / {r['models']}")  # fmt: skip
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    meta, cells = _load_stored(args.run_id, args.store)
    host = meta.get("host") or {}
    _say(f"run:      {meta['id']} ({meta.get('status')})")
    _say(f"date:     {meta.get('started_at')} -> {meta.get('finished_at') or '...'}")
    _say(f"machine:  {host.get('cpu')}, {host.get('cores')} cores, "
          f"ISA {', '.join(host.get('isa_flags') or [])}")  # fmt: skip
    v = meta.get("versions") or {}
    _say("versions: " + ", ".join(f"{k} {x}" for k, x in v.items()))
    _say(f"output:   {meta.get('out_dir')}")
    print()
    _say(f"{'model':16s} {'recipe':28s} {'status':11s} {'size MiB':>9s} {'speedup':>8s}  metric")
    from quantbench.shapes import ref_sizes, reference_point

    sizes = ref_sizes(meta.get("spec"))
    for c in cells:
        pt = reference_point(c, sizes) if c.latency else None
        sp = f"{pt.speedup.median:.2f}x" if pt and pt.speedup else ("1.00x" if pt else "—")
        size = f"{c.size_bytes / 2**20:.1f}" if c.size_bytes else "—"
        acc = c.accuracy
        metric = f"{acc.metric} {acc.value:.4f}" if acc and acc.value is not None else ""
        if not metric and c.fidelity and c.fidelity.cosine is not None:
            metric = f"cosine {c.fidelity.cosine:.4f}"
        _say(f"{c.model:16s} {c.recipe:28s} {c.status:11s} {size:>9s} {sp:>8s}  {metric}")
    failed = [c for c in cells if c.status != "ok"]
    if failed:
        print()
        _say("why cells did not succeed:")
        for c in failed:
            _say(f"  {c.model} / {c.recipe} ({c.status}): {c.error or 'no reason recorded'}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from quantbench.results import csv_text, json_doc
    from quantbench.strictjson import dumps

    if args.output:  # before the store is read: a bad target fails at once
        from quantbench.files import check_new_file

        check_new_file(args.output, args.force, args.store)
    meta, cells = _load_stored(args.run_id, args.store)
    if args.format == "json":
        text = dumps(json_doc(meta, cells), indent=2) + "\n"
    else:
        text = csv_text(cells)
    if args.output:
        from quantbench.files import atomic_write_text

        try:  # without --force, a file that appeared meanwhile is not replaced either
            atomic_write_text(Path(args.output), text, overwrite=args.force)
        except OSError as e:
            raise QuantbenchError(f"cannot write '{args.output}': {e.strerror or e}") from None
        _say(f"wrote {args.output}")
    else:
        from quantbench.inert import data_stream

        data_stream(sys.stdout).write(text)  # byte for byte into a pipe; inert on a terminal
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from quantbench.report.compare import run_compare

    if args.sweep is not None or args.machines:
        return _compare_machines(args)
    if not args.run_ids:
        raise QuantbenchError("compare needs RUN_IDs (or --sweep SWEEP_ID)")
    res = run_compare(args.run_ids, args.store, args.out, args.fail_if_slower,
                      args.fail_if_less_accurate, args.fail_if_larger)  # fmt: skip
    print(res.text)
    _say(f"written: {res.out_dir / 'compare.md'} (+ compare_latency.png, compare_speedup.png)")
    return 1 if res.gates.failed else 0


def _compare_machines(args: argparse.Namespace) -> int:
    from quantbench.report.compare import run_compare_machines

    gates = [f for f, v in (("--fail-if-slower", args.fail_if_slower),
                            ("--fail-if-less-accurate", args.fail_if_less_accurate),
                            ("--fail-if-larger", args.fail_if_larger)) if v is not None]  # fmt: skip
    what = "--sweep" if args.sweep is not None else "--machines"
    if gates:
        raise QuantbenchError(f"{gates[0]} compares against a baseline run; machines compared "
                              f"with {what} have none (compare two run ids for the gates)")  # fmt: skip
    if args.sweep is not None and (args.run_ids or args.machines):
        raise QuantbenchError("compare takes RUN_IDs or --sweep SWEEP_ID, not both")
    if args.machines and not args.run_ids:
        raise QuantbenchError("compare --machines needs RUN_IDs (one column each)")
    res = run_compare_machines(args.run_ids or None, args.sweep, args.store, args.out)
    print(res.text)
    _say(f"written: {res.out_dir / 'compare.md'} (+ {len(res.figures)} figure(s), one per model)")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from quantbench.doctor import doctor

    if args.threads is not None and args.threads <= 0:
        raise QuantbenchError(f"threads must be an integer > 0, got {args.threads}")
    if args.seconds <= 0:
        raise QuantbenchError(f"seconds must be a number > 0, got {args.seconds:g}")
    print(doctor(args.seconds, args.threads))
    return 0


COMMANDS = {
    "run": cmd_run,
    "quantize": cmd_quantize,
    "list": cmd_list,
    "report": cmd_report,
    "runs": cmd_runs,
    "show": cmd_show,
    "export": cmd_export,
    "import": cmd_import,
    "compare": cmd_compare,
    "sensitivity": cmd_sensitivity,
    "doctor": cmd_doctor,
    "schema": cmd_schema,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``quantbench`` console script; returns the exit code.

    Everything printed, by quantbench or a library, goes through one guard that shows
    control characters as escapes: names are user input, never terminal commands."""
    from quantbench.inert import guard_terminal

    with guard_terminal():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if getattr(args, "quiet", None) and getattr(args, "verbose", None):
        print("quantbench: error: -q and -v cannot be combined", file=sys.stderr)
        return EXIT_USAGE
    if _verbosity(args) >= 2:  # tracebacks: the CLI's and every worker's
        os.environ["QUANTBENCH_DEBUG"] = "1"
    from quantbench.runner import quiet_libraries

    quiet_libraries()
    try:
        return COMMANDS[args.command](args)
    except QuantbenchError as e:
        _say(f"quantbench: error: {scrub(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("quantbench: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: still one line, traceback on request
        if os.environ.get("QUANTBENCH_DEBUG"):
            raise
        _say(
            f"quantbench: internal error: {type(e).__name__}: {scrub(str(e))} "
            "(set QUANTBENCH_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
