"""ONNX Runtime recipes leave chosen torch layers in float (``nodes_to_exclude``): the
layer -> node mapping, the quantized graphs, the ranking and the ``+fallback`` search."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest
import torch

from conftest import fast_overrides
from quantbench import models as zoo
from quantbench.errors import QuantbenchError
from quantbench.recipes import QuantContext, apply_recipe
from quantbench.recipes.onnx.graph import node_modules
from quantbench.sensitivity import fidelity_score, layer_sensitivity, quantizable_layers

ROOT = Path(__file__).parent.parent
DIGITS_CNN = f"py:{ROOT / 'examples' / 'digits_cnn.py'}:DigitsCNN"

# One planted weakness: every output of fc2 has a 1000x weight on an input that is always
# 0 (fc1's first unit is dead). In float it adds nothing; per-channel int8 spends each
# row's whole range on it and rounds every other weight of fc2 to 0, so the quantized
# model outputs zeros. Keeping fc2 alone in float restores it.
PLANTED = """
import torch
from torch import nn


class Planted(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.fc1 = nn.Linear(16, 32)
        self.fc2 = nn.Linear(32, 32)
        self.fc3 = nn.Linear(32, num_classes)
        with torch.no_grad():
            self.fc1.weight[0] = 0
            self.fc1.bias[0] = 0
            self.fc2.weight[:, 0] = 1000.0
            self.fc2.bias.zero_()
            self.fc3.bias.zero_()

    def forward(self, x):
        x = torch.relu(self.conv(x)).mean(dim=(2, 3))
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))
"""


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("planted") / "planted.py"
    path.write_text(PLANTED)
    return f"py:{path}:Planted"


@pytest.fixture(scope="module")
def bert(tiny_bert_dir):
    return zoo.load_model(f"hf:{tiny_bert_dir}")


@pytest.fixture(scope="module")
def cnn():
    return zoo.load_model(DIGITS_CNN, "random")


def _ctx(m, **kw) -> QuantContext:
    size = 16
    return QuantContext("x86", [m.make_inputs(2, size, seed=100 + i) for i in range(2)], **kw)


def _ops(path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def _cosine(module, ref, inputs) -> float:
    with torch.inference_mode():
        return float(torch.nn.functional.cosine_similarity(module(*inputs), ref).mean())


def test_node_names_resolve_to_the_modules_that_made_them() -> None:
    # The TorchScript exporter's scopes: one per module *called*, named from its last
    # non-numeric atom (a ModuleList is never called; a Sequential's children carry its name).
    m = torch.nn.Module()
    m.features = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1)))
    m.layer = torch.nn.ModuleList([torch.nn.Module()])
    m.layer[0].query = torch.nn.Linear(1, 1)
    m.a, m.b = torch.nn.Module(), torch.nn.Module()
    m.a.q, m.b.q = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    names = [
        "/features/features.0/features.0.0/Conv",
        "/layer.0/query/MatMul",
        "/layer.0/query/Add_1",
        "/Relu",  # outside any module
        "/nothing/MatMul",  # no such module
        "/q/MatMul",  # a.q or b.q: ambiguous, so no guess
        "MatMul_12",  # not a scoped name
    ]
    assert node_modules(names, m) == {
        "/features/features.0/features.0.0/Conv": "features.0.0",
        "/layer.0/query/MatMul": "layer.0.query",
        "/layer.0/query/Add_1": "layer.0.query",
    }


# (model, recipe, layer, the node scope it became, the op left float)
CASES = [
    ("bert", "ort-dynamic-int8", "model.encoder.layer.0.attention.output.dense",
     "/model/encoder/layer.0/attention/output/dense/", "MatMul"),
    ("bert", "ort-static-int8", "model.encoder.layer.1.intermediate.dense",
     "/model/encoder/layer.1/intermediate/dense/", "MatMul"),
    ("bert", "ort-int4-weight-only", "model.encoder.layer.0.output.dense",
     "/model/encoder/layer.0/output/dense/", "MatMul"),
    ("bert", "ort-dynamic-int8", "model.embeddings.word_embeddings",
     "/model/embeddings/word_embeddings/", "Gather"),
    ("bert", "ort-int4-weight-only", "model.embeddings.word_embeddings",
     "/model/embeddings/word_embeddings/", "Gather"),
    ("cnn", "ort-dynamic-int8", "features.1.0", "/features/features.1/features.1.0/", "Conv"),
    ("cnn", "ort-static-int8", "features.2.0", "/features/features.2/features.2.0/", "Conv"),
    ("cnn", "ort-static-int8", "fc", "/fc/", "Gemm"),
]  # fmt: skip
# Weight ops that run low-precision, as graph_facts counts them ("MatMul (QDQ)", ...).
_LOW = ("MatMulInteger", "ConvInteger", "MatMulNBits", "GatherBlockQuantized")


def _low_precision_ops(art) -> int:
    return sum(v for k, v in art.quantized_modules.items() if k in _LOW or "(" in k)


@pytest.mark.parametrize(("model", "recipe", "layer", "scope", "op"), CASES)
def test_a_layer_left_float_is_exactly_its_nodes(request, model, recipe, layer, scope, op):
    m = request.getfixturevalue(model)
    full = apply_recipe(recipe, m, _ctx(m))
    kept = apply_recipe(recipe, m, _ctx(m, float_layers=frozenset([layer])))
    assert kept.details["float_layers"] == [layer]
    nodes = kept.details["float_nodes"]
    assert nodes and all(n.startswith(scope) for n in nodes), nodes
    # exactly one weight op fewer runs low-precision, and it is the one float op
    # (int4 leaves the position/type tables float by default: only the difference counts)
    extra = {k: v - full.float_modules.get(k, 0) for k, v in kept.float_modules.items()}
    assert {k: v for k, v in extra.items() if v} == {op: 1}
    assert _low_precision_ops(kept) == _low_precision_ops(full) - 1
    # ... and it is the layer's own node, reading a float weight
    g = onnx.load(str(kept.file)).graph
    floats = [n for n in g.node if n.op_type == op and n.name in nodes]
    assert len(floats) == 1
    inits = {i.name: i for i in g.initializer}
    w = floats[0].input[0 if op == "Gather" else 1]
    assert inits[w].data_type == onnx.TensorProto.FLOAT

    # the rest of the model is quantized as before: the float layer costs its weights only
    # (counted in initializer bytes: int4's opset-21 conversion, done only when a table is
    # quantized, also drops the graph's shape annotations, a few KiB on this tiny model)
    def weight_bytes(art) -> int:
        return sum(len(i.raw_data) for i in onnx.load(str(art.file)).graph.initializer)

    assert (
        0
        < weight_bytes(kept) - weight_bytes(full)
        < 4 * sum(p.numel() for p in dict(m.module.named_modules())[layer].parameters())
    )


def test_an_unknown_or_unused_layer_is_an_error(bert) -> None:
    for recipe in ("ort-dynamic-int8", "ort-static-int8"):
        with pytest.raises(QuantbenchError, match="nope map to no node"):
            apply_recipe(recipe, bert, _ctx(bert, float_layers=frozenset(["nope"])))
    # BertModel's pooler is a module, but the exported output (last hidden state) never
    # runs it: leaving it "float" would change nothing, so it is refused too
    with pytest.raises(QuantbenchError, match="model.pooler.dense map to no node"):
        apply_recipe("ort-dynamic-int8", bert, _ctx(bert, float_layers=frozenset(
            ["model.pooler.dense", "model.encoder.layer.0.output.dense"])))  # fmt: skip


def test_ort_recipes_rank_layers_as_torch_does(planted) -> None:
    m = zoo.load_model(planted, "random")
    ctx = QuantContext("x86", [m.make_inputs(4, 32, seed=i) for i in range(3)])
    score = fidelity_score(m.module, [m.make_inputs(8, 32, seed=7)])
    assert quantizable_layers(m, "ort-int4-weight-only") == ["fc1", "fc2", "fc3"]
    for recipe in ("dynamic-int8", "ort-dynamic-int8", "ort-static-int8"):
        s = layer_sensitivity(m, recipe, ctx, score, "cosine")
        assert s.quantized_score < 0.5, recipe  # the planted weight ruins every int8 path
        assert s.layers[0].layer == "fc2" and s.layers[0].score > 0.999, (recipe, s.layers)


def test_a_float_layer_stays_float_in_a_plain_session(planted) -> None:
    # onnxruntime's WeightBiasQuantization would give an excluded Gemm that reads a
    # dequantized activation int8 weights at load; the shield keeps it float everywhere.
    m = zoo.load_model(planted, "random")
    x = m.make_inputs(4, 32, seed=7)
    with torch.inference_mode():
        ref = m.module(*x)
    art = apply_recipe("ort-static-int8", m, _ctx(m, float_layers=frozenset(["fc2"])))
    assert any("WeightBiasQuantization" in n for n in art.notes)
    assert _ops(art.file)["Sum"] == 1
    plain = ort.InferenceSession(str(art.file), providers=["CPUExecutionProvider"])
    out = torch.from_numpy(plain.run(None, {"pixel_values": x[0].numpy()})[0])
    assert torch.nn.functional.cosine_similarity(out, ref).mean() > 0.999
    # without the shield the same file loses the float layer: the check can fail
    g = onnx.load(str(art.file))
    sums = {n.output[0]: n.input[0] for n in g.graph.node if n.op_type == "Sum"}
    for n in g.graph.node:
        n.input[:] = [sums.get(i, i) for i in n.input]
    kept = [n for n in g.graph.node if n.op_type != "Sum"]
    g.graph.ClearField("node")
    g.graph.node.extend(kept)
    bare = ort.InferenceSession(g.SerializeToString(), providers=["CPUExecutionProvider"])
    out = torch.from_numpy(bare.run(None, {"pixel_values": x[0].numpy()})[0])
    assert torch.nn.functional.cosine_similarity(out, ref).mean() < 0.5


def test_sensitivity_command_ranks_an_ort_recipe(planted, tmp_path, capsys) -> None:
    from quantbench.cli import main

    out = tmp_path / "s"
    assert main(["sensitivity", planted, "--recipe", "ort-dynamic-int8", "--weights", "random",
                 "--out", str(out)]) == 0  # fmt: skip
    result = json.loads((out / "sensitivity.json").read_text())
    assert result["recipe"] == "ort-dynamic-int8"
    assert [e["layer"] for e in result["layers"]][0] == "fc2"
    assert result["quantized_score"] < 0.5 < result["layers"][0]["score"]


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["ort-dynamic-int8", "ort-static-int8"])
def test_ort_fallback_keeps_the_planted_layer_float(planted, tmp_path, recipe) -> None:
    from quantbench.runner import run
    from quantbench.runner.checks import build_spec

    spec = build_spec(overrides={
        "models": [planted], "weights": "random", "recipes": [recipe],
        "out": str(tmp_path / "fb"), "fallback": True, "min_cosine": 0.999,
        "fallback_max_layers": 3, "measure": ["size", "fidelity"],
        **fast_overrides(fidelity_batch_size=8),
    })  # fmt: skip
    result = run(spec, progress=False)
    cells = {c.recipe: c for c in result.results}
    base, fb = cells[recipe], cells[f"{recipe}+fallback"]
    assert base.status == "ok" and base.details["meets_bar"] is False
    assert base.fidelity.cosine < 0.5
    assert fb.status == "ok", fb.error
    assert fb.details["float_layers"] == ["fc2"]  # ranked first, and enough
    assert fb.details["fallback_steps"][0][0] == "fc2"
    assert "/fc2/Gemm" in fb.details["float_nodes"]
    assert fb.details["meets_bar"] is True and fb.fidelity.cosine >= 0.999
    assert fb.size_bytes > base.size_bytes  # fc2's weights are float again
    assert sum(fb.float_modules.values()) == 1
    assert any("accuracy-aware fallback" in n for n in fb.notes)
