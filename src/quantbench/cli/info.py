"""Commands that describe rather than measure: ``schema`` (the settings), ``list``
(models, recipes, datasets, presets) and ``doctor`` (this machine)."""

from __future__ import annotations

import argparse
from typing import Any

from quantbench.errors import QuantbenchError


def add_schema(sub: Any) -> None:
    p = sub.add_parser(
        "schema",
        help="print the run settings' JSON Schema (every key, type, default, description)",
        description="The JSON Schema of a run's settings: the keys of an experiment file "
        "(examples/lab.yaml), of Python overrides, and (as --key-with-dashes) of the run flags.",
    )
    p.set_defaults(func=cmd_schema)


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of the run settings (flat keys, :mod:`quantbench.settings`)."""
    from quantbench.settings import json_schema
    from quantbench.strictjson import dumps

    print(dumps(json_schema(), indent=2))
    return 0


def add_list(sub: Any) -> None:
    p = sub.add_parser("list", help="list models, recipes, datasets or presets")
    p.set_defaults(func=cmd_list)
    p.add_argument("what", choices=["models", "recipes", "datasets", "presets"])
    p.add_argument("--check", action="store_true", help="recipes: also check which run on this "
                   "machine, and why not (imports torch, ONNX Runtime and torchao: seconds)")  # fmt: skip
    p.add_argument("--markdown", action="store_true", help="recipes: the support matrix (recipe "
                   "x model family x device, available here or why not) as a markdown table "
                   "(checks this machine, as --check)")  # fmt: skip


def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "models":
        from quantbench.models import list_models

        for name, family, desc in list_models():
            print(f"{name:14s} {family:7s} {desc}")
        print("hf:<id-or-dir>  any Hugging Face model id or save_pretrained directory")
        print("tv:<name>       any torchvision classification builder, e.g. tv:resnet50")
        print("py:<file>:<obj> your own nn.Module class or factory in a Python file")
        print("onnx:<file>     an ONNX file (or any name ending in .onnx), run by ONNX Runtime")
    elif args.what == "recipes":
        _list_recipes(args.markdown, args.check)
    elif args.what == "datasets":
        from quantbench.datasets import list_kinds

        for name, desc in list_kinds():
            print(f"{name:12s} {desc}")
    else:
        from quantbench.settings import PRESETS

        for name, p in PRESETS.items():
            print(f"{name:8s} models: {', '.join(p.get('models', ['all eight lab models']))}")
    return 0


def _list_recipes(markdown: bool, check: bool) -> None:
    # The registry declares everything but "runs here": only --check / --markdown import
    # the libraries (seconds), so a plain listing starts like any other command.
    from quantbench.recipes import list_recipes
    from quantbench.recipes.support import DEVICE_COLUMNS, matrix, matrix_markdown, missing_packages

    recipes = list_recipes()
    if markdown:
        print(matrix_markdown(matrix(recipes)))
        return
    rows = matrix(recipes) if check else [None] * len(recipes)
    pad = f"{'':27s} {'':13s} "
    for r, row in zip(recipes, rows, strict=True):
        print(f"{r.name:27s} {r.runtime:13s} {r.description}")
        settings = {k: v for k, v in r.config_record().items() if k != "version"}
        facts = [f"quantizes {', '.join(r.quantizes) or 'nothing'}", f"ships {r.file_format}",
                 f"models {', '.join(r.families)}", f"runs on {', '.join(r.devices)}"]  # fmt: skip
        if settings:
            facts.append("settings " + ", ".join(f"{k}={v!r}" for k, v in settings.items()))
        print(f"{pad}({'; '.join(facts)})")
        if row is None:
            missing = missing_packages(r)  # find_spec: nothing is imported
            if missing:
                print(
                    f"{pad}missing package: {', '.join(missing)} (pip install {' '.join(missing)})"
                )
            continue
        for d in DEVICE_COLUMNS:
            why = row["here"][d]
            print(f"{pad}{d}: " + ("available" if why is None else f"unavailable: {why}"))
    print("\nSettings go in a config file as recipe_options: {RECIPE: {SETTING: VALUE}}.")
    if not check:
        print("'quantbench list recipes --check' also checks which run on this machine (seconds).")
    print("'quantbench list recipes --markdown' prints the support matrix as a table.")


def add_doctor(sub: Any) -> None:
    p = sub.add_parser("doctor", help="print the machine fingerprint and what will affect results")
    p.set_defaults(func=cmd_doctor)
    p.add_argument("--threads", type=int, help="threads to measure the machine's limits at")
    p.add_argument("--seconds", type=float, help="how long each GEMM case is timed when the "
                   "limits are measured (default 0.2)")  # fmt: skip
    p.add_argument("--refresh", action="store_true", help="measure the limits again "
                   "instead of reading them from the cache")  # fmt: skip


def cmd_doctor(args: argparse.Namespace) -> int:
    from quantbench.doctor import doctor

    if args.threads is not None and args.threads <= 0:
        raise QuantbenchError(f"threads must be an integer > 0, got {args.threads}")
    if args.seconds is not None and not args.seconds > 0:
        raise QuantbenchError(f"seconds must be a number > 0, got {args.seconds:g}")
    print(doctor(args.threads, args.refresh, args.seconds))
    return 0
