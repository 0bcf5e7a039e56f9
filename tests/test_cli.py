"""The CLI end to end on tiny models, and every bad-input path: one line, exit 2."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import fast_overrides
from quantbench.cli import main

LAB_FIGURES = [
    "vision_latency_vs_image_size.png",
    "vision_latency_vs_batch_size.png",
    "text_latency_vs_seq_len.png",
    "text_latency_vs_batch_size.png",
    "size.png",
]


def write_config(path: Path, models: list, **kw) -> Path:
    cfg = fast_overrides(models=models, **kw)
    path.write_text(yaml.safe_dump(cfg))
    return path


def qb(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real console entry point in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "quantbench.cli", *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_bert_dir):
    """One real run over a tiny CNN and a tiny BERT, all recipes, both sweeps."""
    tmp = tmp_path_factory.mktemp("run")
    cfg = write_config(tmp / "exp.yaml", ["tv:squeezenet1_1", f"hf:{tiny_bert_dir}"])
    out = tmp / "out"
    rc = main(["run", "--config", str(cfg), "--out", str(out), "--no-progress"])
    return rc, out


def test_run_writes_every_output(tiny_run, capsys):
    rc, out = tiny_run
    assert rc == 0
    for f in ["results.json", "results.csv", "report.md"]:
        assert (out / f).is_file(), f
    for f in LAB_FIGURES:
        assert (out / "plots" / f).read_bytes().startswith(b"\x89PNG"), f


def test_results_json_schema(tiny_run, tiny_bert_dir):
    _, out = tiny_run
    doc = json.loads((out / "results.json").read_text())
    assert doc["schema_version"] == 1
    run = doc["run"]
    for k in [
        "id",
        "started_at",
        "quantbench_version",
        "host",
        "versions",
        "engine",
        "threads",
        "weights",
    ]:
        assert k in run, k
    assert {"cpu", "cores", "isa_flags", "os"} <= set(run["host"])
    assert run["engine"] in ("x86", "fbgemm", "qnnpack") and run["status"] == "finished"
    assert run["weights"]["tv:squeezenet1_1"].startswith("random")
    assert run["weights"][f"hf:{tiny_bert_dir}"] == str(tiny_bert_dir)
    cells = {(r["model"], r["recipe"]): r for r in doc["results"]}
    assert len(cells) == 6
    text_static = cells[(f"hf:{tiny_bert_dir}", "static-int8")]
    assert text_static["status"] == "unsupported" and "traceable" in text_static["error"]
    for (model, recipe), r in cells.items():
        if r["status"] != "ok":
            continue
        for k in [
            "size_bytes",
            "params",
            "int8_param_fraction",
            "quantized_modules",
            "fidelity",
            "latency",
        ]:
            assert r[k] is not None, (model, recipe, k)
        assert {"cosine", "max_abs_err", "top1_agreement"} <= set(r["fidelity"])
        pts = {(p["batch_size"], p["input_size"]) for p in r["latency"]}
        if model.startswith("tv:"):
            assert pts == {(1, 32), (1, 48), (2, 32)}
        else:
            assert pts == {(1, 8), (1, 16), (2, 16)}
        for p in r["latency"]:
            assert p["unit"] == "ms" and p["n"] >= 3 and len(p["samples"]) == p["n"]
            assert p["min"] <= p["median"] <= p["p90"] <= max(p["samples"])
            for k in ["mean", "std", "median", "p90", "n", "samples"]:
                assert k in p
    sq = cells[("tv:squeezenet1_1", "static-int8")]
    fp = cells[("tv:squeezenet1_1", "fp32")]
    assert sq["size_bytes"] < 0.35 * fp["size_bytes"] and sq["int8_param_fraction"] > 0.95
    assert sq["fidelity"]["top1_agreement"] is not None


def test_results_csv(tiny_run):
    _, out = tiny_run
    rows = list(csv.DictReader((out / "results.csv").open()))
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 5 * 3  # 5 ok cells x 3 shapes
    assert all(float(r["median"]) > 0 for r in ok)
    assert any(r["status"] == "unsupported" for r in rows)


def test_report_sections(tiny_run):
    _, out = tiny_run
    md = (out / "report.md").read_text()
    for heading in [
        "Models and model size",
        "How quantization was done",
        "Model size",
        "Latency",
        "Discussion",
    ]:
        assert heading in md
    assert "random" in md.lower() and "not" in md  # random-weights warning
    rec = md.split("## Recommendation")[1].split("## 1.")[0]  # the report opens with it
    assert "| tv:squeezenet1_1 |" in rec and "static-int8" in rec and "Why the others lost" in rec
    for f in LAB_FIGURES:
        assert f"plots/{f}" in md


@pytest.mark.slow  # seconds of real runs: the everyday suite stays under 5 minutes
def test_report_command_rerenders(tiny_run):
    _, out = tiny_run
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").is_file()


@pytest.mark.slow  # seconds to tens of seconds: the everyday suite stays under 5 minutes
def test_size_only_run_has_no_latency(tmp_path):
    out = tmp_path / "out"
    rc = main(
        ["run", "--models", "squeezenet", "--measure", "size", "--out", str(out), "--no-progress"]
    )
    assert rc == 0
    doc = json.loads((out / "results.json").read_text())
    assert all(r["latency"] == [] for r in doc["results"])
    assert not (out / "plots" / "vision_latency_vs_image_size.png").exists()
    sizes = {r["recipe"]: r["size_bytes"] for r in doc["results"]}
    assert sizes["dynamic-int8"] == pytest.approx(sizes["fp32"], rel=0.01)  # no Linear at all
    assert sizes["static-int8"] < 0.3 * sizes["fp32"]


def test_list_commands(capsys):
    assert main(["list", "models"]) == 0
    text = capsys.readouterr().out
    for alias in [
        "bert",
        "albert",
        "distilbert",
        "longformer",
        "mobilenet_v2",
        "resnet18",
        "squeezenet",
        "mnasnet",
    ]:
        assert alias in text
    assert main(["list", "recipes"]) == 0
    assert "dynamic-int8" in capsys.readouterr().out
    assert main(["list", "presets"]) == 0
    assert "targets" in capsys.readouterr().out
    assert main(["list", "datasets"]) == 0
    text = capsys.readouterr().out
    assert all(k in text for k in ("imagefolder", "text", "sentences"))


def test_doctor(capsys):
    assert main(["doctor"]) == 0
    text = capsys.readouterr().out
    assert "engines:" in text and "cpu:" in text
    # what else runs, what it does to the numbers, how to quiet it (read-only, no root)
    assert all(f"\n{k}:" in text for k in ("others", "effect", "quieter"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--models", "bertt"], "unknown model 'bertt'. Did you mean 'bert'"),
        (["run", "--recipes", "int3"], "unknown recipe 'int3'"),
        (["run", "--batch-sizes", "1,two"], "positive integers, got 'two'"),
        (["run", "--image-sizes", "0"], "positive integers, got '0'"),
        (["run", "--models", "bert", "--seq-lens", "600"], "beyond bert's maximum of 512"),
        (["run", "--engine", "nope"], "quantized engine 'nope' is not available"),
        (["run", "--threads", "0"], "setting 'threads' must be an integer > 0, got 0"),
        (["run", "--min-runs", "-1"], "setting 'min_runs' must be an integer > 0, got -1"),
        (["run", "--max-accuracy-drop", "1"], "setting 'max_accuracy_drop' must be a fraction"),
        (["run", "--ref-seq-len", "9999", "--models", "bert"], "beyond bert's maximum of 512"),
        (["run", "--recipe-options", "{static-int8: 1}"], "must be a mapping of settings"),
        (["run", "--threads", "x"], "invalid int value"),
        (["run", "--measure", "accuracy"], "unknown measure 'accuracy'"),
        (["run", "--config", "/nonexistent.yaml"], "cannot read config"),
        (["list", "things"], "invalid choice"),
        (["report", "/nonexistent"], "holds no results.json"),
    ],
)
def test_bad_input_one_line_exit_2(args, message):
    p = qb(*args)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert lines[0].startswith("quantbench: error: ") and message in lines[0]


@pytest.mark.slow  # seconds to tens of seconds: the everyday suite stays under 5 minutes
def test_bad_weights_files(tmp_path, resnet18_state_dict):
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"\x00garbage")
    for args, message in [
        (["--weights", str(bad)], "corrupt.pt' is not a weights file"),
        (
            ["--weights", str(tmp_path / "none.pt")],
            "is not 'random', 'pretrained' or an existing path",
        ),
        (["--weights", str(resnet18_state_dict)], "does not fit architecture resnet18"),
    ]:
        out = tmp_path / "o"
        p = qb("run", "--models", "resnet18", "--measure", "size", "--out", str(out), *args)
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert message in p.stderr
        assert not (out / "results.json").exists()  # nothing half-written


def test_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    p = qb("run", "--models", "squeezenet", "--measure", "size", "--out", str(blocker / "sub"))
    assert p.returncode == 2 and "cannot write to output directory" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_out_dir_with_a_run_is_refused(tiny_run):
    _, out = tiny_run
    p = qb("run", "--models", "squeezenet", "--measure", "size", "--out", str(out))
    assert p.returncode == 2 and "already holds a run" in p.stderr


@pytest.mark.slow  # seconds of real processes or runs: the everyday suite stays under 5 minutes
def test_local_state_dict_run(tmp_path, resnet18_state_dict):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump({
        "models": [{"name": "tv:resnet18", "weights": str(resnet18_state_dict), "num_classes": 10}],
        "recipes": ["static-int8"], "measure": ["size", "fidelity"],
        "calib_batches": 2, "calib_batch_size": 2, "ref_image_size": 32,
    }))  # fmt: skip
    out = tmp_path / "out"
    assert main(["run", "--config", str(cfg), "--out", str(out), "--no-progress"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["run"]["weights"]["tv:resnet18"] == str(resnet18_state_dict)
    assert [r["recipe"] for r in doc["results"]] == ["fp32", "static-int8"]
    assert "random" not in (out / "report.md").read_text().split("## 1.")[0].lower()


@pytest.mark.slow  # seconds to tens of seconds: the everyday suite stays under 5 minutes
def test_summary_claims_only_what_was_measured(tmp_path, capsys):
    """A size-only run ranks by size and says the variants were not judged."""
    assert main(["run", "--models", "squeezenet", "--measure", "size", "--out",
                 str(tmp_path / "o"), "--store", str(tmp_path / "q.db")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("squeezenet:"))
    assert "smallest static-int8" in line and "not judged" in line
    assert "keeping fidelity" not in out


@pytest.mark.slow  # seconds of real runs: the everyday suite stays under 5 minutes
def test_no_cell_succeeded_exits_1_and_show_says_why(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("QUANTBENCH_FAULT", "squeezenet:crash")  # tests/fault_hooks.py
    db = str(tmp_path / "q.db")
    assert main(["run", "--models", "squeezenet", "--recipes", "fp32", "--measure", "size",
                 "--out", str(tmp_path / "o"), "--store", db]) == 1  # fmt: skip
    captured = capsys.readouterr()
    assert "no cell succeeded: squeezenet / fp32: worker exited with code 3" in captured.err
    run_id = json.loads((tmp_path / "o" / "results.json").read_text())["run"]["id"]
    assert main(["show", run_id, "--store", db]) == 0
    out = capsys.readouterr().out
    assert "why cells did not succeed:" in out
    assert "squeezenet / fp32 (error): worker exited with code 3" in out
