"""ONNX files as models: family and dims from the graph, every ORT recipe on the file,
torch recipes unsupported with the reason, bad files as one line (issue 19, part 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

import quantbench
from conftest import fast_overrides
from quantbench.cli import main
from quantbench.errors import QuantbenchError
from quantbench.models import load_model, model_info
from quantbench.models.onnxfile import allowed_points, read_onnx
from quantbench.recipes.onnx.given import NEEDS_TORCH


class _Cnn(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


class _Text(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(50, 16)
        self.hidden = torch.nn.Linear(16, 16)
        self.out = torch.nn.Linear(16, 3)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.hidden(self.emb(ids))) * mask.unsqueeze(-1).float()
        return self.out(h.sum(1) / mask.sum(1, keepdim=True).clamp(min=1).float())


class _Two(torch.nn.Module):  # a multi-input tabular model: a "tensor" one
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(6, 8)
        self.b = torch.nn.Linear(8, 2)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)) + z.mean(1, keepdim=True))


def _export(module: torch.nn.Module, inputs: tuple, path: Path, names: list[str],
            dynamic: dict | None, out: str = "logits") -> Path:  # fmt: skip
    torch.manual_seed(0)
    torch.onnx.export(module.eval(), inputs, str(path), input_names=names, output_names=[out],
                      dynamic_axes=dynamic, opset_version=17, dynamo=False)  # fmt: skip
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny ONNX files: vision (symbolic N, H, W), vision fixed at 1x3x16x16, text
    (symbolic batch and sequence), a two-input tabular model with an extra symbolic dim,
    and the bad ones."""
    import warnings

    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h

    d = tmp_path_factory.mktemp("onnx-input")
    torch.manual_seed(0)
    ids, mask = torch.randint(0, 50, (2, 8)), torch.ones(2, 8, dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = {
            "vision": _export(_Cnn(), (torch.randn(2, 3, 16, 16),), d / "vision.onnx", ["image"],
                              {"image": {0: "N", 2: "H", 3: "W"}}),
            "fixed": _export(_Cnn(), (torch.randn(1, 3, 16, 16),), d / "fixed.onnx", ["image"],
                             None),
            "text": _export(_Text(), (ids, mask), d / "text.onnx", ["input_ids", "attention_mask"],
                            {"input_ids": {0: "batch", 1: "seq"},
                             "attention_mask": {0: "batch", 1: "seq"}}),
            "tab": _export(_Two(), (torch.randn(2, 6), torch.randn(2, 5)), d / "tab.onnx",
                           ["x", "z"], {"x": {0: "rows"}, "z": {0: "rows", 1: "k"}}, out="y"),
        }  # fmt: skip
    (d / "notonnx.onnx").write_text("hello, not a model\n")
    raw = f["text"].read_bytes()
    (d / "truncated.onnx").write_bytes(raw[: len(raw) // 2])
    const = h.make_node("Constant", [], ["y"], value=h.make_tensor("v", T.FLOAT, [1], [1.0]))
    graph = h.make_graph([const], "g", [], [h.make_tensor_value_info("y", T.FLOAT, [1])])
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), d / "noinputs.onnx")
    x = h.make_tensor_value_info("x", T.FLOAT, ["N", 4])
    graph = h.make_graph([h.make_node("FooBar", ["x"], ["y"], domain="com.example")], "g", [x],
                         [h.make_tensor_value_info("y", T.FLOAT, ["N", 4])])  # fmt: skip
    opsets = [h.make_opsetid("", 17), h.make_opsetid("com.example", 1)]
    onnx.save(h.make_model(graph, opset_imports=opsets), d / "badop.onnx")
    # loads, but runs only at one shape it is never given: a Reshape to 1 x 7
    shape = h.make_tensor("s", T.INT64, [2], [1, 7])
    graph = h.make_graph([h.make_node("Reshape", ["x", "s"], ["y"])], "g", [x],
                         [h.make_tensor_value_info("y", T.FLOAT, [1, 7])], initializer=[shape])  # fmt: skip
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), d / "runfail.onnx")
    text_in = h.make_tensor_value_info("x", T.STRING, ["N"])
    graph = h.make_graph([h.make_node("Identity", ["x"], ["y"])], "g", [text_in],
                         [h.make_tensor_value_info("y", T.STRING, ["N"])])  # fmt: skip
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), d / "strings.onnx")
    ext = d / "ext"
    ext.mkdir()
    onnx.save_model(onnx.load(f["text"]), ext / "model.onnx", save_as_external_data=True,
                    location="model.onnx.data", size_threshold=0)  # fmt: skip
    short = d / "short"
    short.mkdir()
    (short / "model.onnx").write_bytes((ext / "model.onnx").read_bytes())
    (short / "model.onnx.data").write_bytes((ext / "model.onnx.data").read_bytes()[:100])
    f.update(
        {
            k: d / f"{k}.onnx"
            for k in ("notonnx", "truncated", "noinputs", "badop", "runfail", "strings")
        }
    )
    f.update({"ext": ext / "model.onnx", "short": short / "model.onnx"})
    return f


def test_family_inputs_and_dims_come_from_the_graph(files) -> None:
    assert [model_info(str(files[k])).family for k in ("vision", "fixed", "text", "tab")] == [
        "vision", "vision", "text", "tensor"]  # fmt: skip
    assert model_info(f"onnx:{files['vision']}").family == "vision"
    assert model_info(str(files["tab"]), {"family": "vision"}).family == "vision"  # said so

    vision = load_model(str(files["vision"]))
    (img,) = vision.make_inputs(3, 24)
    assert img.shape == (3, 3, 24, 24) and img.dtype == torch.float32
    assert vision.module(img).shape == (3, 10) and vision.num_outputs == 10

    fixed = load_model(str(files["fixed"]))  # fixed dims stay the graph's, whatever is asked
    assert fixed.make_inputs(4, 64)[0].shape == (1, 3, 16, 16)
    assert fixed.module(torch.randn(5, 3, 16, 16)).shape == (5, 10)  # fixed batch: 1 at a time

    text = load_model(str(files["text"]))
    ids, mask = text.make_inputs(2, 12)
    assert ids.shape == mask.shape == (2, 12) and ids.dtype == torch.int64
    assert int(ids.max()) < 50 and bool((mask == 1).all())  # ids within the embedding table

    tab = load_model(str(files["tab"]))
    x, z = tab.make_inputs(3, 224)
    assert x.shape == (3, 6) and z.shape == (3, 8)  # 'k': neither batch nor size -> 8, said
    assert any("'k'" in n and "dims" in n for n in tab.notes)
    x, z = load_model(str(files["tab"]), options={"dims": {"k": 5}}).make_inputs(2, 1)
    assert z.shape == (2, 5)
    with pytest.raises(
        QuantbenchError, match="tab.onnx': unknown symbolic dim 'kk'.*dims: k, rows"
    ):
        read_onnx(str(files["tab"]), {"dims": {"kk": 5}})
    with pytest.raises(QuantbenchError, match="carries its own weights"):
        load_model(str(files["tab"]), weights=str(files["text"]))


def test_a_sweep_collapses_to_what_the_graph_allows(files) -> None:
    asked = [(1, 32, "input_size"), (1, 64, "input_size"), (4, 32, "batch_size")]
    assert allowed_points(str(files["vision"]), None, asked) == (asked, None)
    points, said = allowed_points(str(files["fixed"]), None, asked)
    assert points == [(1, 16, "input_size")]
    assert (
        "1 shape(s)" in said
        and "of 3 asked" in said
        and "batch fixed at 1" in said
        and "input size fixed at 16" in said
    )
    points, said = allowed_points(str(files["tab"]), None, asked)
    assert points == [(1, 6, "input_size"), (4, 6, "batch_size")] and "no input-size axis" in said
    assert allowed_points("resnet18", None, asked) == (asked, None)  # torch models: as asked
    swept = {"sweep_dim": "k"}  # the user says which other dim the size sweep varies
    assert allowed_points(str(files["tab"]), swept, asked) == (asked, None)
    assert load_model(str(files["tab"]), options=swept).make_inputs(2, 7)[1].shape == (2, 7)
    with pytest.raises(QuantbenchError, match="unknown sweep_dim 'rows'"):
        read_onnx(str(files["tab"]), {"sweep_dim": "rows"})  # the batch is not a size


@pytest.mark.parametrize(
    ("case", "said"),
    [
        ("notonnx", "is not an ONNX model"),
        ("truncated", "is not an ONNX model"),
        ("noinputs", "declares no inputs"),
        ("badop", "onnxruntime cannot load ONNX model .*FooBar"),
        ("short", "external data file 'model.onnx.data' is truncated"),
        ("missing", "does not exist"),
        ("strings", "input 'x' is string: quantbench feeds numeric tensors only"),
    ],
)
def test_a_bad_file_is_one_line(files, case, said) -> None:
    path = files.get(case, files["vision"].parent / "missing.onnx")
    with pytest.raises(QuantbenchError, match=said) as e:
        model_info(str(path))
    assert "\n" not in str(e.value) and str(path.name) in str(e.value)


def test_an_op_that_fails_at_run_time_is_one_line(files) -> None:
    lm = load_model(str(files["runfail"]))
    with pytest.raises(RuntimeError) as e:
        lm.module(*lm.make_inputs(2, 1))
    text = str(e.value)
    assert text.startswith("onnxruntime cannot run the graph at x[2, 4]: ") and "\n" not in text
    assert "/onnxruntime_src/" not in text and "requested shape" in text


def _measured(files: dict[str, Path], models: list[str], recipes: list[str], **kw) -> dict:
    """Every stage but the report (which draws plots for seconds): (model, recipe) -> cell."""
    from quantbench.runner.checks import build_spec
    from quantbench.runner.pipeline import measure_model

    overrides = {**fast_overrides(), "image_sizes": [16, 24], "vision_batch_sizes": [1, 2],
                 "ref_image_size": 16, "models": [str(files[m]) for m in models],
                 "recipes": recipes, **kw}  # fmt: skip
    spec = build_spec(overrides=overrides)
    cells = {}
    for model, ref in zip(models, spec.target.models, strict=True):
        cells.update({(model, c.recipe): c for c in measure_model(spec, ref, lambda m: None)})
    return cells


def test_vision_text_and_fixed_onnx_are_measured(files) -> None:
    cells = _measured(files, ["vision", "text", "fixed"],
                      ["ort-dynamic-int8", "ort-static-int8", "ort-int4-weight-only", "dynamic-int8"])  # fmt: skip
    for model in ("vision", "text", "fixed"):
        fp32 = cells[(model, "fp32")]
        assert fp32.status == "ok" and fp32.runtime == "onnxruntime", fp32.error
        assert fp32.size_bytes == files[model].stat().st_size  # the file as shipped
        assert fp32.fidelity.cosine > 0.9999
        assert (cells[(model, "dynamic-int8")].status, cells[(model, "dynamic-int8")].error) == (
            "unsupported", NEEDS_TORCH)  # fmt: skip
        for r in ("ort-dynamic-int8", "ort-static-int8"):
            c = cells[(model, r)]
            assert c.status == "ok" and c.fidelity.cosine > 0.98 and c.latency, (r, c.error)
            assert c.size_bytes and c.quantized_modules, r
    text_int4 = cells[("text", "ort-int4-weight-only")]  # its Linears are MatMuls
    assert text_int4.status == "ok" and "MatMulNBits" in text_int4.quantized_modules
    vision_int4 = cells[("vision", "ort-int4-weight-only")]  # a CNN's Linear exports as Gemm
    assert vision_int4.status == "unsupported" and "no MatMul" in vision_int4.error
    assert cells[("text", "fp32")].family == "text" and cells[("vision", "fp32")].family == "vision"
    assert {(p.batch_size, p.input_size) for p in cells[("vision", "fp32")].latency} == {
        (1, 16), (1, 24), (2, 16)}  # fmt: skip
    assert {(p.batch_size, p.input_size) for p in cells[("text", "fp32")].latency} == {
        (1, 8), (1, 16), (2, 16)}  # fmt: skip
    fixed = [c for (m, _), c in cells.items() if m == "fixed"]
    assert all({(p.batch_size, p.input_size) for p in c.latency} <= {(1, 16)} for c in fixed)
    said = [n for c in fixed for n in c.notes if "the latency sweep is the 1 shape(s)" in n]
    assert len(said) == 1 and said[0] in cells[("fixed", "fp32")].notes  # said once


def test_fallback_keeps_graph_nodes_float(files) -> None:
    """The fallback ranks the graph's weight-bearing nodes and keeps the worst float."""
    cells = _measured(files, ["text"], ["ort-static-int8"], measure=["size", "fidelity"],
                      fallback=True, min_cosine=0.99999)  # fmt: skip
    fb = cells[("text", "ort-static-int8+fallback")]
    assert fb.status == "ok" and fb.details["float_layers"], fb.error
    assert set(fb.details["float_layers"]) <= {"/hidden/MatMul", "/out/Gemm", "/emb/Gather"}
    assert fb.fidelity.cosine > cells[("text", "ort-static-int8")].fidelity.cosine


@pytest.mark.slow
def test_onnx_paths_through_the_python_api(files, tmp_path) -> None:
    result = quantbench.run(
        models=[files["vision"], f"onnx:{files['text']}", files["fixed"]],
        recipes=["ort-static-int8", "pt2e-static-int8"], isolate=False, out=str(tmp_path / "o"),
        store=str(tmp_path / "q.db"), **{**fast_overrides(), "image_sizes": [16],
                                         "ref_image_size": 16},
    )  # fmt: skip
    cells = {(Path(c.model).stem, c.recipe): c for c in result.results if "fixed" not in c.model}
    assert {k: c.status for k, c in cells.items()} == {
        ("vision", "fp32"): "ok", ("vision", "ort-static-int8"): "ok",
        ("vision", "pt2e-static-int8"): "unsupported", ("text", "fp32"): "ok",
        ("text", "ort-static-int8"): "ok", ("text", "pt2e-static-int8"): "unsupported"}  # fmt: skip
    assert cells[("text", "pt2e-static-int8")].error == NEEDS_TORCH
    report = (tmp_path / "o" / "report.md").read_text()
    assert report.count("the latency sweep is the 1 shape(s)") == 1  # fixed.onnx's, said once
    assert NEEDS_TORCH in report


def test_cli_and_yaml_forms(files, tmp_path, capsys) -> None:
    cfg = fast_overrides(
        models=[{"name": "tabular", "source": "onnx", "path": str(files["tab"]),
                 "options": {"dims": {"k": 4}}}, str(files["runfail"])],
        recipes=["ort-dynamic-int8", "static-int8"], measure=["size", "fidelity"], isolate=False,
    )  # fmt: skip
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    rc = main(["run", "--config", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "o"),
               "--store", str(tmp_path / "q.db"), "--no-progress"])  # fmt: skip
    assert rc == 0
    cells = {(c["model"], c["recipe"]): c
             for c in json.loads((tmp_path / "o" / "results.json").read_text())["results"]}  # fmt: skip
    assert cells[("tabular", "ort-dynamic-int8")]["status"] == "ok"
    assert cells[("tabular", "fp32")]["family"] == "tensor"
    assert cells[("tabular", "static-int8")]["error"] == NEEDS_TORCH
    failed = cells[(str(files["runfail"]), "fp32")]  # ORT cannot run it: an error cell
    assert failed["status"] == "error" and "cannot run the graph" in failed["error"]

    capsys.readouterr()
    bad = ["run", "--models", str(files["truncated"]), "--out", str(tmp_path / "b"),
           "--store", str(tmp_path / "q.db"), "--no-progress"]  # fmt: skip
    assert main(bad) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is not an ONNX model" in err and "Traceback" not in err

    out = tmp_path / "text-int8.onnx"
    assert main(["quantize", str(files["text"]), "--recipe", "ort-dynamic-int8",
                 "--output", str(out)]) == 0  # fmt: skip
    ids, mask = load_model(str(files["text"])).make_inputs(2, 8)
    assert load_model(str(out)).module(ids, mask).shape == (2, 3)  # ships, and runs as ONNX
    assert main(["quantize", str(files["text"]), "--recipe", "dynamic-int8",
                 "--output", str(tmp_path / "x.pt")]) == 2  # fmt: skip
    assert NEEDS_TORCH in capsys.readouterr().err


def test_external_data_is_read_and_counted(files) -> None:
    lm = load_model(str(files["ext"]))
    assert len(lm.module.files) == 2
    from quantbench.recipes.onnx.source import given_fp32

    art = given_fp32(lm)
    total = sum(Path(f).stat().st_size for f in lm.module.files)
    assert art.size_bytes == total > files["ext"].stat().st_size


class _Bert3(torch.nn.Module):  # takes token types too, as BERT exports do
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, 16)
        self.types = torch.nn.Embedding(2, 16)
        self.out = torch.nn.Linear(16, 2)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        h = (self.emb(ids) + self.types(types)) * mask.unsqueeze(-1).float()
        return self.out(h.sum(1))


def _images(root: Path) -> Path:
    from PIL import Image

    for c in range(10):
        (root / f"c{c}").mkdir(parents=True)
        Image.new("RGB", (20, 20), (c * 20, 0, 0)).save(root / f"c{c}" / "a.png")
    return root


def test_images_for_a_fixed_graph(files, tmp_path) -> None:
    """A vision graph fixed at 1x3x16x16 scored on images cropped to 16: evaluation
    batches of 8 run one row at a time, in fp32 and in the quantized file alike."""
    root = _images(tmp_path / "img")
    image = {"path": str(root), "resize": 16, "crop": 16}
    cells = _measured(files, ["fixed"], ["ort-static-int8"], measure=["size"], dataset=image,
                      calibration=image, calibration_samples=4)  # fmt: skip
    for c in cells.values():
        assert c.status == "ok" and c.accuracy is not None and c.accuracy.n == 6, c.error
    with pytest.raises(QuantbenchError, match="takes 16x16 images .* gives 224x224: set crop: 16"):
        _measured(files, ["fixed"], ["ort-static-int8"], dataset=str(root))


def test_text_data_with_the_tokenizer_beside_the_file(files, tmp_path) -> None:
    """A text ONNX with its tokenizer beside it, scored and calibrated on a CSV: the
    dataset gives ids and mask, the graph also takes token types."""
    import csv
    import warnings

    from transformers import BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "the", "film", "was"]
    d = tmp_path / "bert"
    d.mkdir()
    BertTokenizer(vocab={w: i for i, w in enumerate(words)}).save_pretrained(d)
    ids = torch.randint(0, len(words), (2, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        names = ["input_ids", "attention_mask", "token_type_ids"]
        _export(_Bert3(len(words)), (ids, torch.ones_like(ids), torch.zeros_like(ids)),
                d / "model.onnx", names, {n: {0: "batch", 1: "seq"} for n in names})  # fmt: skip
    with (tmp_path / "t.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows([["the film was good", 1], ["the film was bad", 0]] * 6)
    cells = _measured({"bert": d / "model.onnx"}, ["bert"], ["ort-dynamic-int8", "ort-static-int8"],
                      measure=["size", "fidelity"], dataset=str(tmp_path / "t.csv"),
                      calibration=str(tmp_path / "t.csv"), calibration_samples=4)  # fmt: skip
    for key, c in cells.items():
        assert c.status == "ok" and c.accuracy is not None and c.accuracy.n == 8, (key, c.error)
    assert "examples of" in cells[("bert", "ort-static-int8")].notes[0]  # calibrated on the CSV
