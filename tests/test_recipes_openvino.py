"""OpenVINO recipes on a tiny CNN and a tiny BERT (hidden 64): converted, quantized or
weight-compressed by NNCF, compiled with the run's threads in f32, sized as the IR's two
files, close to fp32, layers kept float through ignored_scope, and shipped files that
load in a fresh process to the same outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from deploy_models import SRC, python, tiny_bert64, tiny_cnn_model
from quantbench import models as zoo
from quantbench.errors import QuantbenchError, UnsupportedError
from quantbench.measure import fidelity
from quantbench.recipes import QuantContext, apply_recipe
from quantbench.recipes.openvino.runtime import OvModule, bin_path

TEXT_RECIPES = ["ov-fp32", "ov-int8", "ov-int8-weight-only", "ov-int4-weight-only"]


def _ctx(m, size, float_layers=()):
    calib = [m.make_inputs(2, size, seed=100 + i) for i in range(3)]
    return QuantContext("x86", calib, float_layers=frozenset(float_layers))


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    return zoo.load_model(tiny_cnn_model(tmp_path_factory.mktemp("cnn")))


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return zoo.load_model(f"hf:{tiny_bert64(tmp_path_factory.mktemp('bert64'))}")


@pytest.fixture(scope="module")
def arts():
    cache: dict = {}

    def get(model, recipe, size):
        key = (model.name, recipe)
        if key not in cache:
            cache[key] = apply_recipe(recipe, model, _ctx(model, size))
        return cache[key]

    return get


def _cosine(model, art, x):
    with torch.inference_mode():
        return fidelity.compare(model.module(*x), art.module(*x), is_classifier=False).cosine


def _check_ir(art, recipe):
    assert art.runtime == "openvino" and art.recipe == recipe
    assert str(art.file).endswith(".xml") and bin_path(art.file).is_file()
    # the size is what ships: the .xml and the .bin
    assert art.size_bytes == os.path.getsize(art.file) + os.path.getsize(bin_path(art.file))
    d = art.details
    assert d["threads"] == torch.get_num_threads()
    assert d["compiled"]["INFERENCE_PRECISION_HINT"] == "f32"
    assert d["convert_check"]["cosine"] > 0.999


@pytest.mark.parametrize("recipe", ["ov-fp32", "ov-int8"])
def test_ov_recipe_on_vision(cnn, arts, recipe):
    art = arts(cnn, recipe, 32)
    _check_ir(art, recipe)
    # the IR is dynamic: every batch and image size runs
    for b, s in [(1, 32), (3, 48)]:
        assert _cosine(cnn, art, cnn.make_inputs(b, s, seed=7)) > (
            0.9999 if recipe == "ov-fp32" else 0.99
        )
    if recipe == "ov-fp32":
        assert art.quantized_modules == {} and art.int8_param_fraction == 0.0
        assert art.float_modules == {"Convolution": 2, "MatMul": 1}
    else:
        assert art.quantized_modules["Convolution (int8)"] == 2
        assert art.quantized_modules["MatMul (int8)"] == 1
        assert art.quantized_modules["FakeQuantize"] >= 3 and art.float_modules == {}
        assert art.param_bytes_by_dtype["int8"] > art.param_bytes_by_dtype.get("float32", 0)
        assert any("calibrated on 3 batches (6 samples)" in n for n in art.notes)


@pytest.mark.slow  # converting even a tiny BERT takes 10-20 s here
@pytest.mark.parametrize("recipe", TEXT_RECIPES)
def test_ov_recipe_on_text(bert, arts, recipe):
    art = arts(bert, recipe, 16)
    _check_ir(art, recipe)
    ids, mask = bert.make_inputs(2, 24, seed=7)
    mask[1, 16:] = 0  # padding is honoured
    assert _cosine(bert, art, (ids, mask)) > (0.9999 if recipe == "ov-fp32" else 0.999)
    fp32 = arts(bert, "ov-fp32", 16)
    if recipe == "ov-fp32":
        assert art.float_modules == {"Gather": 3, "MatMul": 12}
        return
    assert art.size_bytes < 0.6 * fp32.size_bytes
    q = art.quantized_modules
    if recipe == "ov-int8":
        assert q["MatMul (int8)"] == 12 and q["Gather (int8)"] == 3 and q["FakeQuantize"] > 0
        assert art.details["model_type"] == "transformer"
    elif recipe == "ov-int8-weight-only":
        assert q == {"Gather (int8)": 3, "MatMul (int8)": 12}  # no activation quantizer
    else:  # hidden 64 does not divide into NNCF's groups of 128: they adjust
        assert q["MatMul (int4)"] >= 11 and "FakeQuantize" not in q
        assert art.size_bytes < arts(bert, "ov-int8-weight-only", 16).size_bytes


def test_weight_only_refuses_vision_models(cnn):
    with pytest.raises(UnsupportedError, match="use ov-int8 for vision models"):
        apply_recipe("ov-int4-weight-only", cnn, _ctx(cnn, 32))


def test_the_runs_threads_reach_the_compiled_model(cnn, arts):
    xml = arts(cnn, "ov-fp32", 32).file
    for n in (1, 2):
        m = OvModule(xml, threads=n)
        assert m.threads == n
        assert int(m.compiled.get_property("INFERENCE_NUM_THREADS")) == n


def test_ignored_scope_keeps_chosen_layers_float(cnn):
    art = apply_recipe("ov-int8", cnn, _ctx(cnn, 32, ["conv1"]))
    assert art.quantized_modules["Convolution (int8)"] == 1
    assert art.float_modules == {"Convolution": 1}
    assert art.details["ignored_scope"] == ["conv1"]
    with pytest.raises(QuantbenchError, match="layer bn1 is no node of the OpenVINO model"):
        apply_recipe("ov-int8", cnn, _ctx(cnn, 32, ["bn1"]))  # folded into conv1


@pytest.mark.slow
def test_ignored_scope_keeps_a_transformer_layer_float(bert):
    query = "model.encoder.layer.0.attention.self.query"
    art = apply_recipe("ov-int4-weight-only", bert, _ctx(bert, 16, [query]))
    assert art.float_modules == {"MatMul": 1}
    art = apply_recipe("ov-int8", bert, _ctx(bert, 16, ["model.embeddings"]))
    assert art.float_modules == {"Gather": 3} and art.quantized_modules["MatMul (int8)"] == 12


@pytest.mark.slow
def test_quantize_ships_an_ir_that_loads_in_a_fresh_process(tmp_path, cnn):
    model = tiny_cnn_model(tmp_path)
    xml = tmp_path / "tiny-int8.xml"
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run(
        [sys.executable, "-m", "quantbench.cli", "quantize", model, "--recipe", "ov-int8",
         "-o", str(xml), "--calib-batches", "2"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    size = xml.stat().st_size + bin_path(xml).stat().st_size
    assert f"{size} bytes, ov-int8, runtime openvino" in done.stdout
    x = cnn.make_inputs(2, 224, seed=5)
    torch.save(x, tmp_path / "x.pt")
    code = f"""
import json, torch
from quantbench.artifacts import load_artifact
m = load_artifact({str(xml)!r})
a = m(*torch.load({str(tmp_path / "x.pt")!r}))
b = load_artifact({str(xml)!r})(*torch.load({str(tmp_path / "x.pt")!r}))
print(json.dumps({{"repr": repr(m), "shape": list(a.shape), "same": bool(torch.equal(a, b)),
                  "threads": m.threads, "torch_threads": torch.get_num_threads()}}))
"""
    out = json.loads(python(code).strip().splitlines()[-1])
    assert (
        out["shape"] == [2, 10] and out["same"] and "OvModule" in out["repr"]
    )  # CallLike(OvModule, ...): keywords bind
    assert out["threads"] == out["torch_threads"]  # the loading process's own threads
    with pytest.raises(QuantbenchError, match="part of an OpenVINO IR"):
        from quantbench.artifacts import load_artifact

        load_artifact(bin_path(xml))


def test_files_that_are_not_an_ir_are_refused_in_one_line(tmp_path, cnn, arts):
    from quantbench.artifacts import load_artifact

    text = tmp_path / "notes.xml"
    text.write_text("<?xml version='1.0'?><html/>")
    with pytest.raises(QuantbenchError, match="an XML file without a <net> in it"):
        load_artifact(text)
    lone = tmp_path / "lone.xml"
    lone.write_bytes(arts(cnn, "ov-fp32", 32).file.read_bytes())
    with pytest.raises(QuantbenchError, match="lone.bin is missing"):
        load_artifact(lone)
    bin_path(lone).write_bytes(b"\0" * 7)
    with pytest.raises(QuantbenchError, match="does not load in OpenVINO: Incorrect weights"):
        load_artifact(lone)
