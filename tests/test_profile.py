"""Where the time goes: operator time by kind from torch's and ONNX Runtime's profilers,
whose operators account for the measured time within PROFILE_TOLERANCE."""

from __future__ import annotations

import time

import pytest
import torch

from quantbench.measure import profile as prof
from quantbench.measure.profile import PROFILE_TOLERANCE, breakdown, classify, profiler_for


@pytest.mark.parametrize("op, kind", [
    ("aten::linear", "matmul"), ("aten::addmm", "matmul"), ("aten::mm", "matmul"),
    ("aten::bmm", "matmul"), ("aten::mkldnn_convolution", "matmul"),
    ("quantized::linear_dynamic", "matmul"), ("quantized::conv2d_relu", "matmul"),
    ("MatMulInteger", "matmul"), ("QLinearConv", "matmul"), ("ConvInteger", "matmul"),
    ("DynamicQuantizeMatMul", "matmul"), ("MatMulNBits", "matmul"), ("FusedConv", "matmul"),
    ("aten::quantize_per_tensor", "qdq"), ("aten::dequantize", "qdq"),
    ("quantized_decomposed::dequantize_per_channel", "qdq"), ("QuantizeLinear", "qdq"),
    ("DequantizeLinear", "qdq"), ("DynamicQuantizeLinear", "qdq"),
    ("aten::copy_", "reorder"), ("aten::contiguous", "reorder"), ("Transpose", "reorder"),
    ("ReorderInput", "reorder"), ("Cast", "reorder"), ("aten::to_mkldnn", "reorder"),
    ("aten::layer_norm", "norm"), ("aten::native_batch_norm", "norm"),
    ("SkipLayerNormalization", "norm"), ("aten::_softmax", "softmax"), ("Softmax", "softmax"),
    ("aten::scaled_dot_product_attention", "softmax"), ("Attention", "softmax"),
    ("QLinearAdd", "other"), ("aten::add_", "other"), ("aten::gelu", "other"),
    ("MaxPool", "other"), ("aten::embedding", "other"),
    # OpenVINO's node types, XNNPACK's operators under ExecuTorch
    ("FullyConnected", "matmul"), ("FakeQuantize", "qdq"), ("MVN", "norm"),
    ("Reorder", "reorder"), ("Convert", "reorder"), ("Convolution", "matmul"),
    ("Fully Connected (NC, QD8, F32, QC8W)", "matmul"), ("Convert (NC, F32, QD8)", "qdq"),
    ("Convert (NC, F32, F16)", "reorder"), ("Batch Matrix Multiply (NC, F32)", "matmul"),
    ("Softmax (NC, F32)", "softmax"), ("Transpose (ND, X32)", "reorder"),
])  # fmt: skip
def test_operators_are_sorted_into_kinds(op, kind):
    assert classify(op) == kind


def test_each_runtime_has_its_profiler_and_others_can_register():
    from quantbench.measure.profilers import onnxruntime_nodes, torch_ops

    assert profiler_for("torch-eager") == ("torch.profiler", torch_ops.profile)
    assert profiler_for("onnxruntime")[1] is onnxruntime_nodes.profile
    assert profiler_for("torch-compile")[0] == "torch.profiler"
    assert profiler_for("torchao")[0] == "torch.profiler"
    assert profiler_for("onnxruntime")[0] == "onnxruntime profiling"
    assert profiler_for("openvino") is None and profiler_for("executorch") is None
    try:  # a runtime's profiler is one entry: a module defining profile(), or a function
        prof.PROFILERS["executorch"] = prof.ProfilerEntry("etdump", torch_ops.__name__)
        assert profiler_for("executorch") == ("etdump", torch_ops.profile)
        prof.register_profiler("openvino", "openvino profiling", lambda m, x, n: [])
        assert profiler_for("openvino")[0] == "openvino profiling"
        assert breakdown("openvino", None, (torch.zeros(1, 2),)) is None  # profiled nothing
    finally:
        prof.PROFILERS.pop("openvino", None)
        prof.PROFILERS.pop("executorch", None)


def _profiled_and_timed(runtime, module, inputs, rounds: int = 7):
    """The breakdown of ``module``, and the fastest of its operators' sums and of plain
    timed calls taken in turn with the profiled passes (one of each a round): the least
    disturbed of each, when a busy machine interrupts some of them."""
    sums, times = [], []
    for _ in range(rounds):
        b = breakdown(runtime, module, inputs, runs=1)
        sums.append(b.attributed_ms)
        assert 0 < b.attributed_ms <= b.wall_ms * 1.001  # ops within the pass they ran in
        t0 = time.perf_counter()
        module(*inputs)
        times.append((time.perf_counter() - t0) * 1e3)
    return breakdown(runtime, module, inputs), min(sums), min(times)


def _within(profiled_ms: float, measured_ms: float) -> None:
    """The profile accounts for the measured time within PROFILE_TOLERANCE."""
    assert abs(profiled_ms - measured_ms) <= PROFILE_TOLERANCE * measured_ms, (
        profiled_ms,
        measured_ms,
    )


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on a busy 2-core machine wait on each other
    yield
    torch.set_num_threads(before)


def test_torch_profile_sums_to_the_measured_time(one_thread):
    import torchvision

    m = torchvision.models.resnet18().eval()
    x = (torch.randn(1, 3, 64, 64),)
    with torch.inference_mode():
        b, profiled, measured = _profiled_and_timed("torch-eager", m, x)
    assert b.profiler == "torch.profiler" and (b.batch_size, b.input_size) == (1, 64)
    assert set(b.kinds) == set(prof.KINDS)
    assert b.kinds["matmul"] > b.kinds["norm"] > 0 and b.kinds["qdq"] == 0
    assert b.top[0][:2] == ["aten::conv2d", "matmul"]  # its copies and allocations inside
    assert 3 <= b.runs <= prof.PROFILE_RUNS
    _within(profiled, measured)


def test_onnxruntime_profile_sums_to_the_measured_time(one_thread, tmp_path):
    from quantbench.models import load_model
    from quantbench.recipes import QuantContext, apply_recipe

    lm = load_model("tv:squeezenet1_1")
    x = lm.make_inputs(1, 96)
    ctx = QuantContext(engine="x86", calib_inputs=[lm.make_inputs(2, 96)])
    for recipe, expect in (("ort-fp32", "Conv"), ("ort-static-int8", "QLinearConv")):
        art = apply_recipe(recipe, lm, ctx)
        b, profiled, measured = _profiled_and_timed(art.runtime, art.module, x)
        assert b.profiler == "onnxruntime profiling"
        assert expect in [op for op, _, _ in b.top] and b.kinds["matmul"] > 0
        if recipe == "ort-static-int8":
            assert b.kinds["qdq"] > 0  # the graph's QuantizeLinear/DequantizeLinear
        _within(profiled, measured)


def test_torch_static_int8_shows_its_quantize_and_dequantize(one_thread):
    from quantbench.models import load_model
    from quantbench.recipes import QuantContext, apply_recipe

    lm = load_model("tv:squeezenet1_1")
    ctx = QuantContext(engine="x86", calib_inputs=[lm.make_inputs(2, 96)])
    art = apply_recipe("static-int8", lm, ctx)
    with torch.inference_mode():
        b = breakdown(art.runtime, art.module, lm.make_inputs(1, 96))
    assert b.kinds["qdq"] > 0 and b.kinds["matmul"] > 0
    assert any(op.startswith("quantized::conv") for op, _, _ in b.top)
