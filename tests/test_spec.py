"""Spec: presets, YAML, overrides, and validation before anything heavy runs."""

from __future__ import annotations

import pytest

from quantbench.errors import QuantbenchError
from quantbench.models import model_info
from quantbench.runner.checks import build_spec
from quantbench.settings import LAB_MODELS, parse_int_list
from quantbench.shapes import sweep_points


def test_default_is_the_lab():
    spec = build_spec()
    assert [m.name for m in spec.target.models] == LAB_MODELS
    assert spec.quant.recipes == ["fp32", "dynamic-int8", "static-int8"]
    assert spec.sweep.image_sizes == [64, 128, 160, 224, 256]
    assert spec.sweep.vision_batch_sizes == [1, 2, 4, 8] == spec.sweep.text_batch_sizes
    assert spec.judge.measure == ["size", "latency", "fidelity"]
    assert spec.timing.min_runs >= 10 and spec.timing.warmup >= 2


def test_lab_sweeps_per_family():
    spec = build_spec()
    bert = spec.target.models[0]
    pts = sweep_points(spec, bert, model_info("bert"))
    assert [(b, s) for b, s, w in pts if w == "input_size"] == [
        (1, n) for n in (32, 64, 128, 256, 512)
    ]
    assert [(b, s) for b, s, w in pts if w == "batch_size"] == [(2, 128), (4, 128), (8, 128)]
    lf = next(m for m in spec.target.models if m.name == "longformer")
    assert max(s for _, s, _ in sweep_points(spec, lf, model_info("longformer"))) == 1024
    rn = next(m for m in spec.target.models if m.name == "resnet18")
    pts = sweep_points(spec, rn, model_info("resnet18"))
    assert [s for b, s, w in pts if w == "input_size"] == [64, 128, 160, 224, 256]
    assert [b for b, s, w in pts if w == "batch_size"] == [2, 4, 8]


def test_quick_preset():
    spec = build_spec(preset="quick")
    fams = {model_info(m.name).family for m in spec.target.models}
    assert fams == {"vision", "text"}


def test_yaml_then_cli_overrides(tmp_path):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(
        "models:\n  - resnet18\n  - name: longformer\n    seq_lens: [128, 4096]\n"
        "batch_sizes: [1, 2]\nrecipes: [dynamic-int8]\nthreads: 1\n"
    )
    spec = build_spec(config=cfg, overrides={"threads": 2})
    assert spec.timing.threads == 2 and spec.quant.recipes == ["dynamic-int8"]
    assert spec.sweep.vision_batch_sizes == [1, 2] == spec.sweep.text_batch_sizes
    assert spec.target.models[1].seq_lens == [128, 4096]


def test_example_yaml_is_valid():
    from pathlib import Path

    spec = build_spec(config=Path(__file__).parent.parent / "examples" / "lab.yaml")
    assert any(m.name == "longformer" and m.seq_lens for m in spec.target.models)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"models": "resnet81"}, "unknown model 'resnet81'. Did you mean 'resnet18'"),
        (
            {"recipes": "int4"},
            "unknown recipe 'int4'.*Valid recipes: .*dynamic-int8, .*fp32, .*static-int8",
        ),
        ({"measure": "speed"}, "unknown measure 'speed'"),
        ({"image_sizes": "64,-1"}, "setting 'image_sizes' must be positive integers, got '-1'"),
        ({"seq_lens": "32,1.5"}, "setting 'seq_lens' must be positive integers, got '1.5'"),
        ({"vision_batch_sizes": "0"}, "positive integers, got '0'"),
        ({"image_sizes": "a"}, "positive integers, got 'a'"),
        ({"models": "bert", "seq_lens": "128,1024"}, "1024 is beyond bert's maximum of 512"),
        ({"threads": 0}, "setting 'threads' must be an integer > 0, got 0"),
        ({"min_runs": -1}, "^setting 'min_runs' must be an integer > 0, got -1$"),
        ({"min_runs": True}, "setting 'min_runs' must be an integer > 0, got True"),
        ({"warmup": -1}, "setting 'warmup' must be an integer >= 0, got -1"),
        ({"min_time_s": "fast"}, "setting 'min_time_s' must be a finite number >= 0, got 'fast'"),
        ({"max_accuracy_drop": 1}, r"setting 'max_accuracy_drop' must be a fraction in \[0, 1\)"),
        ({"min_cosine": 1.5}, "setting 'min_cosine' must be a finite number between 0 and 1"),
        ({"pin": "yes"}, "setting 'pin' must be true or false, got 'yes'"),
        ({"ref_batch": 0}, "setting 'ref_batch' must be an integer > 0, got 0"),
        ({"ref_seq_len": 0}, "setting 'ref_seq_len' must be an integer > 0, got 0"),
        ({"models": "bert", "ref_seq_len": 600}, "600 is beyond bert's maximum of 512"),
        ({"timeout_s": 0.1}, "timeout_s .* must be longer than min_time_s"),
        ({"modles": "resnet18"}, "^unknown setting 'modles'. Did you mean 'models'\\? Valid"),
        ({"preset": "fast"}, "unknown preset 'fast'"),
        (
            {"models": [{"name": "resnet18", "wieghts": "random"}]},
            "^model 'resnet18': unknown setting 'wieghts'. Did you mean 'weights'",
        ),
        ({"recipe_options": "{static-int8: [1]}"}, "must be a mapping of settings"),
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
    with pytest.raises(QuantbenchError, match="unknown setting 'modles'. Did you mean 'models'"):
        build_spec(config=p)
    p.write_text("models:\n  - name: resnet18\n    colour: red\n")
    with pytest.raises(QuantbenchError, match="model 'resnet18': unknown setting 'colour'"):
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
    assert spec.quant.recipes == every and len(spec.target.models) == 8
    assert spec.sweep.image_sizes == [224] and spec.sweep.seq_lens == [128]
    assert spec.sweep.vision_batch_sizes == spec.sweep.text_batch_sizes == [1]
    assert build_spec(overrides={"recipes": "fp32,all"}).quant.recipes == every


def test_example_yaml_documents_every_key():
    import re
    from pathlib import Path

    from quantbench.settings import FIELDS

    text = (Path(__file__).parent.parent / "examples" / "lab.yaml").read_text()
    keys = set(re.findall(r"^#?\s*([a-z0-9_]+):", text, flags=re.M))
    missing = set(FIELDS) - keys
    assert not missing, f"examples/lab.yaml does not document {sorted(missing)}"


def test_own_models_example_parses(tmp_path, monkeypatch):
    from pathlib import Path

    from quantbench.datasets import parse_dataset
    from quantbench.settings import load_yaml, model_entry

    for d in ("data/val", "data/train", "digits/test", "digits/train", "examples/data"):
        (tmp_path / d).mkdir(parents=True)
    for f in ("data/reviews.csv", "examples/data/sentences.txt"):
        (tmp_path / f).write_text("x\n")
    monkeypatch.chdir(tmp_path)  # the example's data paths are relative
    data = load_yaml(Path(__file__).parent.parent / "examples" / "own_models.yaml")
    refs = [model_entry(m) for m in data["models"]]
    assert [r.load_name for r in refs] == [
        "tv:resnet18", "py:examples/digits_cnn.py:DigitsCNN",
        "hf:./checkpoints/sentiment-bert", "hf:./checkpoints/all-MiniLM-L6-v2",
    ]  # fmt: skip
    # the entries' data, as the run's checks read it (quantbench.runner.checks)
    assert refs[0].options == {"num_classes": 10} and parse_dataset(refs[0].dataset).crop == 224
    assert parse_dataset(refs[2].calibration).kind == "text"
    assert parse_dataset(refs[1].calibration).crop == 16


# --------------------------------------------------------------------------- the model


def test_one_model_same_names_and_stored_form():
    from quantbench.runner.checks import spec_from_dict
    from quantbench.settings import ModelRef, RunSpec

    spec = RunSpec()
    assert (
        spec.timing.min_time_s == 0.5
        and spec.timing.timeout_s is None
        and spec.launch.isolate is True
    )
    assert (
        spec.sweep.ref_batch is None
        and spec.sweep.ref_image_size is None
        and spec.sweep.ref_seq_len is None
    )
    assert [m.name for m in spec.target.models] == LAB_MODELS and ModelRef("x").load_name == "x"
    assert spec.to_dict() == {**spec.flat(), "models": [m.model_dump() for m in spec.target.models]}
    # a stored spec from an older or newer quantbench: unknown keys are dropped
    d = build_spec(overrides={"models": "resnet18", "measure": "size"}).to_dict()
    d["a_future_setting"] = 1
    d["models"][0]["a_future_key"] = 2
    again = spec_from_dict(d)
    assert again.target.models[0].name == "resnet18" and again.judge.measure == ["size"]
    assert spec.replace(recipes=["fp32"]).quant.recipes == ["fp32"]


def test_python_construction_and_assignment_are_checked_in_one_line():
    from quantbench.settings import ModelRef, RunSpec

    with pytest.raises(
        QuantbenchError, match="^setting 'min_runs' must be an integer > 0, got -1$"
    ):
        RunSpec(min_runs=-1)
    with pytest.raises(QuantbenchError, match="unknown setting 'modles'. Did you mean 'models'"):
        RunSpec(modles=["resnet18"])
    spec = RunSpec()
    with pytest.raises(QuantbenchError, match="setting 'qat_lr' must be a finite number > 0"):
        spec.quant.qat_lr = 0
    with pytest.raises(QuantbenchError, match="^model 'x': setting 'image_sizes' must be posi"):
        ModelRef("x", image_sizes=[0])
    with pytest.raises(QuantbenchError, match="model 'x': unknown setting 'wieghts'"):
        ModelRef("x", wieghts="random")
    with pytest.raises(QuantbenchError, match="model 'a': setting 'seq_lens' must be positive"):
        RunSpec(models=[{"name": "a", "seq_lens": "8,x"}])
    assert RunSpec(image_sizes="32,16,16").sweep.image_sizes == [16, 32]
    assert RunSpec(vision_batch_sizes=4).sweep.vision_batch_sizes == [4]


def test_batch_sizes_sets_both_families_and_a_familys_own_key_wins(tmp_path):
    from quantbench.settings import RunSpec

    assert RunSpec(batch_sizes=[1, 2]).sweep.text_batch_sizes == [1, 2]
    spec = build_spec(overrides={"batch_sizes": "1,2", "vision_batch_sizes": "4"})
    assert spec.sweep.vision_batch_sizes == [4] and spec.sweep.text_batch_sizes == [1, 2]
    cfg = tmp_path / "x.yaml"
    cfg.write_text("vision_batch_sizes: [8]\nbatch_sizes: [1]\n")
    assert build_spec(config=cfg).sweep.vision_batch_sizes == [8]
    # a flag beats the file, even the file's own family key
    assert build_spec(config=cfg, overrides={"batch_sizes": "2"}).sweep.vision_batch_sizes == [2]


def test_preset_in_the_file_and_precedence(tmp_path):
    cfg = tmp_path / "x.yaml"
    cfg.write_text("preset: quick\nmin_runs: 5\nthreads: 1\n")
    spec = build_spec(config=cfg, overrides={"threads": 2})
    assert [m.name for m in spec.target.models] == ["resnet18", "distilbert"]  # the file's preset
    assert spec.preset == "quick" and spec.timing.min_time_s == 0.2  # ... its values
    assert spec.timing.min_runs == 5 and spec.timing.threads == 2  # file > preset, flags > file
    spec = build_spec(preset="targets", config=cfg)  # --preset beats the file's
    assert (
        spec.preset == "targets" and spec.sweep.image_sizes == [224] and spec.timing.min_runs == 5
    )
    cfg.write_text("preset: fast\n")
    with pytest.raises(QuantbenchError, match="unknown preset 'fast'"):
        build_spec(config=cfg)


def test_unknown_python_override_is_refused():
    with pytest.raises(QuantbenchError, match="^unknown setting 'modles'. Did you mean 'models'"):
        build_spec(overrides={"modles": "resnet18"})


def test_json_schema_describes_every_setting():
    from quantbench.settings import FIELDS, json_schema

    schema = json_schema()
    props = schema["properties"]
    assert set(FIELDS) | {"batch_sizes"} == set(props)
    assert all(p.get("description") for p in props.values())
    assert schema["additionalProperties"] is False
    assert props["min_runs"]["exclusiveMinimum"] == 0
    assert props["max_accuracy_drop"]["exclusiveMaximum"] == 1


# --------------------------------------------------------------------------- reference shape


@pytest.mark.parametrize(
    "overrides, shape, batch_sweep",
    [
        ({"image_sizes": "16,32"}, (1, 32), [(2, 32)]),  # the sweep's size nearest 224
        ({"image_sizes": "192,256"}, (1, 192), [(2, 192)]),  # a tie: the smaller
        ({"image_sizes": "16,32", "ref_image_size": 16}, (1, 16), [(2, 16)]),
        ({"image_sizes": "16,32", "ref_image_size": 100}, (1, 100), [(1, 100), (2, 100)]),
        ({"image_sizes": "16,32", "ref_batch": 4}, (4, 32), [(2, 32), (4, 32)]),
        ({}, (1, 224), [(2, 224)]),
    ],
)
def test_reference_shape_is_a_measured_point(overrides, shape, batch_sweep):
    from quantbench.shapes import reference_shape

    spec = build_spec(overrides={"models": "resnet18", "batch_sizes": "1,2", **overrides})
    ref, info = spec.target.models[0], model_info("resnet18")
    assert reference_shape(spec, ref, info) == shape
    pts = sweep_points(spec, ref, info)
    assert [(b, s) for b, s, w in pts if w == "batch_size"] == batch_sweep
    assert (shape[0], shape[1]) in {(b, s) for b, s, _ in pts}


def test_reference_shape_text_and_per_model_sweeps():
    from quantbench.shapes import reference_shape

    with pytest.raises(QuantbenchError, match="600 is beyond bert's maximum of 512"):
        build_spec(overrides={"models": "bert", "seq_lens": "8,16,600"})
    spec = build_spec(overrides={"models": [{"name": "bert", "seq_lens": [8, 16]}]})
    assert reference_shape(spec, spec.target.models[0], model_info("bert")) == (1, 16)


def test_ref_sizes_hold_only_explicit_settings():
    from quantbench.shapes import ref_size_for, ref_sizes

    spec = build_spec(overrides={"models": "resnet18", "image_sizes": "16,32"})
    assert ref_sizes(spec) == {} and ref_sizes(spec.to_dict()) == {}
    assert ref_size_for("vision", spec) == 32  # calibration / fidelity inputs: measured size
    assert ref_sizes({"ref_image_size": 224, "ref_seq_len": 128}) == {"vision": 224, "text": 128}
    spec.sweep.ref_batch, spec.sweep.ref_image_size = 4, 16
    assert ref_sizes(spec) == {"vision": 16, "batch": 4}
    assert ref_size_for("vision", spec) == 16 and ref_size_for("text", None) == 128
