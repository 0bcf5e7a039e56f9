"""Spec: presets, YAML, overrides, and validation before anything heavy runs."""

from __future__ import annotations

import pytest

from quantbench.errors import QuantbenchError
from quantbench.models import model_info
from quantbench.spec import LAB_MODELS, build_spec, parse_int_list, sweep_points


def test_default_is_the_lab():
    spec = build_spec()
    assert [m.name for m in spec.models] == LAB_MODELS
    assert spec.recipes == ["fp32", "dynamic-int8", "static-int8"]
    assert spec.image_sizes == [64, 128, 160, 224, 256]
    assert spec.vision_batch_sizes == [1, 2, 4, 8] == spec.text_batch_sizes
    assert spec.measure == ["size", "latency", "fidelity"]
    assert spec.min_runs >= 10 and spec.warmup >= 2


def test_lab_sweeps_per_family():
    spec = build_spec()
    bert = spec.models[0]
    pts = sweep_points(spec, bert, model_info("bert"))
    assert [(b, s) for b, s, w in pts if w == "input_size"] == [
        (1, n) for n in (32, 64, 128, 256, 512)
    ]
    assert [(b, s) for b, s, w in pts if w == "batch_size"] == [(2, 128), (4, 128), (8, 128)]
    lf = next(m for m in spec.models if m.name == "longformer")
    assert max(s for _, s, _ in sweep_points(spec, lf, model_info("longformer"))) == 1024
    rn = next(m for m in spec.models if m.name == "resnet18")
    pts = sweep_points(spec, rn, model_info("resnet18"))
    assert [s for b, s, w in pts if w == "input_size"] == [64, 128, 160, 224, 256]
    assert [b for b, s, w in pts if w == "batch_size"] == [2, 4, 8]


def test_quick_preset():
    spec = build_spec(preset="quick")
    fams = {model_info(m.name).family for m in spec.models}
    assert fams == {"vision", "text"}


def test_yaml_then_cli_overrides(tmp_path):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(
        "models:\n  - resnet18\n  - name: longformer\n    seq_lens: [128, 4096]\n"
        "batch_sizes: [1, 2]\nrecipes: [dynamic-int8]\nthreads: 1\n"
    )
    spec = build_spec(config=cfg, overrides={"threads": 2})
    assert spec.threads == 2 and spec.recipes == ["dynamic-int8"]
    assert spec.vision_batch_sizes == [1, 2] == spec.text_batch_sizes
    assert spec.models[1].seq_lens == [128, 4096]


def test_example_yaml_is_valid():
    from pathlib import Path

    spec = build_spec(config=Path(__file__).parent.parent / "examples" / "lab.yaml")
    assert any(m.name == "longformer" and m.seq_lens for m in spec.models)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"models": "resnet81"}, "unknown model 'resnet81'. Did you mean 'resnet18'"),
        (
            {"recipes": "int4"},
            "unknown recipe 'int4'.*Valid recipes: .*dynamic-int8, .*fp32, .*static-int8",
        ),
        ({"measure": "speed"}, "unknown measure 'speed'"),
        ({"image_sizes": "64,-1"}, "image sizes must be positive integers, got '-1'"),
        ({"seq_lens": "32,1.5"}, "seq lens must be positive integers, got '1.5'"),
        ({"vision_batch_sizes": "0"}, "positive integers, got '0'"),
        ({"image_sizes": "a"}, "positive integers, got 'a'"),
        ({"models": "bert", "seq_lens": "128,1024"}, "1024 is beyond bert's maximum of 512"),
        ({"threads": 0}, "threads must be an integer > 0"),
        ({"min_runs": 0}, "min-runs must be an integer > 0"),
        ({"engine": "fbgem"}, "quantized engine 'fbgem' is not available"),
        ({"weights": "/nonexistent.pt"}, "not 'random', 'pretrained' or an existing path"),
    ],
)
def test_bad_values(overrides, match):
    with pytest.raises(QuantbenchError, match=match):
        build_spec(overrides=overrides)


def test_bad_yaml(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("models: [resnet18\n")
    with pytest.raises(QuantbenchError, match="not valid YAML"):
        build_spec(config=p)
    p.write_text("modles: [resnet18]\n")
    with pytest.raises(QuantbenchError, match="unknown config key 'modles'. Did you mean 'models'"):
        build_spec(config=p)
    p.write_text("models:\n  - name: resnet18\n    colour: red\n")
    with pytest.raises(QuantbenchError, match="unknown keys"):
        build_spec(config=p)
    with pytest.raises(QuantbenchError, match="cannot read config"):
        build_spec(config=tmp_path / "missing.yaml")
    with pytest.raises(QuantbenchError, match="unknown preset"):
        build_spec(preset="fast")


def test_parse_int_list_sorts_and_dedupes():
    assert parse_int_list("8,1,2,2", "x") == [1, 2, 8]


def test_recipes_all_and_the_targets_preset():
    from quantbench.recipes import list_recipes

    every = [r.name for r in list_recipes()]
    spec = build_spec(preset="targets")
    assert spec.recipes == every and len(spec.models) == 8
    assert spec.image_sizes == [224] and spec.seq_lens == [128]
    assert spec.vision_batch_sizes == spec.text_batch_sizes == [1]
    assert build_spec(overrides={"recipes": "fp32,all"}).recipes == every


def test_example_yaml_documents_every_key():
    import dataclasses
    import re
    from pathlib import Path

    from quantbench.spec import RunSpec

    text = (Path(__file__).parent.parent / "examples" / "lab.yaml").read_text()
    keys = set(re.findall(r"^#?\s*([a-z0-9_]+):", text, flags=re.M))
    missing = {f.name for f in dataclasses.fields(RunSpec)} - keys
    assert not missing, f"examples/lab.yaml does not document {sorted(missing)}"


def test_own_models_example_parses(tmp_path, monkeypatch):
    from pathlib import Path

    from quantbench.spec import _model_ref, load_yaml

    for d in ("data/val", "data/train", "digits/test", "digits/train", "examples/data"):
        (tmp_path / d).mkdir(parents=True)
    for f in ("data/reviews.csv", "examples/data/sentences.txt"):
        (tmp_path / f).write_text("x\n")
    monkeypatch.chdir(tmp_path)  # the example's data paths are relative
    data = load_yaml(Path(__file__).parent.parent / "examples" / "own_models.yaml")
    refs = [_model_ref(m) for m in data["models"]]
    assert [r.load_name for r in refs] == [
        "tv:resnet18", "py:examples/digits_cnn.py:DigitsCNN",
        "hf:./checkpoints/sentiment-bert", "hf:./checkpoints/all-MiniLM-L6-v2",
    ]  # fmt: skip
    assert refs[0].options == {"num_classes": 10} and refs[0].dataset["crop"] == 224
    assert refs[2].calibration["kind"] == "text" and refs[1].calibration["crop"] == 16
