"""Shipping what was measured: `run --save-artifacts` writes each variant's file, and
`quantize` with the same settings builds the same artifact (one code path)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml

import quantbench
from quantbench.cli import main

EXAMPLES = Path(__file__).parent.parent / "examples"
CNN = EXAMPLES / "digits_cnn.py"


def _config(tmp_path: Path, **extra) -> Path:
    """A run config on the digits CNN (random weights, seed 3) at 16 px."""
    cfg = {
        "models": [{"name": "digits", "source": "python", "path": str(CNN), "arch": "DigitsCNN"}],
        "recipes": ["fp32", "dynamic-int8", "static-int8"],
        "image_sizes": [16], "vision_batch_sizes": [1], "ref_image_size": 16,
        "measure": ["size", "latency", "fidelity"], "min_runs": 2, "min_time_s": 0.0,
        "warmup": 1, "calib_batches": 2, "calib_batch_size": 2, "seed": 3,
        "recipe_options": {"static-int8": {"per_channel": False}},
        **extra,
    }  # fmt: skip
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def _same(x, y, where: str) -> None:
    """Equal tensors (quantized ones: integers and scales), in equal containers."""
    if isinstance(x, (tuple, list)):
        assert len(x) == len(y), where
        for i, (a, b) in enumerate(zip(x, y, strict=True)):
            _same(a, b, f"{where}[{i}]")
    elif isinstance(x, torch.Tensor) and x.is_quantized:
        assert torch.equal(x.int_repr(), y.int_repr()), where
        assert torch.equal(x.dequantize(), y.dequantize()), where
    elif isinstance(x, torch.Tensor):
        assert torch.equal(x, y), where
    else:
        assert x == y, where


def _same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        _same(a[k], b[k], k)


def load(path: Path) -> torch.nn.Module:
    """A digits CNN artifact: a py: model's file holds its source, ours to trust."""
    return quantbench.load_artifact(path, trust_code=True)


def _cells(out: Path) -> dict[str, dict]:
    doc = json.loads((out / "results.json").read_text())
    return {c["recipe"]: c for c in doc["results"]}


@pytest.mark.slow  # seconds of real processes or runs: the everyday suite stays under 5 minutes
def test_run_save_artifacts_ships_what_quantize_builds(tmp_path, capsys):
    cfg = _config(tmp_path)
    out = tmp_path / "run"
    assert main(["run", "--config", str(cfg), "--out", str(out), "--save-artifacts"]) == 0
    assert f"artifacts: {out / 'artifacts'} (3 files" in capsys.readouterr().out
    cells = _cells(out)
    for recipe in ("fp32", "dynamic-int8", "static-int8"):
        cell = cells[recipe]
        rec = cell["details"]["artifact"]
        path = out / rec["path"]
        assert rec["path"] == f"artifacts/digits/{recipe}.pt" and rec["format"] == "state_dict"
        assert rec["bytes"] == path.stat().st_size
        assert rec["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        # the file holds the sized state_dict plus the metadata that rebuilds it
        assert rec["overhead_bytes"] == rec["bytes"] - cell["size_bytes"] > 0
    # quantize with the run's config builds the very artifact the run measured
    q = tmp_path / "q.pt"
    assert main(["quantize", "digits", "--recipe", "static-int8", "--config", str(cfg),
                 "-o", str(q)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "calibration: activations calibrated on 2 batches (4 samples) of synthetic" in text
    assert f"{cells['static-int8']['size_bytes']} bytes as 'run' reports it" in text
    shipped = out / "artifacts/digits/static-int8.pt"
    _same_tensors(_tensors(shipped), _tensors(q))
    meta = torch.load(q, weights_only=True)
    assert meta["recipe_options"] == {"per_channel": False} and meta["seed"] == 3
    x = torch.randn(2, 3, 16, 16)
    with torch.inference_mode():
        assert torch.equal(load(shipped)(x), load(q)(x))


def test_save_artifacts_without_out_goes_to_the_default_run_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _config(tmp_path, recipes=["fp32"], measure=["size"])
    assert main(["run", "--config", str(cfg), "--save-artifacts"]) == 0
    (run_dir,) = (tmp_path / "quantbench-runs").iterdir()
    rec = _cells(run_dir)["fp32"]["details"]["artifact"]
    assert (run_dir / rec["path"]).stat().st_size == rec["bytes"]


def test_save_artifacts_off_changes_nothing(tmp_path):
    out = tmp_path / "run"
    cfg = _config(tmp_path, recipes=["fp32"], measure=["size"])
    assert main(["run", "--config", str(cfg), "--out", str(out), "--no-isolate"]) == 0
    assert not (out / "artifacts").exists()
    assert "artifact" not in _cells(out)["fp32"]["details"]


def test_fallback_and_onnx_artifacts_match_quantize(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    import onnx
    from onnx import numpy_helper

    # a bar static-int8 misses on random weights: the fallback search runs (2 layers max)
    cfg = _config(
        tmp_path, recipes=["static-int8", "ort-static-int8"], measure=["size", "fidelity"],
        fallback=True, min_cosine=0.999999, fallback_max_layers=2,
    )  # fmt: skip
    out = tmp_path / "run"
    args = ["run", "--config", str(cfg), "--out", str(out), "--save-artifacts", "--no-isolate"]
    assert main(args) == 0
    cells = _cells(out)
    fb = cells["static-int8+fallback"]
    assert fb["status"] == "ok" and fb["details"]["artifact"]["path"].endswith("+fallback.pt")
    # quantize --fallback with the same config ships the same fallback artifact
    q = tmp_path / "q.pt"
    argv = ["quantize", "digits", "--recipe", "static-int8", "--config", str(cfg), "-o", str(q)]
    assert main(argv) == 0
    assert "accuracy-aware fallback from static-int8" in capsys.readouterr().out
    shipped = out / fb["details"]["artifact"]["path"]
    _same_tensors(_tensors(shipped), _tensors(q))
    assert torch.load(q, weights_only=True)["float_layers"] == fb["details"]["float_layers"]
    x = torch.randn(1, 3, 16, 16)
    with torch.inference_mode():  # the fallback's float layers are rebuilt as float
        assert torch.equal(load(shipped)(x), load(q)(x))
    # ONNX: the very file that was sized; quantize gives the same initializers (ORT's
    # recipe misses the bar too: both ship its +fallback, the same nodes left float)
    ofb = cells["ort-static-int8+fallback"]
    ort = ofb["details"]["artifact"]
    assert ort["format"] == "onnx" and ort["bytes"] == ofb["size_bytes"]
    qo = tmp_path / "q.onnx"
    argv = ["quantize", "digits", "--recipe", "ort-static-int8", "--config", str(cfg)]
    assert main([*argv, "-o", str(qo)]) == 0

    def inits(p: Path) -> dict:
        return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(p)).graph.initializer}

    a, b = inits(out / ort["path"]), inits(qo)
    assert a and a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    text = capsys.readouterr().out
    assert "ort-static-int8+fallback" in text and ofb["details"]["float_nodes"]
    assert "calibration: activations calibrated (minmax) on" in text


def test_compile_ships_the_base_file_and_failures_are_notes(tmp_path):
    from quantbench.artifacts import save_variants
    from quantbench.models import load_model
    from quantbench.recipes import Artifact, QuantContext
    from quantbench.results import CellResult
    from quantbench.runner.pipeline import ModelRun
    from quantbench.settings import ModelRef, RunSpec
    from quantbench.variants import Variant

    class Compiled(torch.nn.Module):  # what a +compile artifact looks like to the writer
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self._orig_mod = inner

    name = f"py:{CNN}:DigitsCNN"
    lm = load_model(name)
    fp32, comp = Variant("fp32"), Variant("fp32", ("compile",))
    run = ModelRun(RunSpec(out=str(tmp_path), models=[]), ModelRef(name), print, lm=lm)
    run.qctx = QuantContext("x86")
    run.arts = {
        comp: Artifact("fp32+compile", Compiled(lm.module)),
        fp32: Artifact("fp32", lm.module),
    }
    run.cells = {v: CellResult(model=name, recipe=v.name) for v in run.arts}
    save_variants(run)
    base, compiled = (run.cells[v].details["artifact"] for v in (fp32, comp))
    assert compiled == {**base, "compiled_at_load": True} and "compiled_at_load" not in base
    assert base["path"].startswith("artifacts/py_") and base["path"].endswith("/fp32.pt")
    assert len(list(tmp_path.rglob("*.pt"))) == 1  # one file, shipped once
    # an unwritable destination is a note on each cell, never an exception
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the directory should be")
    run.spec.output.out = str(blocked)
    run.cells = {v: CellResult(model=name, recipe=v.name) for v in run.arts}
    save_variants(run)
    for cell in run.cells.values():
        assert "artifact" not in cell.details
        assert any(n.startswith("artifact not saved:") for n in cell.notes)


def test_safe_names():
    from quantbench.artifacts.names import safe_name

    assert safe_name("static-int8+fallback") == "static-int8+fallback"
    assert safe_name("resnet18") == "resnet18"
    a, b = safe_name("hf:/path/x"), safe_name("hf:/path_x")
    assert a.startswith("hf_path_x-") and a != b and "/" not in a and ":" not in a
    assert safe_name("..") != ".." and "/" not in safe_name("../../etc")


def test_py_artifact_loads_without_its_source_file(tmp_path, monkeypatch, capsys):
    src_dir, ship_dir, elsewhere = (tmp_path / d for d in ("src", "ship", "elsewhere"))
    for d in (src_dir, ship_dir, elsewhere):
        d.mkdir()
    shutil.copy(CNN, src_dir / "digits_cnn.py")
    monkeypatch.chdir(src_dir)  # a relative py: path, as users type it
    assert main(["quantize", "py:digits_cnn.py:DigitsCNN", "--recipe", "static-int8",
                 "-o", "m.pt", "--calib-batches", "2"]) == 0  # fmt: skip
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        y_here = quantbench.load_artifact("m.pt", trust_code=True)(x)
    shutil.move(src_dir / "m.pt", ship_dir / "m.pt")
    (src_dir / "digits_cnn.py").unlink()  # the source is gone: the artifact holds it
    monkeypatch.chdir(elsewhere)
    with torch.inference_mode():
        y_there = quantbench.load_artifact(ship_dir / "m.pt", trust_code=True)(x)
    assert torch.equal(y_here, y_there)
    assert not list(elsewhere.iterdir()) and os.getcwd() == str(elsewhere)


def test_quantize_with_real_calibration_data(tmp_path, digits_dir, digits_model, capsys):
    from conftest import digits_spec

    model, weights = digits_model
    q = tmp_path / "q.pt"
    argv = ["quantize", model, "--recipe", "static-int8", "--weights", str(weights), "-o", str(q),
            "--calibration", json.dumps(digits_spec(digits_dir / "train")),
            "--dataset", json.dumps(digits_spec(digits_dir / "test"))]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert f"128 examples of {digits_dir / 'train'}" in text
    assert "accuracy: top1" in text and "of fp32; bar" in text
    assert torch.load(q, weights_only=True)["calibration"].startswith("128 examples of")


def test_quantize_bad_input_is_one_line(tmp_path, sentiment, capsys):
    model_dir, _ = sentiment
    sents = tmp_path / "sents.txt"
    sents.write_text("a good film\nthe plot was awful\n")
    out = tmp_path / "q.pt"
    argv = ["quantize", f"hf:{model_dir}", "--recipe", "dynamic-int8", "-o", str(out)]
    assert main([*argv, "--dataset", str(sents), "--fallback"]) == 2
    err = capsys.readouterr().err
    assert "has no labels" in err and err.count("\n") == 1
    assert main(["quantize", "squeezenet", "--recipe", "int9", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unknown recipe 'int9'" in err and err.count("\n") == 1
    out.write_bytes(b"keep")
    assert main(["quantize", "squeezenet", "--recipe", "fp32", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "exists; use --force" in err and err.count("\n") == 1 and out.read_bytes() == b"keep"
    assert not list(tmp_path.glob(".q.pt.*"))


def test_qat_artifact_reloads(tmp_path, digits_dir, digits_model):
    from conftest import digits_spec

    model, weights = digits_model
    cfg = tmp_path / "qat.yaml"
    cfg.write_text(yaml.safe_dump({"train_dataset": digits_spec(digits_dir / "train"),
                                   "qat_steps": 5, "weights": str(weights)}))  # fmt: skip
    q = tmp_path / "qat.pt"
    argv = ["quantize", model, "--recipe", "qat-int8", "--config", str(cfg), "-o", str(q)]
    assert main(argv) == 0
    loaded = quantbench.load_artifact(q, trust_code=True)
    _same_tensors(loaded.state_dict(), _tensors(q))  # the structure fits every tensor
    with torch.inference_mode():
        assert loaded(torch.randn(2, 3, 16, 16)).shape == (2, 10)
