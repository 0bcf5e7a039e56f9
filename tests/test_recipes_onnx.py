"""ONNX Runtime recipes on tiny models of both families: run, stay close, ship a plain .onnx."""

from __future__ import annotations

import os

import onnxruntime as ort  # noqa: E402  (a declared dependency: never skipped)
import pytest
import torch

from quantbench import models as zoo
from quantbench.errors import UnsupportedError
from quantbench.measure import fidelity
from quantbench.recipes import QuantContext, apply_recipe, get_recipe

RECIPES = [
    "ort-fp32",
    "ort-dynamic-int8",
    "ort-static-int8",
    "ort-static-int8-entropy",
    "ort-static-int8-percentile",
]


def _ctx(m, size):
    return QuantContext("x86", [m.make_inputs(2, size, seed=100 + i) for i in range(3)])


@pytest.fixture(scope="module")
def text(tiny_bert_dir):
    return zoo.load_model(f"hf:{tiny_bert_dir}")


@pytest.fixture(scope="module")
def squeezenet():
    return zoo.load_model("tv:squeezenet1_1")


@pytest.fixture(scope="module")
def resnet():
    return zoo.load_model("tv:resnet18")


@pytest.fixture(scope="module")
def arts():
    """Each (model, recipe) artifact built once and shared by the checks below."""
    cache: dict = {}

    def get(model, recipe, size):
        key = (model.name, recipe)
        if key not in cache:
            cache[key] = apply_recipe(recipe, model, _ctx(model, size))
        return cache[key]

    return get


def _plain_session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _check_artifact(art, recipe):
    assert art.runtime == "onnxruntime" and art.recipe == recipe
    assert os.path.isfile(art.file) and str(art.file).endswith(".onnx")
    assert art.size_bytes == os.path.getsize(art.file)  # no external data at this size
    assert art.compile_s > 0
    d = art.details
    assert d["provider"] == "CPUExecutionProvider" and d["opset"] == 17
    assert d["export_check"]["cosine"] > 0.999
    assert sum(art.param_bytes_by_dtype.values()) > 0
    if recipe == "ort-fp32":
        assert art.quantized_modules == {} and art.int8_param_fraction == 0.0
        assert d["qdq_pairs"] == 0
    else:
        assert art.int8_param_fraction > 0.9
    if recipe.startswith("ort-static"):
        assert d["qdq_pairs"] > 0 and art.quantized_modules["QuantizeLinear"] > 0


@pytest.mark.parametrize("recipe", RECIPES)
def test_ort_recipe_on_text(text, arts, recipe):
    art = arts(text, recipe, 16)
    _check_artifact(art, recipe)
    x = text.make_inputs(2, 16, seed=7)
    with torch.inference_mode():
        f = fidelity.compare(text.module(*x), art.module(*x), is_classifier=False)
    assert f.cosine > (0.99 if recipe in ("ort-fp32", "ort-dynamic-int8") else 0.98)
    if recipe == "ort-fp32":
        assert art.float_modules == {"Gather": 3, "MatMul": 12}  # 2 layers x 6 Linear
    elif recipe == "ort-dynamic-int8":
        # every Linear and the three embedding tables (Gather) in int8
        assert art.quantized_modules["MatMulInteger"] == 12
        assert art.quantized_modules["Gather (int8 table)"] == 3
        assert art.float_modules == {}
        assert art.size_bytes < arts(text, "ort-fp32", 16).size_bytes
    else:
        assert art.quantized_modules["MatMul (QDQ)"] >= 12
        assert art.float_modules == {}
    # the file alone runs in plain onnxruntime at other batch sizes and lengths
    sess = _plain_session(art.file)
    assert [i.name for i in sess.get_inputs()] == ["input_ids", "attention_mask"]
    for b, s in [(1, 5), (3, 24)]:
        ids, mask = text.make_inputs(b, s, seed=3)
        (out,) = sess.run(["output"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
        assert out.shape == (b, s, 32)


@pytest.mark.parametrize("model", ["squeezenet", "resnet"])
@pytest.mark.parametrize("recipe", RECIPES[:3])
def test_ort_recipe_on_vision(request, arts, model, recipe):
    m = request.getfixturevalue(model)
    art = arts(m, recipe, 48)
    _check_artifact(art, recipe)
    x = m.make_inputs(3, 48, seed=7)
    with torch.inference_mode():
        f = fidelity.compare(m.module(*x), art.module(*x), is_classifier=True)
    assert f.cosine > (0.98 if recipe == "ort-static-int8" else 0.99)
    n_conv = {"squeezenet": 26, "resnet": 20}[model]
    if recipe == "ort-fp32":
        assert art.float_modules["Conv"] == n_conv
    elif recipe == "ort-dynamic-int8":
        assert art.quantized_modules["ConvInteger"] == n_conv
        assert any("ConvInteger" in n for n in art.notes)
    else:
        assert art.quantized_modules["Conv (QDQ)"] == n_conv and art.float_modules == {}
    if recipe != "ort-fp32":
        ratio = art.size_bytes / arts(m, "ort-fp32", 48).size_bytes
        assert 0.2 < ratio < 0.3  # int8 weights: about a quarter of fp32
    sess = _plain_session(art.file)
    for b, s in [(1, 32), (2, 64)]:
        (out,) = sess.run(["output"], {"pixel_values": m.make_inputs(b, s)[0].numpy()})
        assert out.shape == (b, 1000)


@pytest.mark.slow  # seconds to tens of seconds: the everyday suite stays under 5 minutes
def test_entropy_and_percentile_calibrate_differently(resnet, arts):
    import onnx
    from onnx import numpy_helper

    def scales(recipe):
        g = onnx.load(str(arts(resnet, recipe, 48).file)).graph
        init = {i.name: i for i in g.initializer}
        return [
            float(numpy_helper.to_array(init[n.input[1]]))
            for n in g.node
            if n.op_type == "QuantizeLinear"
        ]

    minmax = scales("ort-static-int8")
    assert scales("ort-static-int8-entropy") != minmax
    assert scales("ort-static-int8-percentile") != minmax


def test_registry_and_missing_calibration(squeezenet):
    r = get_recipe("ort-static-int8-entropy")
    assert r.runtime == "onnxruntime" and r.config.calibrate_method == "entropy"
    with pytest.raises(UnsupportedError, match="calibration"):
        apply_recipe("ort-static-int8", squeezenet, QuantContext("x86", []))


def test_export_shares_one_graph_and_artifacts_clean_up(squeezenet):
    import gc

    ctx = _ctx(squeezenet, 32)
    a = apply_recipe("ort-fp32", squeezenet, ctx)
    b = apply_recipe("ort-fp32", squeezenet, ctx)
    assert a.file != b.file and a.compile_s == b.compile_s  # one export, two artifacts
    d = os.path.dirname(a.file)
    del a
    gc.collect()
    assert not os.path.exists(d) and os.path.exists(b.file)


def test_missing_onnxruntime_is_unsupported(monkeypatch, squeezenet):
    import builtins

    real = builtins.__import__

    def fake(name, *args, **kw):
        if name.split(".")[0] == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(UnsupportedError, match="pip install onnxruntime"):
        apply_recipe("ort-fp32", squeezenet, _ctx(squeezenet, 32))


class _Unexportable(torch.nn.Module):
    def forward(self, x):
        return torch.linalg.svd(x.flatten(1)[:, :4].unsqueeze(-1))[1].flatten(1)


def test_failed_export_is_an_error_with_the_exporters_message(squeezenet):
    from dataclasses import replace

    m = replace(squeezenet, name="unexportable", module=_Unexportable().eval())
    ctx = _ctx(m, 32)
    with pytest.raises(Exception, match="svd") as first:
        apply_recipe("ort-fp32", m, ctx)
    assert not isinstance(first.value, UnsupportedError)  # recorded as "error", not skipped
    with pytest.raises(RuntimeError, match="ONNX export failed.*svd"):  # not exported twice
        apply_recipe("ort-dynamic-int8", m, ctx)
