"""ExecuTorch and OpenVINO int8 leave chosen torch layers in float (XNNPACKQuantizer's node
filter, NNCF's ``ignored_scope``): the sensitivity ranking finds the one planted weak layer,
and the ``+fallback`` search keeps exactly it float, with the same ranking and bar as every
other recipe's fallback."""

from __future__ import annotations

import pytest

from conftest import fast_overrides
from quantbench import models as zoo
from quantbench.recipes import QuantContext
from quantbench.sensitivity import fidelity_score, layer_sensitivity, quantizable_layers
from test_onnx_fallback import PLANTED

# Lowering a program per ranked layer takes seconds each: these are not everyday tests.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("planted") / "planted.py"
    path.write_text(PLANTED)
    return f"py:{path}:Planted"


# et-int8's ranking is covered by its fallback below (its first step is the ranking's first)
@pytest.mark.parametrize("recipe", ["ov-int8"])
def test_the_planted_layer_ranks_first(planted, recipe) -> None:
    m = zoo.load_model(planted, "random")
    ctx = QuantContext("x86", [m.make_inputs(4, 32, seed=i) for i in range(3)])
    score = fidelity_score(m.module, [m.make_inputs(8, 32, seed=7)])
    assert quantizable_layers(m, recipe) == ["conv", "fc1", "fc2", "fc3"]
    s = layer_sensitivity(m, recipe, ctx, score, "cosine")
    assert s.quantized_score < 0.5, s  # the planted weight ruins int8 in both libraries
    assert s.layers[0].layer == "fc2" and s.layers[0].score > 0.999, s.layers


@pytest.mark.parametrize("recipe", ["et-int8", "ov-int8"])
def test_fallback_keeps_the_planted_layer_float(planted, tmp_path, recipe) -> None:
    from quantbench.runner import run
    from quantbench.runner.checks import build_spec

    spec = build_spec(overrides={
        "models": [planted], "weights": "random", "recipes": [recipe],
        "out": str(tmp_path / "fb"), "fallback": True, "min_cosine": 0.999,
        "fallback_max_layers": 3, "measure": ["size", "fidelity"],
        **fast_overrides(fidelity_batch_size=8, image_sizes=[32]),
    })  # fmt: skip
    result = run(spec, progress=False)
    cells = {c.recipe: c for c in result.results}
    base, fb = cells[recipe], cells[f"{recipe}+fallback"]
    assert base.status == "ok" and base.details["meets_bar"] is False
    assert fb.status == "ok", fb.error
    assert fb.details["float_layers"] == ["fc2"]  # ranked first, and enough
    assert fb.details["fallback_steps"][0][0] == "fc2"
    assert fb.details["meets_bar"] is True and fb.fidelity.cosine >= 0.999
    assert fb.size_bytes > base.size_bytes  # fc2's weights are float again, in the file
    assert any("accuracy-aware fallback" in n for n in fb.notes)
