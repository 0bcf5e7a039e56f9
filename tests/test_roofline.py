"""The roofline's arithmetic on a model whose FLOPs and bytes are counted by hand."""

from __future__ import annotations

import warnings

import pytest
import torch

from quantbench.measure.ceilings import Ceilings
from quantbench.measure.roofline import (
    Work,
    compute_ceiling,
    compute_precision,
    count_work,
    roofline,
)

B, IN, H, OUT = 4, 16, 32, 8  # batch, in, hidden, out
FLOPS = 2 * B * IN * H + 2 * B * H * OUT  # two Linear layers: 4096 + 2048
# leaf inputs and outputs, float32: Linear1 in/out, ReLU in/out, Linear2 in/out
ACTS = 4 * (B * IN + B * H + B * H + B * H + B * H + B * OUT)
WEIGHTS = 4 * (IN * H + H + H * OUT + OUT)


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    lin = torch.nn.Linear
    return torch.nn.Sequential(lin(IN, H), torch.nn.ReLU(), lin(H, OUT)).eval()


def _ceilings(fp32: float = 100e9, int8: float = 400e9, bw: float = 10e9) -> Ceilings:
    return Ceilings(threads=1, peaks={"fp32": {"rate": fp32}, "int8": {"rate": int8}},
                    bandwidth_={"copy": bw * 0.8, "triad": bw})  # fmt: skip


def test_flops_and_bytes_are_counted_by_hand():
    m = _mlp()
    w = count_work(m, (torch.randn(B, IN),), weight_bytes=WEIGHTS)
    assert w.flops == FLOPS == 6144
    assert w.activation_bytes == ACTS == 2432
    assert w.bytes == WEIGHTS + ACTS == 3232 + 2432
    assert w.intensity == pytest.approx(6144 / 5664)
    assert (w.batch_size, w.input_size, w.low_flops, w.precision) == (B, IN, 0.0, "fp32")


def test_quantized_layers_count_as_int8_ops():
    m = _mlp()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.ao.quantization.quantize_dynamic(m, {torch.nn.Linear}, dtype=torch.qint8)
    x = (torch.randn(B, IN),)
    w = count_work(m, x, variant=q, precision="int8")
    assert w.flops == FLOPS and w.low_flops == FLOPS  # both Linear layers are int8
    assert w.activation_bytes == ACTS and w.activations_from == "variant"
    # a variant with no torch modules (an ONNX session): the recipe's layer kinds, the
    # layers it left in float aside, and the fp32 model's activations
    w = count_work(m, x, variant=lambda t: t, precision="int8", quantizes=("MatMul",),
                   float_layers=["2"])  # fmt: skip
    assert w.low_flops == 2 * B * IN * H and w.activations_from == "fp32 model"
    half = count_work(m, x, precision="bf16")  # a cast: every layer
    assert half.low_flops == half.flops == FLOPS


def test_attainable_is_the_lower_roof():
    c = _ceilings()
    # intensity 1 op/B: bandwidth x intensity = 10 G < 100 G: memory-bound
    w = Work(1, 1, flops=1e9, weight_bytes=int(1e9))
    p = roofline(w, 0.2, c)
    assert p.achieved == pytest.approx(5e9) and p.memory_ceiling == pytest.approx(10e9)
    assert p.attainable == pytest.approx(10e9) and p.bound == "memory"
    assert p.share == pytest.approx(0.5)
    # intensity 100 op/B: 1000 G of bandwidth x intensity > 100 G: compute-bound
    w = Work(1, 1, flops=1e9, weight_bytes=int(1e7))
    p = roofline(w, 0.02, c)
    assert p.bound == "compute" and p.attainable == pytest.approx(100e9)
    assert p.share == pytest.approx(0.5)


def test_a_mixed_variant_gets_the_time_weighted_ceiling():
    c = _ceilings()
    # 3/4 of the work at int8 (400 G), 1/4 at fp32 (100 G): 1 / (0.75/400 + 0.25/100) G
    w = Work(1, 1, flops=4e9, low_flops=3e9, precision="int8", weight_bytes=1)
    assert compute_ceiling(w, c) == pytest.approx(1e9 / (0.75 / 400 + 0.25 / 100))
    w.low_flops = 4e9
    assert compute_ceiling(w, c) == pytest.approx(400e9)
    w.precision = "bf16"  # no bf16 peak measured: no ceiling to compare with
    assert compute_ceiling(w, c) is None and roofline(w, 1.0, c) is None


@pytest.mark.parametrize("text, want", [
    ("fp32", "fp32"),
    ("int8 weights (Linear), dynamic activations", "int8"),
    ("int8 weights and activations (Conv, Linear)", "int8"),
    ("int8 weights and activations (QDQ)", "int8"),
    ("int4 weights (Linear, groups of 32, stored as int8 bytes), int8 activations per token",
     "int8"),
    ("int4 weights (MatMul blocks of 32, word embeddings blocks of 128), fp32 activations",
     "fp32"),
    ("int8 weights (Linear), fp32 activations", "fp32"),
    ("bf16 weights and activations", "bf16"),
    ("fp16 weights and activations", "fp16"),
])  # fmt: skip
def test_compute_precision_of_every_recipe_kind(text, want):
    assert compute_precision(text) == want


def test_every_registered_recipe_has_a_compute_precision():
    from quantbench.recipes import list_recipes

    for r in list_recipes():
        assert compute_precision(r.precision) in ("fp32", "int8", "bf16", "fp16"), r.name


def test_the_cpu_attention_kernel_is_counted():
    """torch's FlopCounterMode counts nothing for scaled_dot_product_attention on CPU."""
    from quantbench.measure.roofline import flop_counter

    q = torch.randn(1, 4, 16, 8)  # batch, heads, tokens, head dim
    with flop_counter() as counter:
        torch.nn.functional.scaled_dot_product_attention(q, q, q)
    assert counter.get_total_flops() == 2 * (2 * 4 * 16 * 16 * 8)  # Q@K^T and P@V
