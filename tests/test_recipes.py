"""Every recipe on tiny models of both families: runs, stays close to fp32, sized right."""

from __future__ import annotations

import pytest
import torch

from quantbench import models as zoo
from quantbench.artifacts.formats import FORMATS as FILE_FORMATS
from quantbench.errors import QuantbenchError, UnsupportedError
from quantbench.measure import fidelity, size
from quantbench.recipes import (
    QuantContext,
    Recipe,
    apply_recipe,
    get_recipe,
    list_recipes,
    recipe,
    register,
)

RECIPES = ["fp32", "dynamic-int8", "static-int8"]


def test_registry_lists_every_recipe():
    names = [r.name for r in list_recipes()]
    assert names[:3] == RECIPES
    assert len(names) == len(set(names))
    for r in list_recipes():
        assert r.description and r.runtime and r.precision
    with pytest.raises(QuantbenchError, match="Did you mean 'static-int8'"):
        get_recipe("static_int8")


def test_registering_a_name_twice_is_refused():
    before = {r.name: r for r in list_recipes()}
    other = Recipe("fp32", "fp32", "torch-eager", "another fp32", lambda m, c, x: None)
    with pytest.raises(ValueError, match="'fp32' is registered twice"):
        register(other)
    with pytest.raises(ValueError, match="registered twice"):
        recipe("dynamic-int8", precision="int8", runtime="torch-eager", description="again")(
            lambda m, c, x: None
        )
    assert {r.name: r for r in list_recipes()} == before  # nothing replaced or added
    assert register(get_recipe("fp32")) is get_recipe("fp32")  # the same object: no-op


def test_every_recipe_ships_a_known_file_format():
    # The recipes sit below the artifacts (they never import them): the formats they name
    # are checked here, against the artifacts' registry.
    from quantbench.artifacts.formats import FORMATS

    assert {r.name: r.file_format for r in list_recipes() if r.file_format not in FORMATS} == {}


# Baselines: they run the model as it is and turn no layer low-precision.
BASELINES = {"fp32", "ort-fp32", "et-fp32", "ov-fp32"}


@pytest.mark.parametrize("r", list_recipes(), ids=lambda r: r.name)
def test_recipe_declares_what_it_does(r):
    assert bool(r.quantizes) == (r.name not in BASELINES)
    assert all(isinstance(k, str) and k for k in r.quantizes)
    assert r.file_format in FILE_FORMATS
    # ``+compile`` applies exactly to recipes whose artifact is an eager torch module
    assert r.compilable == (r.runtime == "torch-eager")
    # what ``quantbench quantize`` writes follows from where the artifact runs
    expected = {"onnxruntime": "onnx", "torch-compile": "pt2", "executorch": "pte",
                "openvino": "openvino-ir"}.get(r.runtime, "state_dict")  # fmt: skip
    assert r.file_format == expected
    assert r.library in ("torch", "torchao", "onnxruntime", "executorch", "openvino")
    assert r.config_version >= 1


def test_report_prose_and_styles_live_in_the_recipes():
    styles = {r.name: r.style for r in list_recipes() if r.style is not None}
    assert set(styles) == set(RECIPES)
    assert len({(s.linestyle, s.marker, s.hatch) for s in styles.values()}) == 3
    for name in RECIPES:
        assert get_recipe(name).explanation
    assert "{calib}" in get_recipe("static-int8").explanation


def test_with_options_checks_names_and_types():
    r = get_recipe("static-int8", {"per_channel": False})
    assert r.config.per_channel is False and get_recipe("static-int8").config.per_channel
    with pytest.raises(QuantbenchError, match="Did you mean 'per_channel'"):
        get_recipe("static-int8", {"per_chanel": False})
    with pytest.raises(QuantbenchError, match="'per_channel' must be bool, got 'yes'"):
        get_recipe("static-int8", {"per_channel": "yes"})
    # an int where a float is expected is accepted as is
    assert get_recipe("qat-int8", {"freeze_bn_after": 1}).config.freeze_bn_after == 1
    with pytest.raises(QuantbenchError, match="no settings to change"):
        Recipe("x", "fp32", "y", "z", lambda m, c, x: None).with_options({"a": 1})


def test_config_record_holds_the_version():
    assert get_recipe("static-int8").config_record() == {"version": 1, "per_channel": True}
    assert get_recipe("fp32").config_record() == {"version": 1}
    rec = get_recipe("qat-int8", {"freeze_bn_after": 0.25}).config_record()
    assert rec["version"] == 1 and rec["freeze_bn_after"] == 0.25


@pytest.fixture(scope="module")
def vision():
    return zoo.load_model("tv:resnet18")


@pytest.fixture(scope="module")
def text(tiny_bert_dir):
    return zoo.load_model(f"hf:{tiny_bert_dir}")


def _ctx(m, size_):
    return QuantContext("x86", [m.make_inputs(2, size_, seed=100 + i) for i in range(4)])


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_on_vision(vision, recipe):
    art = apply_recipe(recipe, vision, _ctx(vision, 64))
    x = vision.make_inputs(4, 64, seed=7)
    with torch.inference_mode():
        f = fidelity.compare(vision.module(*x), art.module(*x), is_classifier=True)
    assert f.cosine > 0.99
    fp32_size = size.state_dict_bytes(vision.module)
    q_size = size.state_dict_bytes(art.module)
    if recipe == "fp32":
        assert art.module is vision.module and size.quantized_modules(art.module) == {}
    elif recipe == "dynamic-int8":  # the lab's result: only the final Linear shrinks
        assert size.quantized_modules(art.module) == {"DynamicQuantizedLinear": 1}
        assert 0.9 < q_size / fp32_size < 1.0
    else:  # conv and linear, per-channel: about a quarter of the size
        mods = size.quantized_modules(art.module)
        assert mods.get("QuantizedConv2d", 0) + mods.get("QuantizedConvReLU2d", 0) == 20
        assert mods["QuantizedLinear"] == 1
        assert 0.22 < q_size / fp32_size < 0.28
        assert size.int8_fraction(art.module) > 0.99
        assert size.float_modules(art.module) == {}
        # per-channel weights, as the issue asks
        conv = next(m for m in art.module.modules() if m._get_name() == "QuantizedConvReLU2d")
        assert conv.weight().qscheme() == torch.per_channel_affine


@pytest.mark.parametrize("recipe", ["fp32", "dynamic-int8"])
def test_recipe_on_text(text, recipe):
    art = apply_recipe(recipe, text, _ctx(text, 8))
    x = text.make_inputs(2, 8, seed=7)
    with torch.inference_mode():
        f = fidelity.compare(text.module(*x), art.module(*x), is_classifier=False)
    assert f.cosine > 0.99 and f.top1_agreement is None
    if recipe == "dynamic-int8":
        # 2 layers x (q, k, v, attention out, intermediate, output) + pooler
        assert size.quantized_modules(art.module) == {"DynamicQuantizedLinear": 13}
        parts = size.quantized_parts(art.module)
        assert parts == {"attention": 8, "feed-forward": 4, "pooler": 1}
        assert size.float_modules(art.module)["Embedding"] == 3


def test_static_int8_on_text_is_unsupported_with_reason(text):
    with pytest.raises(UnsupportedError, match="symbolically traceable"):
        apply_recipe("static-int8", text, _ctx(text, 8))


def test_dynamic_int8_without_linear_notes_it():
    m = zoo.load_model("squeezenet")
    art = apply_recipe("dynamic-int8", m, QuantContext("x86"))
    assert "no nn.Linear" in art.notes[0]
    assert size.quantized_modules(art.module) == {}


def test_static_int8_with_qnnpack_engine():
    m = zoo.load_model("tv:squeezenet1_1")
    art = apply_recipe("static-int8", m, QuantContext("qnnpack", [m.make_inputs(2, 64)]))
    assert size.quantized_modules(art.module)
    with torch.inference_mode():
        assert art.module(*m.make_inputs(1, 64)).shape == (1, 1000)


def test_engine_check_names_available_engines():
    from quantbench.env import check_engine, quantized_engines

    with pytest.raises(QuantbenchError, match="not available in this torch build.*has: "):
        check_engine("fbgem")
    assert check_engine(None) in quantized_engines()


def test_fidelity_degenerate_and_shape_mismatch():
    zero = torch.zeros(2, 5)
    f = fidelity.compare(zero, torch.ones(2, 5), True)
    assert f.cosine is None and "degenerate" in f.note
    f = fidelity.compare(torch.ones(2, 5), torch.ones(2, 4), True)
    assert f.cosine is None and "shape" in f.note
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    f = fidelity.compare(a, b, True)
    assert f.cosine == pytest.approx(0.5) and f.top1_agreement == pytest.approx(0.5)
    assert f.max_abs_err == pytest.approx(1.0)
