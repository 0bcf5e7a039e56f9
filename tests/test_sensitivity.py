"""``quantbench sensitivity`` measures as a run does: which layers it ranks comes from the
recipe's record, and the model, calibration inputs and sizes from the run's load stage."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from conftest import DIGITS
from quantbench import recipes
from quantbench.cli import main
from quantbench.models import load_model
from quantbench.recipes import get_recipe
from quantbench.sensitivity import quantizable_layers


def test_the_layers_ranked_are_the_kinds_the_recipe_record_quantizes(monkeypatch) -> None:
    lm = load_model(DIGITS.MODEL, "random")
    convs = ["features.0.0", "features.1.0", "features.2.0"]
    assert quantizable_layers(lm, "static-int8") == [*convs, "fc"]
    assert quantizable_layers(lm, "dynamic-int8") == ["fc"]
    # a recipe of any name: what it quantizes is its record's, not its name's
    base = get_recipe("static-int8")
    for name, quantizes, expected in (("my-int8", ("Conv",), convs), ("x", ("Gemm",), ["fc"])):
        monkeypatch.setitem(recipes.RECIPES, name, dataclasses.replace(base, name=name,
                                                                       quantizes=quantizes))  # fmt: skip
        assert quantizable_layers(lm, name) == expected


def test_a_short_context_model_is_ranked_at_a_size_it_takes(tiny_bert_dir: Path, tmp_path, capsys):
    """The tiny BERT has 64 positions; the lab's reference length is 128 tokens. The
    calibration and fidelity inputs are the load stage's, no longer than the model takes
    (this crashed with a tensor size error when the sizes were fixed here)."""
    out = tmp_path / "s"
    argv = ["sensitivity", f"hf:{tiny_bert_dir}", "--recipe", "dynamic-int8", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    result = json.loads((out / "sensitivity.json").read_text())
    assert result["metric"] == "cosine to fp32 outputs (synthetic inputs)"
    assert len(result["layers"]) == 13 and all(e["error"] is None for e in result["layers"])
    text = (out / "sensitivity.md").read_text()
    assert "![effect per layer](sensitivity.png)" in text and "| 13 | `" in text
    assert (out / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"
