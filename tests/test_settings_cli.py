"""One settings model behind the run flags, the YAML file and Python overrides: every
setting has its flag, `quantbench schema`, the reference-shape flags, -v/-q."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
import yaml

from quantbench.cli import build_parser, main
from quantbench.settings import BATCH_SIZES_ALIAS, FIELDS

# Settings that are deliberately not (only) a plain `--key` flag: none. Every setting
# (quantbench.settings.FIELDS) is a flag named `--` + key with `_` as `-`; `--models` takes names
# or, as inline YAML, entries (per-model weights, options, sweeps or data), `--dataset`,
# `--calibration`, `--train-dataset` and `--recipe-options` take a path or an inline
# YAML/JSON mapping.
NO_FLAG: set[str] = {"eval_fn"}  # a function handed to the Python API, not typable
OLD_SPELLINGS = {"--min-time": "min_time_s", "--max-time": "max_time_s", "--timeout": "timeout_s"}


def _run_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["run"]


def test_every_setting_has_its_flag():
    by_flag = {s: a.dest for a in _run_parser()._actions for s in a.option_strings}
    for key in [*FIELDS, BATCH_SIZES_ALIAS]:
        if key in NO_FLAG:
            continue
        flag = "--" + key.replace("_", "-")
        assert by_flag.get(flag) == key, f"setting {key} has no flag {flag}"
    for old, key in OLD_SPELLINGS.items():  # today's spellings: the same option
        assert by_flag[old] == key


def test_flags_reach_the_settings():
    from quantbench.cli import run_overrides
    from quantbench.runner.checks import build_spec

    args = build_parser().parse_args([
        "run", "--models", "resnet18", "--min-time", "0.1", "--timeout-s", "60",
        "--batch-sizes", "1,2", "--vision-batch-sizes", "4", "--no-isolate", "--no-pin",
        "--ref-batch", "2", "--ref-image-size", "32", "--min-cosine", "0.9",
        "--recipe-options", "{static-int8: {per_channel: false}}",
    ])  # fmt: skip
    spec = build_spec(preset=args.preset, overrides=run_overrides(args))
    assert (
        spec.timing.min_time_s == 0.1
        and spec.timing.timeout_s == 60
        and spec.launch.isolate is False
    )
    assert spec.sweep.vision_batch_sizes == [4] and spec.sweep.text_batch_sizes == [1, 2]
    assert (spec.sweep.ref_batch, spec.sweep.ref_image_size, spec.judge.min_cosine) == (2, 32, 0.9)
    assert (
        spec.quant.recipe_options == {"static-int8": {"per_channel": False}} and not spec.timing.pin
    )


def test_schema_command(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert set(schema["properties"]) == set(FIELDS) | {BATCH_SIZES_ALIAS}
    assert "timeout_s" in schema["properties"] and schema["properties"]["timeout_s"]["description"]


def test_unknown_file_key_one_line_nothing_written(tmp_path, capsys):
    cfg = tmp_path / "x.yaml"
    cfg.write_text("modles: [resnet18]\n")
    out = tmp_path / "out"
    assert main(["run", "--config", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown setting 'modles'. Did you mean 'models'?" in err[0]
    assert not out.exists()


def _tiny_run(tmp_path: Path, *flags: str) -> tuple[dict, str, str]:
    out = tmp_path / "out"
    args = [
        "run", "--models", "resnet18", "--recipes", "fp32,dynamic-int8",
        "--measure", "latency,fidelity", "--image-sizes", "16,32", "--batch-sizes", "1,2",
        "--min-runs", "3", "--min-time-s", "0", "--warmup", "1", "--calib-batches", "1",
        "--calib-batch-size", "1", "--fidelity-batch-size", "2", "--no-isolate",
        "--no-progress", "--threads", "1", "--out", str(out), *flags,
    ]  # fmt: skip
    assert main(args) == 0
    doc = json.loads((out / "results.json").read_text())
    return doc, (out / "report.md").read_text(), str(out)


def _points(doc: dict) -> set[tuple[int, int]]:
    fp32 = next(c for c in doc["results"] if c["recipe"] == "fp32")
    return {(p["batch_size"], p["input_size"]) for p in fp32["latency"]}


def _rec_shape(report: str) -> str:
    return report.split("| resnet18 |")[1].split("|")[0].strip()


@pytest.mark.parametrize(
    "flags, shape",
    [
        ((), (1, 32)),  # the sweep's point nearest the lab's 224 px
        (("--ref-image-size", "16"), (1, 16)),
        (("--ref-batch", "2"), (2, 32)),
    ],
)
def test_reference_shape_flags(tmp_path, capsys, flags, shape):
    doc, report, _ = _tiny_run(tmp_path, *flags)
    rec = doc["run"]["recommendations"]["resnet18"]
    assert tuple(rec["reference"]) == shape and shape in _points(doc)
    assert _rec_shape(report) == f"{shape[0]} × {shape[1]}"
    # no 224 px shape anywhere (a number such as 0.0224 is not a shape)
    shape224 = re.compile(r"224\s*px|×\s*224\b|\b224\s*×|\b224x|x224\b")
    assert not shape224.search(report) and not shape224.search(capsys.readouterr().out)
    assert _points(doc) <= {(1, 16), (1, 32), (2, 16), (2, 32)}  # never an unasked size


@pytest.mark.slow  # seconds of real runs: the everyday suite stays under 5 minutes
def test_ref_batch_is_added_to_the_batch_sweep(tmp_path):
    doc, report, _ = _tiny_run(tmp_path, "--ref-batch", "4")
    assert (4, 32) in _points(doc) and doc["run"]["recommendations"]["resnet18"]["reference"] == [
        4,
        32,
    ]
    assert _rec_shape(report) == "4 × 32"


@pytest.mark.slow  # seconds to tens of seconds: the everyday suite stays under 5 minutes
def test_quiet_and_verbose(tmp_path, capsys):
    _tiny_run(tmp_path / "default")
    default = capsys.readouterr()
    assert "[1/1] resnet18" in default.err and "quantizing" not in default.err
    _tiny_run(tmp_path / "q", "-q")
    quiet = capsys.readouterr()
    assert quiet.err == "" and "cells:" in quiet.out and "report:" in quiet.out
    _tiny_run(tmp_path / "v", "-v")
    verbose = capsys.readouterr()
    assert "resnet18: quantizing" in verbose.err and "[1/1] resnet18" in verbose.err


def test_file_preset_and_flag_precedence(tmp_path):
    cfg = tmp_path / "x.yaml"
    cfg.write_text(yaml.safe_dump({"preset": "quick", "min_runs": 5, "measure": ["size"]}))
    from quantbench.cli import run_overrides
    from quantbench.runner.checks import build_spec

    args = build_parser().parse_args(["run", "--config", str(cfg), "--min-runs", "7"])
    spec = build_spec(preset=args.preset, config=args.config, overrides=run_overrides(args))
    assert spec.preset == "quick" and spec.timing.min_runs == 7 and spec.timing.min_time_s == 0.2


def test_models_flag_takes_entries_as_inline_yaml(tmp_path, capsys):
    """An entry with options (input_spec, num_classes), typed on the command line, is read
    as a file's entry is; bad ones are one line, exit 2, nothing written."""
    from quantbench.cli import run_overrides
    from quantbench.runner.checks import build_spec

    one = "{name: r, source: tv:resnet18, num_classes: 10, image_sizes: [32]}"
    for text in (one, f"[squeezenet, {one}]"):
        args = build_parser().parse_args(["run", "--models", text])
        refs = build_spec(overrides=run_overrides(args)).target.models
        r = refs[-1]
        assert (r.name, r.load_name, r.options, r.image_sizes) == (
            "r", "tv:resnet18", {"num_classes": 10}, [32])  # fmt: skip
    assert [m.name for m in refs] == ["squeezenet", "r"]
    out = tmp_path / "o"
    for text, want in (
        ("{name: [", "models '{name: [' is not valid inline YAML: expected the node content"),
        ("[1]", "a model entry needs a 'name', got 1"),
        ("{name: r, bogus: 1}", "model 'r': unknown setting 'bogus'. Valid settings: arch,"),
        ("{name: resnet18, options: {num_clases: 10}}",
         "model 'resnet18': unknown option 'num_clases'. Did you mean 'num_classes'?"),
        ("{name: resnet18, options: {input_spec: {}}}",
         "model 'resnet18': unknown option 'input_spec'. Valid options: num_classes"),
        ("{name: distilbert, options: {num_classes: 2}}",
         "model 'distilbert' takes no options, got 'num_classes'"),
    ):  # fmt: skip
        assert main(["run", "--models", text, "--out", str(out)]) == 2, text
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and want in err, (text, err)
        assert not out.exists()
