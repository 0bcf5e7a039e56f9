"""int4 weight-only recipes: ``ort-int4-weight-only`` (MatMulNBits, GPTQ) and torchao's
intx paths, on a tiny BERT built from a config; GPTQ and the MatMulNBits layout against
onnxruntime itself; bad input through the CLI."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from quantbench import models as zoo
from quantbench.cli import main
from quantbench.errors import QuantbenchError, UnsupportedError
from quantbench.measure import fidelity
from quantbench.recipes import QuantContext, apply_recipe, get_recipe
from quantbench.recipes.onnx.gptq import gptq, pack


def _ctx(m, size=16):
    return QuantContext("x86", [m.make_inputs(2, size, seed=100 + i) for i in range(3)])


@pytest.fixture(scope="module")
def text(tiny_bert_dir):
    return zoo.load_model(f"hf:{tiny_bert_dir}")


@pytest.fixture(scope="module")
def arts(text):
    cache: dict = {}

    def get(recipe, **options):
        key = (recipe, tuple(sorted(options.items())))
        if key not in cache:
            cache[key] = apply_recipe(recipe, text, _ctx(text), options)
        return cache[key]

    return get


def _close(text, art, bar=0.99):
    x = text.make_inputs(2, 16, seed=7)
    with torch.inference_mode():
        f = fidelity.compare(text.module(*x), art.module(*x), is_classifier=False)
    assert f.cosine > bar


# --------------------------------------------------------------------------- GPTQ, layout


def _correlated(k, n, rows=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(k, n, generator=g)
    x = torch.randn(rows, k, generator=g) @ torch.randn(k, k, generator=g) * 0.3
    return w, x


def _dequant(q, scales, zeros, block):
    s = scales.repeat_interleave(block, dim=1)[:, : q.shape[1]]
    z = zeros.double().repeat_interleave(block, dim=1)[:, : q.shape[1]]
    return (s.double() * (q.double() - z)).T  # (K, N), like the weight


def test_gptq_lowers_the_output_error_of_round_to_nearest():
    w, x = _correlated(128, 48)
    h = 2 * x.double().T @ x.double() / x.shape[0]
    errs = {}
    for name, hess in (("rtn", None), ("gptq", h)):
        q, s, z = gptq(w.numpy(), hess, 32)
        assert q.max() <= 15 and s.shape == (48, 4)
        errs[name] = float(torch.linalg.norm(x.double() @ (_dequant(q, s, z, 32) - w.double())))
    # round-to-nearest is what onnxruntime's own quantizer computes
    ref = w.clone().reshape(4, 32, 48)
    lo, hi = ref.amin(1, keepdim=True).clamp(max=0), ref.amax(1, keepdim=True).clamp(min=0)
    scale = (hi - lo) / 15
    zp = (-lo / scale).round()
    rtn = ((ref / scale).round() + zp).clamp(0, 15).sub(zp).mul(scale).reshape(128, 48)
    assert errs["rtn"] == pytest.approx(float(torch.linalg.norm(x @ (rtn - w))), rel=1e-4)
    assert errs["gptq"] < 0.8 * errs["rtn"]  # 0.71x here; the paper's point


@pytest.mark.parametrize("symmetric", [False, True])
def test_packed_tensors_run_in_matmulnbits(symmetric):
    """The layout onnxruntime's kernel reads: an odd number of blocks, a partial last one."""
    k, n, block = 40, 8, 16
    w, _ = _correlated(k, n, seed=1)
    q, s, z = gptq(w.numpy(), None, block, symmetric)
    t = pack(q.numpy(), s.numpy(), z.numpy(), block, symmetric)
    assert t.packed.shape == (n, 3, block // 2) and t.scales.shape == (n, 3)
    inits = [
        onnx.numpy_helper.from_array(t.packed, "B"),
        onnx.numpy_helper.from_array(t.scales, "s"),
    ]
    names = ["x", "B", "s"]
    if not symmetric:
        assert t.zero_points.shape == (n, 2)
        inits.append(onnx.numpy_helper.from_array(t.zero_points, "z"))
        names.append("z")
    node = onnx.helper.make_node("MatMulNBits", names, ["y"], domain="com.microsoft",
                                 K=k, N=n, bits=4, block_size=block)  # fmt: skip
    graph = onnx.helper.make_graph(
        [node], "g", [onnx.helper.make_tensor_value_info("x", 1, [3, k])],
        [onnx.helper.make_tensor_value_info("y", 1, [3, n])], inits,
    )  # fmt: skip
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", 17),
                              onnx.helper.make_opsetid("com.microsoft", 1)],
    )  # fmt: skip
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(3, k)).astype(np.float32)
    zeros = z if not symmetric else torch.full_like(s, 8).to(torch.uint8)
    want = x @ _dequant(q, s, zeros, block).numpy()
    np.testing.assert_allclose(sess.run(["y"], {"x": x})[0], want, rtol=1e-4, atol=1e-4)


def test_a_shared_weight_is_quantized_once_for_both_inputs(tmp_path):
    from quantbench.recipes.onnx.int4 import OrtInt4Config, _gptq_pass

    w, _ = _correlated(64, 16, seed=2)
    h = onnx.helper
    graph = h.make_graph(
        [h.make_node("MatMul", ["a", "W"], ["ya"], name="mm_a"),
         h.make_node("MatMul", ["b", "W"], ["yb"], name="mm_b")],
        "g", [h.make_tensor_value_info(n, 1, [None, 64]) for n in "ab"],
        [h.make_tensor_value_info(n, 1, [None, 16]) for n in ("ya", "yb")],
        [onnx.numpy_helper.from_array(w.numpy(), "W")],
    )  # fmt: skip
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    src = tmp_path / "shared.onnx"
    onnx.save(model, str(src))
    g = torch.Generator().manual_seed(3)
    batches = [(torch.randn(8, 64, generator=g), torch.randn(8, 64, generator=g) * 3)]
    _gptq_pass(model.graph, src, OrtInt4Config(), QuantContext("x86", batches))
    model.opset_import.append(h.make_opsetid("com.microsoft", 1))
    assert [n.op_type for n in model.graph.node] == ["MatMulNBits"] * 2
    assert sorted(i.name for i in model.graph.initializer) == ["W_Q4", "W_scales", "W_zero_points"]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    a, b = (x.numpy() for x in batches[0])
    ya, yb = sess.run(["ya", "yb"], {"a": a, "b": b})
    for x, y in ((a, ya), (b, yb)):
        ref = x @ w.numpy()
        cos = (ref * y).sum() / np.linalg.norm(ref) / np.linalg.norm(y)
        assert cos > 0.99


# --------------------------------------------------------------------------- ort-int4


def _payload(graph: onnx.GraphProto, block: int, emb_block: int, scale_bytes: int) -> int:
    """Bytes that 4-bit weights take by bit math: half a byte per weight, a scale per
    block, a 4-bit zero point per block; from the fp32 graph's shapes."""
    inits = {i.name: i for i in graph.initializer}
    total = 0
    for n in graph.node:
        if n.op_type == "MatMul" and n.input[1] in inits:
            k, cols = inits[n.input[1]].dims
            blocks = -(-k // block)
            total += cols * (blocks * block // 2 + blocks * scale_bytes + -(-blocks // 2))
        if n.op_type == "Gather" and n.input[1] == "input_ids":
            rows, dim = inits[n.input[0]].dims
            blocks = -(-dim // emb_block)
            total += (rows * dim + 1) // 2 + rows * blocks * scale_bytes + (rows * blocks + 1) // 2
    return total


def test_ort_int4_default_is_gptq_word_embeddings_fp16_scales(text, arts):
    fp32 = arts("ort-fp32")
    art = arts("ort-int4-weight-only")
    assert art.quantized_modules == {"GatherBlockQuantized": 1, "MatMulNBits": 12}
    assert art.float_modules == {"Gather": 2}  # position and token-type tables stay float
    d = art.details
    assert (d["algorithm"], d["block_size"], d["embeddings_block_size"]) == ("gptq", 32, 128)
    assert d["scales"] == "float16" and d["fp16_scale_tensors"] == 13
    assert d["embeddings"] == ["/model/embeddings/word_embeddings/Gather"]
    assert any("GPTQ" in n for n in art.notes)
    _close(text, art)
    # the file is the graph's structure plus exactly the bit-math bytes of the weights
    g32 = onnx.load(str(fp32.file)).graph
    payload = _payload(g32, 32, 128, scale_bytes=2)
    m = onnx.load(str(art.file))
    q_bytes = sum(art.param_bytes_by_dtype[t] for t in ("uint8", "uint4", "float16"))
    assert q_bytes == payload
    for t in m.graph.initializer:
        t.ClearField("raw_data")
    structure = len(m.SerializeToString())
    floats = art.param_bytes_by_dtype["float32"] + art.param_bytes_by_dtype.get("int64", 0)
    assert art.size_bytes <= structure + payload + floats + 8 * len(m.graph.initializer)
    assert art.size_bytes < fp32.size_bytes
    # it runs in plain onnxruntime at other shapes
    sess = ort.InferenceSession(str(art.file), providers=["CPUExecutionProvider"])
    ids, mask = text.make_inputs(3, 24, seed=3)
    (out,) = sess.run(["output"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    assert out.shape == (3, 24, 32)


@pytest.mark.parametrize(
    "options, quantized",
    [
        ({"algorithm": "rtn"}, {"GatherBlockQuantized": 1, "MatMulNBits": 12}),
        ({"algorithm": "hqq"}, {"GatherBlockQuantized": 1, "MatMulNBits": 12}),
        ({"embeddings": "all", "symmetric": True}, {"GatherBlockQuantized": 3, "MatMulNBits": 12}),
        ({"embeddings": "none", "block_size": 16}, {"MatMulNBits": 12}),
    ],
)
def test_ort_int4_options(text, arts, options, quantized):
    art = arts("ort-int4-weight-only", **options)
    assert art.quantized_modules == quantized
    # as the nodes carry it: onnxruntime's HQQ writes none (float compute)
    assert art.details["accuracy_level"] == (0 if options.get("algorithm") == "hqq" else 4)
    assert all(art.details[k] == v for k, v in options.items() if k != "embeddings")
    _close(text, art, 0.98)


def test_fp16_scales_save_two_bytes_per_scale(arts):
    half, full = arts("ort-int4-weight-only"), arts("ort-int4-weight-only", scales="float32")
    assert "float16" not in full.param_bytes_by_dtype and full.details["fp16_scale_tensors"] == 0
    saved = full.param_bytes_by_dtype["float32"] - half.param_bytes_by_dtype["float32"]
    assert saved == 2 * half.param_bytes_by_dtype["float16"]


def test_ort_int4_bad_settings_and_no_calibration(text, squeezenet):
    for options, message in [
        ({"block_size": 48}, "block_size must be one of 16, 32, 64, 128, 256, got 48"),
        ({"embeddings_block_size": 8}, "embeddings_block_size must be one of"),
        ({"algorithm": "awq"}, "algorithm must be one of gptq, rtn, hqq"),
        ({"embeddings": True}, "setting 'embeddings' must be str"),
        ({"algorithm": "hqq", "symmetric": True}, "hqq is asymmetric only"),
    ]:
        with pytest.raises(QuantbenchError, match=message):
            get_recipe("ort-int4-weight-only", options)
    with pytest.raises(UnsupportedError, match="needs calibration batches"):
        apply_recipe("ort-int4-weight-only", text, QuantContext("x86", []))
    with pytest.raises(UnsupportedError, match="no MatMul or Gather weights"):
        apply_recipe("ort-int4-weight-only", squeezenet, QuantContext("x86", []))


@pytest.fixture(scope="module")
def squeezenet():
    return zoo.load_model("tv:squeezenet1_1")


# --------------------------------------------------------------------------- torchao


@pytest.mark.parametrize("recipe", ["torchao-intx-weight-only", "torchao-int8-dynamic-intx"])
def test_torchao_intx_runs_and_says_its_bytes(text, arts, recipe):
    art = arts(recipe, compile=False)
    kind = "int4 weight-only" if "weight-only" in recipe else "int4 weight, int8 dynamic"
    assert any(k.startswith(f"Linear ({kind}") for k in art.quantized_modules)
    assert art.quantized_modules["Embedding (input ids, weight-only)"] == 1
    _close(text, art)
    # one int8 byte per int4 weight and per group's zero point: what torchao stores here
    linear = sum(m.weight.numel() for m in text.module.modules() if isinstance(m, torch.nn.Linear))
    table = text.module.model.embeddings.word_embeddings.weight.numel()
    assert art.param_bytes_by_dtype["int8"] == (linear + table) * (1 + 1 / 32)
    assert any("not 4" in n for n in art.notes)


@pytest.mark.slow
def test_torchao_intx_compiled(text, arts):
    art = arts("torchao-intx-weight-only")
    assert art.details["compiled"] and art.compile_s > 0
    _close(text, art)


def test_torchao_packed_int4_without_a_kernel_says_why(text):
    with pytest.raises(UnsupportedError, match="only the unpacked_to_int8 layout"):
        apply_recipe(
            "torchao-intx-weight-only", text, _ctx(text), {"packing": "opaque_torchao_auto"}
        )
    from torchao.quantization.quantize_.workflows.intx.intx_opaque_tensor import (
        _is_kernel_library_loaded,
    )

    if not _is_kernel_library_loaded():
        with pytest.raises(UnsupportedError, match="torchao's C.. CPU kernels"):
            apply_recipe("torchao-int8-dynamic-intx", text, _ctx(text),
                         {"packing": "opaque_torchao_auto"})  # fmt: skip
    kleidiai = getattr(torch.backends, "kleidiai", None)
    if kleidiai is None or not kleidiai.is_available():
        with pytest.raises(UnsupportedError, match="needs KleidiAI"):
            apply_recipe("torchao-int8-dynamic-intx", text, _ctx(text),
                         {"packing": "opaque_aten_kleidiai"})  # fmt: skip
    with pytest.raises(QuantbenchError, match="group_size must be one of"):
        get_recipe("torchao-intx-weight-only", {"group_size": 20})


# --------------------------------------------------------------------------- CLI


def test_cli_int4_bad_input_is_one_line(tmp_path, capsys):
    out = tmp_path / "sq.onnx"
    assert main(["quantize", "squeezenet", "--recipe", "ort-int4-weight-only", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not apply to squeezenet" in err
    assert "no MatMul or Gather weights" in err and not out.exists()
    argv = ["run", "--models", "bert", "--recipes", "ort-int4-weight-only", "--recipe-options",
            "{ort-int4-weight-only: {block_size: 48}}", "--out", str(tmp_path / "r")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "block_size must be one of 16, 32, 64, 128, 256" in err
