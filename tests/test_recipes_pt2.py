"""PyTorch 2 recipes (torchao, PT2E, bf16/fp16, compile_artifact) on tiny models.

torch.compile is slow on small machines, so every artifact is built once per module
(``arts``) and shared by the tests that look at it. Recipes this machine cannot run are
not skipped: their tests assert the UnsupportedError and its reason instead.
"""

from __future__ import annotations

import pytest
import torch

from quantbench import models as zoo
from quantbench.errors import UnsupportedError
from quantbench.measure import fidelity, size
from quantbench.recipes import Artifact, QuantContext, apply_recipe, get_recipe
from quantbench.recipes.compile import compile_artifact
from quantbench.recipes.half import _native_half

CALIB_SIZE = {"text": 16, "vision": 64}
# (batch, size) points after compilation. Text graphs are symbolic in batch and length
# from the start: no point compiles again. Vision graphs are static at the calibration
# size (batch 2 and 1); one symbolic graph serves other sizes at batch >= 2.
POINTS = {"text": [(3, 24), (1, 16)], "vision": [(2, 64), (1, 64), (3, 96), (4, 80)]}
MAX_NEW_GRAPHS = {"text": 0, "vision": 1}


@pytest.fixture(scope="module")
def text(tiny_bert_dir):
    return zoo.load_model(f"hf:{tiny_bert_dir}")


@pytest.fixture(scope="module")
def vision():
    return zoo.load_model("tv:resnet18")


def _ctx(m):
    s = CALIB_SIZE[m.family]
    return QuantContext("x86", [m.make_inputs(2, s, seed=100 + i) for i in range(3)])


@pytest.fixture(scope="module")
def arts(text, vision):
    """apply_recipe, memoised: (family, recipe) -> Artifact or the UnsupportedError."""
    cache: dict = {}

    def get(family: str, recipe: str):
        if (family, recipe) not in cache:
            m = text if family == "text" else vision
            try:
                cache[family, recipe] = apply_recipe(recipe, m, _ctx(m))
            except UnsupportedError as e:
                cache[family, recipe] = e
        return cache[family, recipe]

    return get


def _graphs() -> int:
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


def _check_runs(m, art, min_cosine):
    """Close to fp32 at new shapes (batch, size, batch 1), compiling at most once more."""
    before = _graphs()
    with torch.inference_mode():
        for b, s in POINTS[m.family]:
            x = m.make_inputs(b, s, seed=7)
            ref, out = m.module(*x), art.module(*x)
            assert out.shape == ref.shape and out.dtype == torch.float32
            f = fidelity.compare(ref, out, is_classifier=m.family == "vision")
            assert f.cosine > min_cosine, (art.recipe, b, s, f.cosine)
    new = _graphs() - before
    assert new <= MAX_NEW_GRAPHS[m.family], f"{new} graphs compiled: dynamic shapes not in use"


def test_registry_runtimes():
    expected = {
        "torchao-int8-dynamic": "torchao",
        "torchao-int8-weight-only": "torchao",
        "torchao-int4-weight-only": "torchao",
        "pt2e-static-int8": "torch-compile",
        "bf16": "torch-eager",
        "fp16": "torch-eager",
    }
    assert {n: get_recipe(n).runtime for n in expected} == expected


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["torchao-int8-dynamic", "torchao-int8-weight-only"])
def test_torchao_int8_on_text(text, arts, recipe):
    art = arts("text", recipe)
    assert isinstance(art, Artifact), art
    assert art.runtime == "torchao"
    assert art.details["compiled"] is True and art.compile_s > 0
    assert art.details["graphs_compiled"] >= 1
    kind = "int8 dynamic" if recipe.endswith("dynamic") else "int8 weight-only"
    assert art.quantized_modules == {f"Linear ({kind})": 13}  # 2 layers x 6 + pooler
    assert "Linear" not in art.float_modules and art.float_modules["Embedding"] == 3
    _check_runs(text, art, 0.99)
    fp32 = size.state_dict_bytes(text.module)
    assert art.size_bytes < fp32
    assert art.param_bytes_by_dtype["int8"] > 0
    # the wrapper's state_dict is the quantized model's, as the runner would size it
    assert size.state_dict_bytes(art.module) == art.size_bytes


def test_torchao_int4_reports_why_when_unsupported(text, arts):
    art = arts("text", "torchao-int4-weight-only")
    if isinstance(art, UnsupportedError):
        msg = str(art)
        assert "no CPU int4 weight-only kernel" in msg and "tile_packed_to_4d" in msg
    else:  # a torchao with a CPU int4 kernel
        assert art.quantized_modules == {"Linear (int4 weight-only)": 13}
        assert art.size_bytes < size.state_dict_bytes(text.module)
        _check_runs(text, art, 0.98)


def test_torchao_needs_a_linear_layer():
    m = zoo.load_model("tv:squeezenet1_1")  # convolutions only
    with pytest.raises(UnsupportedError, match="no nn.Linear layer"):
        apply_recipe("torchao-int8-dynamic", m, _ctx(m))


@pytest.mark.slow
def test_pt2e_static_on_vision(vision, arts):
    art = arts("vision", "pt2e-static-int8")
    assert isinstance(art, Artifact), art
    assert art.runtime == "torch-compile" and art.compile_s > 0
    d = art.details
    assert d["compiled"] and d["freezing"] and d["quantizer"].startswith("X86InductorQuantizer")
    # ResNet calls each block's relu module twice: non-strict export works only because
    # the recipe tells the calls apart (strict export would reset torch._dynamo)
    assert d["export"] == "non-strict"
    assert d["inductor_int8_lowerings"].get("qconv_weight_prepack_matcher_count", 0) > 0
    assert art.quantized_modules == {"Conv2d (int8 static)": 20, "Linear (int8 static)": 1}
    assert art.float_modules == {}  # BatchNorm folded into the convolutions
    _check_runs(vision, art, 0.98)
    # int8 weights only: the unused fp32 originals convert_pt2e leaves are dropped
    fp32 = size.state_dict_bytes(vision.module)
    assert 0.22 < size.state_dict_bytes(art.module) / fp32 < 0.28
    assert art.int8_param_fraction > 0.99
    # the size is the .pt2 file that ships: those constants plus the graph
    assert art.file.suffix == ".pt2" and art.size_bytes == art.file.stat().st_size
    assert size.state_dict_bytes(art.module) < art.size_bytes


@pytest.mark.slow
def test_pt2e_static_on_text(text, arts):
    art = arts("text", "pt2e-static-int8")
    assert isinstance(art, Artifact), art
    assert art.details["export"] == "non-strict"
    assert art.quantized_modules == {"Linear (int8 static)": 12}  # the unused pooler is dropped
    assert art.float_modules["Embedding"] == 3 and "Linear" not in art.float_modules
    assert art.details["inductor_int8_lowerings"]
    _check_runs(text, art, 0.98)
    assert size.state_dict_bytes(art.module) < size.state_dict_bytes(text.module)
    # the .pt2 file also holds the graph (~0.3 MB), more than this tiny model's weights
    assert art.size_bytes == art.file.stat().st_size


def test_pt2e_explains_a_failed_dynamic_export():
    class DataDependent(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 4)

        def forward(self, x):
            if x.mean() > 0:  # control flow on data: torch.export cannot capture it
                x = x * 2
            return self.fc(x.mean((2, 3)))

    m = zoo.LoadedModel(
        name="data-dependent", family="vision", module=DataDependent().eval(),
        weights="random", random_weights=True, is_classifier=True, max_input_size=None,
        make_inputs=lambda b, s, seed=0: (torch.randn(b, 3, s, s),),
    )  # fmt: skip
    with pytest.raises(
        UnsupportedError,
        match="torch.export with dynamic batch and image size cannot capture this model",
    ):
        apply_recipe("pt2e-static-int8", m, _ctx(m))


@pytest.mark.parametrize("family", ["text", "vision"])
@pytest.mark.parametrize("recipe", ["bf16", "fp16"])
def test_half_precision(text, vision, arts, family, recipe):
    m = text if family == "text" else vision
    native, why = _native_half("bfloat16" if recipe == "bf16" else "float16")
    art = arts(family, recipe)
    if not native:
        assert isinstance(art, UnsupportedError)
        assert str(art) == why and f"no native {recipe} on this CPU" in why
        return
    assert isinstance(art, Artifact), art
    assert art.runtime == "torch-eager" and art.details["compiled"] is False
    _check_runs(m, art, 0.99)
    dtype = "bfloat16" if recipe == "bf16" else "float16"
    assert set(art.param_bytes_by_dtype) <= {dtype, "int64"}
    # every float tensor at half its bytes (the file also holds keys: tiny models)
    assert 2 * art.param_bytes_by_dtype[dtype] == size.param_bytes_by_dtype(m.module)["float32"]
    assert art.size_bytes < size.state_dict_bytes(m.module)
    if family == "text":  # integer token ids pass through uncast
        assert art.quantized_modules["Embedding (" + recipe + ")"] == 3


@pytest.mark.slow  # seconds to tens of seconds: the everyday suite stays under 5 minutes
def test_compile_artifact(arts, text):
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    base = Artifact("fp32", mlp.eval())
    art = compile_artifact(base, (torch.randn(4, 8),), family="text")  # all dims symbolic
    assert art.recipe == "fp32+compile" and art.runtime == "torch-compile"
    assert art.compile_s > 0 and art.details["compiled"] and art.details["base_recipe"] == "fp32"
    assert art.details["graphs_compiled"] == 2  # batch 4 (dynamic) and batch 1
    assert art.size_bytes == size.state_dict_bytes(mlp)
    assert art.float_modules == {"Linear": 2}
    assert base.module is mlp and base.runtime == "torch-eager"  # left as it was
    before = _graphs()
    with torch.inference_mode():
        for b in (3, 1, 9):
            x = torch.randn(b, 8)
            torch.testing.assert_close(art.module(x), mlp(x))
    assert _graphs() == before
    with pytest.raises(UnsupportedError, match="already compiled"):
        compile_artifact(arts("text", "torchao-int8-dynamic"), text.make_inputs(2, 16))
    with pytest.raises(UnsupportedError, match="not as a torch module"):
        compile_artifact(Artifact("onnx-x", lambda *a: a[0], runtime="onnxruntime"), ())
