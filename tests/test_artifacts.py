"""`quantbench quantize` writes what a user ships; load_artifact brings it back."""

from __future__ import annotations

import os

import pytest
import torch

import quantbench
from quantbench.cli import main
from quantbench.errors import QuantbenchError
from quantbench.models import load_model


@pytest.mark.parametrize(
    "model, recipe, size",
    [("squeezenet", "static-int8", 64), ("squeezenet", "fp32", 64), ("tiny", "dynamic-int8", 8)],
)
def test_quantize_and_reload(tmp_path, tiny_bert_dir, capsys, model, recipe, size):
    name = f"hf:{tiny_bert_dir}" if model == "tiny" else model
    out = tmp_path / "m.pt"
    assert (
        main(["quantize", name, "--recipe", recipe, "--output", str(out), "--calib-batches", "2"])
        == 0
    )
    assert "wrote" in capsys.readouterr().out and out.stat().st_size > 0
    # weights-only: no pickled code is needed to read it
    assert torch.load(out, weights_only=True)["recipe"] == recipe
    loaded = quantbench.load_artifact(out)
    ref = load_model(name)
    x = ref.make_inputs(2, size, seed=4)
    with torch.inference_mode():
        y = loaded(*x)
        y_ref = ref.module(*x)
    assert y.shape == y_ref.shape
    cos = torch.nn.functional.cosine_similarity(y.flatten(1), y_ref.flatten(1)).mean()
    assert cos > 0.98


def test_quantize_refuses_existing_file_without_force(tmp_path):
    out = tmp_path / "m.pt"
    out.write_bytes(b"keep me")
    args = ["quantize", "squeezenet", "--recipe", "dynamic-int8", "--output", str(out)]
    assert main(args) == 2
    assert out.read_bytes() == b"keep me"
    assert main([*args, "--force"]) == 0
    assert out.read_bytes() != b"keep me"


def test_quantize_unsupported_and_bad_names(tmp_path, tiny_bert_dir, capsys):
    out = tmp_path / "m.pt"
    assert (
        main(["quantize", f"hf:{tiny_bert_dir}", "--recipe", "static-int8", "--output", str(out)])
        == 2
    )
    assert "does not apply" in capsys.readouterr().err
    assert main(["quantize", "resnet", "--recipe", "fp32", "--output", str(out)]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["quantize", "resnet18", "--recipe", "int2", "--output", str(out)]) == 2
    assert (
        main(
            ["quantize", "resnet18", "--recipe", "fp32", "--output", str(tmp_path / "no" / "m.pt")]
        )
        == 2
    )
    assert not out.exists() and not list(tmp_path.glob(".m.pt.*"))


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    from quantbench import build

    real_save = torch.save

    def boom(obj, f, *a, **k):  # sizing (into memory) works; writing the file fails
        if isinstance(f, (str, os.PathLike)) or hasattr(f, "fileno") and hasattr(f, "name"):
            raise OSError("disk full")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", boom)
    out = tmp_path / "m.pt"
    with pytest.raises(OSError):
        build.quantize_to_file("squeezenet", "dynamic-int8", out)
    assert list(tmp_path.iterdir()) == []


def test_load_artifact_rejects_other_files(tmp_path):
    p = tmp_path / "x.pt"
    torch.save({"a": torch.zeros(1)}, p)
    with pytest.raises(QuantbenchError, match="not a quantbench artifact"):
        quantbench.load_artifact(p)
    p.write_bytes(b"junk")
    with pytest.raises(QuantbenchError, match="not a quantbench artifact"):
        quantbench.load_artifact(p)
    with pytest.raises(QuantbenchError, match="does not exist"):
        quantbench.load_artifact(tmp_path / "missing.pt")


@pytest.mark.slow
def test_pt2e_artifact_is_a_pt2_program(tmp_path, capsys):
    out = tmp_path / "m.pt2"
    args = ["quantize", "squeezenet", "--recipe", "pt2e-static-int8", "--calib-batches", "1"]
    assert main([*args, "--output", str(tmp_path / "m.pt")]) == 2
    assert "writes a .pt2 file" in capsys.readouterr().err
    assert main([*args, "--output", str(out)]) == 0
    ref = load_model("squeezenet")
    x = ref.make_inputs(2, 64, seed=4)
    with torch.inference_mode():
        y_ref = ref.module(*x)
        # plain torch runs the file: no quantbench code is needed to load it
        y_plain = torch.export.load(str(out)).module()(*x)
        # compiled with freezing, as measured; a .pt2 file unpickles: this one is ours
        y = quantbench.load_artifact(out, trust_code=True)(*x)
    for got in (y_plain, y):
        cos = torch.nn.functional.cosine_similarity(got, y_ref).mean()
        assert got.shape == y_ref.shape and cos > 0.98


@pytest.mark.parametrize(
    "recipe, name, said",
    [
        ("dynamic-int8", "m.onnx", "a quantbench artifact (a torch checkpoint), not an ONNX model"),
        ("dynamic-int8", "m.pt2", "not a .pt2 program"),
        ("ort-dynamic-int8", "m.pt", "writes a .onnx file: name the output *.onnx"),
    ],
)
def test_quantize_refuses_a_name_that_says_another_format(tmp_path, capsys, recipe, name, said):
    """load_artifact reads a file as its extension says: quantize never writes a file under
    a name it would not load back (a checkpoint named .onnx once shipped unloadable)."""
    out = tmp_path / name
    assert main(["quantize", "squeezenet", "--recipe", recipe, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_every_format_is_one_entry_and_one_module():
    from quantbench.artifacts.formats import FORMATS, format_for_path, get_format
    from quantbench.recipes import list_recipes

    for fmt in FORMATS.values():
        assert callable(fmt.impl().load) and fmt.extension.startswith(".") and fmt.what
        assert format_for_path(f"model{fmt.extension}") is fmt
    extensions = [e for f in FORMATS.values() for e in f.extensions]
    assert len(set(extensions)) == len(extensions)  # a file's name says one format
    assert format_for_path("weights.pth").name == "state_dict"  # the one written under any name
    assert [f.name for f in FORMATS.values() if f.any_name] == ["state_dict"]
    assert {r.file_format for r in list_recipes()} <= set(FORMATS)
    with pytest.raises(QuantbenchError, match="unknown file format 'tflite'.*onnx"):
        get_format("tflite")
    # whether loading runs code (and needs trust_code) is the format's fact
    trust = {
        n: (f.needs_trust("resnet18"), f.needs_trust("py:m.py:Net")) for n, f in FORMATS.items()
    }
    assert trust["onnx"] == (None, None)
    assert trust["pt2"][0] is not None and trust["pt2"][1] is not None
    assert trust["state_dict"][0] is None and "source" in trust["state_dict"][1]


def test_a_format_with_companion_files_ships_them_whole(tmp_path):
    """OpenVINO's IR is an .xml and a .bin: a format's companions are copied, sized and
    hashed with the file a user names, and a name with the wrong extension writes nothing."""
    import hashlib

    from quantbench.artifacts.formats import FORMATS
    from quantbench.artifacts.names import sha256_of
    from quantbench.artifacts.write import check_name, save_artifact
    from quantbench.recipes import Artifact

    # no write() in the module: the file the recipe wrote is copied
    fmt = FORMATS["openvino-ir"]
    made = tmp_path / "made" / "model.xml"
    made.parent.mkdir()
    made.write_text("<net/>")
    made.with_suffix(".bin").write_bytes(bytes(100))
    art = Artifact("ir-int8", None, file=str(made))
    ship = tmp_path / "ship"
    ship.mkdir()
    assert save_artifact(art, ship / "m.xml", {}, fmt) == 6 + 100
    assert (ship / "m.xml").read_text() == "<net/>"
    assert (ship / "m.bin").read_bytes() == bytes(100)
    whole = hashlib.sha256(b"<net/>" + bytes(100)).hexdigest()
    assert sha256_of(fmt.files(ship / "m.xml")) == whole
    assert sha256_of(ship / "m.xml") == hashlib.sha256(b"<net/>").hexdigest()
    with pytest.raises(QuantbenchError, match=r"writes a \.xml file: name the output \*\.xml"):
        save_artifact(art, ship / "n.onnx", {}, fmt)
    assert sorted(p.name for p in ship.iterdir()) == ["m.bin", "m.xml"]
    # a companion is not the artifact: load_artifact names the file to load, and no
    # other format may be written under the companion's name
    with pytest.raises(
        QuantbenchError, match=r"'.*m\.bin' is part of an OpenVINO IR \(\.xml\): load its \.xml"
    ):
        quantbench.load_artifact(ship / "m.bin")
    with pytest.raises(
        QuantbenchError, match=r"not an OpenVINO IR \(\.xml\): name the output \*\.pt"
    ):
        check_name(ship / "x.bin", FORMATS["state_dict"], "dynamic-int8")
