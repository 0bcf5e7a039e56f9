"""Commands on one model: ``quantize`` (write the artifact ``run`` measures) and
``sensitivity`` (rank its layers by what quantizing them costs)."""

from __future__ import annotations

import argparse
from typing import Any

from quantbench.cli.terminal import say


def add_quantize(sub: Any) -> None:
    p = sub.add_parser(
        "quantize",
        help="quantize one model with one recipe and write the deployable artifact",
        description="Write what a user ships: an .onnx file for ONNX Runtime recipes, a .pt2 "
        "program for pt2e-static-int8, or a weights-only torch checkpoint that "
        "quantbench.load_artifact(PATH) turns back into a callable module. It is built as "
        "'quantbench run' builds it for the same settings (--config takes a run's): the same "
        "calibration, recipe settings and seed, and with --fallback the same +fallback search.",
    )
    p.set_defaults(func=cmd_quantize)
    p.add_argument("model", help="alias, hf:<id-or-dir>, tv:<name>, py:<file>:<obj>, "
                   "onnx:<file> or <file>.onnx, or a model named in --config")  # fmt: skip
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


def cmd_quantize(args: argparse.Namespace) -> int:
    from quantbench.build import quantize

    w = quantize(
        args.model, args.recipe, args.output, config=args.config, force=args.force,
        weights=args.weights, engine=args.engine, seed=args.seed,
        calib_batches=args.calib_batches, calibration=args.calibration, dataset=args.dataset,
        fallback=True if args.fallback else None, max_accuracy_drop=args.max_accuracy_drop,
    )  # fmt: skip
    say(f"wrote {w.path} ({w.size_bytes / 2**20:.2f} MiB, {w.size_bytes} bytes, {w.variant}, "
        f"runtime {w.runtime})")  # fmt: skip
    if w.measured_bytes is not None and w.measured_bytes != w.size_bytes:
        say(f"size:  {w.measured_bytes} bytes as 'run' reports it (the state_dict; the file "
            f"adds {w.size_bytes - w.measured_bytes} bytes of metadata to rebuild it)")  # fmt: skip
    say(f"calibration: {w.calibration or f'none ({w.recipe} does not calibrate activations)'}")
    if w.accuracy is not None:
        a, bar = w.accuracy, "met" if w.accuracy.get("passes") else "missed"
        rel = f"{a['relative']:.1%} of fp32; " if a.get("relative") is not None else ""
        say(f"accuracy: {a['metric']} {a['value']:.4f} on {a['dataset']} ({rel}bar {bar})")
    for note in w.notes:
        say(note)
    return 0


def add_sensitivity(sub: Any) -> None:
    p = sub.add_parser(
        "sensitivity",
        help="rank a model's layers by what quantizing them costs",
        description="Quantize MODEL with RECIPE leaving one layer at a time in float "
        "(float-one) or quantizing one layer at a time (quantize-one), and rank the layers by "
        "their effect on the task metric (with --dataset) or on the cosine to fp32 outputs. "
        "Writes sensitivity.json, sensitivity.md and sensitivity.png.",
    )
    p.set_defaults(func=cmd_sensitivity)
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


def cmd_sensitivity(args: argparse.Namespace) -> int:
    from quantbench.runner.sensitivity import analyse

    result, out = analyse(
        args.model, args.recipe, dataset=args.dataset, calibration=args.calibration,
        limit=args.limit, mode=args.mode, weights=args.weights, seed=args.seed, out=args.out,
        num_classes=args.num_classes,
    )  # fmt: skip
    say(f"{result.model} · {result.recipe} · {result.mode} · metric: {result.metric}")
    say(f"fp32 {result.fp32_score:.4f}   fully quantized {result.quantized_score:.4f}")
    for e in result.layers[:15]:
        eff = f"{e.effect:+.4f}" if e.effect is not None else f"error: {e.error}"
        say(f"  {e.layer:40s} {e.kind:10s} {eff}")
    if len(result.layers) > 15:
        say(f"  ... {len(result.layers) - 15} more in {out / 'sensitivity.md'}")
    say(f"report: {out / 'sensitivity.md'}")
    return 0
