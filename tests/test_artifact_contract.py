"""One contract for every shipped artifact (issue 23, issue 19 part 3).

Every recipe that applies, on a tiny vision classifier, a tiny text classifier and a tiny
sentence-embedding model (transformers configs), and on a model given as a module: built
as ``run`` builds it -> written as ``quantize`` writes it -> loaded with
``load_artifact`` in a FRESH process -> called by keyword and by position -> equal, within
the cell's recorded fidelity, to what ``run`` measured for that cell on the same inputs.

The cases are drawn from the format registry: a format added to
:data:`quantbench.artifacts.formats.FORMATS` (and recipes that write it) joins both the
everyday subset (one representative recipe per format) and the slow full matrix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from quantbench.artifacts.contract import bind, input_names
from quantbench.artifacts.formats import FORMATS
from quantbench.artifacts.write import write_variant
from quantbench.errors import QuantbenchError
from quantbench.recipes import list_recipes
from quantbench.runner.checks import build_spec
from quantbench.runner.pipeline import build_model
from quantbench.variants import Variant

CHILD = Path(__file__).with_name("artifact_child.py")
SRC = Path(__file__).resolve().parents[1] / "src"


# ------------------------------------------------------------------------------ models


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_bert_dir, tiny_classifier_dir) -> dict[str, str]:
    """Model names by kind: hf: directories, and a module given in memory."""
    import shutil

    from transformers import ViTConfig, ViTForImageClassification

    import quantbench

    torch.manual_seed(0)
    vit = tmp_path_factory.mktemp("tiny-vit")
    cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=2, intermediate_size=64, num_labels=3)  # fmt: skip
    ViTForImageClassification(cfg).save_pretrained(vit)
    sentence = tmp_path_factory.mktemp("tiny-sentence")
    shutil.copytree(tiny_bert_dir, sentence, dirs_exist_ok=True)  # + a mean-pooling head
    (sentence / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]))  # fmt: skip
    (sentence / "1_Pooling").mkdir()
    (sentence / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    cnn = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(8, 4),
    )  # fmt: skip
    own = tmp_path_factory.mktemp("own-tensor")  # a py: model whose inputs its data names
    (own / "two.py").write_text(TWO_INPUTS)
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(own / "rows.npz", feats=rng.standard_normal((16, 8)).astype("float32"),
             extra=rng.integers(0, 5, (16, 4)).astype("int64"))  # fmt: skip
    return {
        "vision": f"hf:{vit}",
        "classifier": f"hf:{tiny_classifier_dir}",
        "sentence": f"hf:{sentence}",
        "memory": quantbench.model(cnn.eval(), name="contract-cnn")["source"],
        "tensor": f"py:{own / 'two.py'}:Two",
        "tensor-data": str(own / "rows.npz"),
    }


TWO_INPUTS = """
import torch


class Two(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(8, 16)
        self.emb = torch.nn.Embedding(5, 16)
        self.out = torch.nn.Linear(16, 3)

    def forward(self, extra, feats):  # not the data's order: called by name
        return self.out(torch.relu(self.a(feats) + self.emb(extra).mean(1)))
"""


def _family(kind: str) -> str:
    return {"classifier": "text", "sentence": "text", "tensor": "tensor"}.get(kind, "vision")


# ------------------------------------------------------------------------------- cases


def _compiles(r) -> bool:
    return r.runtime == "torch-compile" or bool(getattr(r.config, "compile", False))


def _recipes(fmt: str, kind: str) -> list[str]:
    """Every recipe that writes ``fmt`` for a model of ``kind`` (a module given in memory
    ships a ``.pt2`` program for the checkpoint recipes)."""
    family = _family(kind)
    own = "state_dict" if kind == "memory" and fmt == "pt2" else fmt
    if kind == "memory" and fmt == "state_dict":
        return []
    return [r.name for r in list_recipes() if r.file_format == own and family in r.families]


def _representative(fmt: str) -> tuple[str, list[str]]:
    """(model kind, [recipe]) for the everyday subset: the first recipe of the format that
    quantizes and does not compile (compiling a program at its first call takes minutes
    here); the .pt2 format by a module given in memory (pt2e-static-int8 compiles)."""
    if fmt == "pt2":
        return "memory", ["fp32"]
    for kind in ("sentence", "vision"):
        for name in _recipes(fmt, kind):
            r = next(r for r in list_recipes() if r.name == name)
            if "int" in r.precision and not _compiles(r):
                return kind, [name]
    return "sentence", _recipes(fmt, "sentence")[:1]


MATRIX = [
    pytest.param(kind, _recipes(f, kind), f, id=f"{kind}-{f}", marks=pytest.mark.slow)
    for kind in ("vision", "classifier", "sentence", "memory", "tensor")
    for f in FORMATS
    if _recipes(f, kind)
]


# ------------------------------------------------------------------------------- check


def _build(model: str, recipes: list[str], data: str | None = None):
    # torchao recipes built without torch.compile: the same checkpoint (a file built with
    # compile compiles at its first call, minutes each here; the wrappers' keyword
    # passing is checked without compiling by test_compiled_and_half_wrappers_pass_keywords)
    eager = {r: {"compile": False} for r in recipes if r.startswith("torchao-")}
    spec = build_spec(overrides={
        "models": [model], "recipes": sorted(set(["fp32", *recipes])),
        "recipe_options": eager,
        "measure": ["size", "fidelity"], "compile": False, "pin": False, "isolate": False,
        "calib_batches": 2, "calib_batch_size": 2, "fidelity_batch_size": 3,
        "image_sizes": [32], "seq_lens": [12], "save_artifacts": False,
        "calibration": data,
    })  # fmt: skip
    spec.timing.timeout_s = None
    return build_model(spec, spec.target.models[0], lambda message: None)


def _fresh_process(job: dict, tmp: Path) -> dict:
    torch.save(job, tmp / "job.pt")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, str(CHILD), str(tmp / "job.pt"), str(tmp / "out.pt")],
        capture_output=True, text=True, env=env, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return torch.load(tmp / "out.pt", weights_only=True)


def _write(kind: str, recipes: list[str], fmt: str, models: dict, tmp: Path) -> dict:
    """Build ``recipes`` on the ``kind`` model as run does, write each file as quantize
    does; the fresh process's job entries, each with what run measured for its cell."""
    run = _build(models[kind], recipes, models.get(f"{kind}-data"))
    names = input_names(run.lm.module)
    assert names, "the source model names its inputs"
    inputs = tuple(run.fidelity_inputs)
    entries, refused = {}, {}
    for name in recipes:
        v = Variant(name)
        cell = run.cells[v]
        if v not in run.arts:  # the recipe does not apply here: it says why
            assert cell.status == "unsupported" and cell.error, (name, cell.status, cell.error)
            continue
        path = tmp / f"{kind}-{name}{FORMATS[fmt].extension}"
        try:
            record = write_variant(run, v, path)
        except QuantbenchError as e:  # only a module's checkpoint may be refused, in one line
            assert kind == "memory" and "has no portable file" in str(e), str(e)
            assert "\n" not in str(e) and "pt2e-static-int8" in str(e)
            refused[name] = str(e)
            continue
        assert record["format"] == fmt and isinstance(record.get("load_s"), float), record
        with torch.inference_mode():
            measured = run.arts[v].module(*inputs)  # what run measured for this cell
        entries[f"{kind}/{name}"] = {
            "path": str(path), "inputs": list(inputs), "names": list(names),
            "measured": measured,
            # the cell's own distance to fp32 bounds how far the shipped file may drift
            "tol": max(float(cell.fidelity.max_abs_err or 0.0), 1e-4),
        }  # fmt: skip
    if kind == "memory" and fmt == "pt2":  # a module's checkpoint recipes ship .pt2 programs
        assert "fp32" in [k.split("/")[1] for k in entries], refused  # it ships where it can
    return entries


def _check(entries: dict, tmp: Path) -> None:
    """Load every file in one fresh process; both call forms give what run measured."""
    if not entries:
        pytest.skip("no recipe of this format applies to these models here")
    job = {k: {n: e[n] for n in ("path", "inputs", "names")} for k, e in entries.items()}
    out = _fresh_process(job, tmp)
    for key, e in entries.items():
        got, measured = out[key], e["measured"]
        assert "error" not in got, f"{key}: {got.get('error')}"
        for how in ("by_name", "by_position"):
            y = got[how]
            assert isinstance(y, torch.Tensor) and y.shape == measured.shape, (key, how)
            err = float((y.float() - measured.float()).abs().max())
            assert err <= e["tol"], f"{key} {how}: max abs {err:.3g} > {e['tol']:.3g}"
        assert got["load_s"] < 120, (key, got["load_s"])


def test_contract_one_recipe_per_format(models, tmp_path):
    """The everyday subset: one representative recipe per registered format, all loaded
    in one fresh process."""
    entries: dict = {}
    for fmt in FORMATS:
        kind, recipes = _representative(fmt)
        entries.update(_write(kind, recipes, fmt, models, tmp_path))
    # a format whose library is missing here is unsupported (with its reason), not skipped
    assert {".pt", ".pt2"} <= {Path(e["path"]).suffix for e in entries.values()}
    _check(entries, tmp_path)


@pytest.mark.slow  # the matrix's tensor-state_dict case covers the load; this, the record
def test_a_tensor_models_checkpoint_rebuilds_from_its_record(models, tmp_path):
    """A model of your own fed from a .npz (two named inputs, one of them integer ids):
    its static-int8 checkpoint rebuilds from the shapes, dtypes and ranges it records,
    never from its data."""
    entries = _write("tensor", ["static-int8"], "state_dict", models, tmp_path)
    obj = torch.load(entries["tensor/static-int8"]["path"], weights_only=False)
    assert [(r["name"], r["shape"], r["dtype"]) for r in obj["inputs"]] == [
        ("feats", [8], "float32"), ("extra", [4], "int64")]  # fmt: skip
    assert obj["inputs"][1]["low"] >= 0 and obj["inputs"][1]["high"] <= 4
    _check(entries, tmp_path)


@pytest.mark.parametrize("kind, recipes, fmt", MATRIX)
def test_contract_every_recipe(kind, recipes, fmt, models, tmp_path):
    _check(_write(kind, recipes, fmt, models, tmp_path), tmp_path)


# ----------------------------------------------------------------------- binding (fast)


def test_bind_takes_the_source_models_call_forms():
    names = ("input_ids", "attention_mask")
    ids = torch.ones(2, 3, dtype=torch.long)
    mask = torch.zeros_like(ids)
    assert bind(names, (ids, mask), {}) == (ids, mask)
    assert bind(names, (ids,), {"attention_mask": mask})[1] is mask
    assert bind(names, (), {"attention_mask": mask, "input_ids": ids}) == (ids, mask)
    filled = bind(names, (), {"input_ids": ids})[1]  # as transformers: no mask = all ones
    assert torch.equal(filled, torch.ones_like(ids))
    for args, kwargs, said in [
        ((ids, mask, ids), {}, "takes 2 input"),
        ((), {"pixel_values": ids}, "unexpected keyword argument 'pixel_values'"),
        ((ids,), {"input_ids": ids}, "multiple values for argument 'input_ids'"),
        ((), {}, "missing input(s): input_ids"),
    ]:
        with pytest.raises(TypeError, match=said.replace("(", r"\(").replace(")", r"\)")):
            bind(names, args, kwargs)


def test_compiled_and_half_wrappers_pass_keywords():
    """The class of issue 23's ``CompiledModule.forward() got an unexpected keyword
    argument``: every wrapper quantbench puts around a model passes keywords through."""
    from quantbench.recipes.compile import _compiled_class
    from quantbench.recipes.half import _cast_class

    class Two(torch.nn.Module):
        def forward(self, a, b=None):
            return a if b is None else a + b

    a, b = torch.ones(2), torch.full((2,), 2.0)
    compiled = _compiled_class()(Two(), {})  # its call path, without compiling anything
    assert torch.equal(compiled(a, b=b), a + b) and torch.equal(compiled(a=a), a)
    half = _cast_class()(Two(), torch.bfloat16)
    assert torch.equal(half(a, b=b), a + b)


def test_a_modules_artifact_is_portable_or_refused_in_one_line(tmp_path):
    """A model given as a module has no class another process could rebuild: its
    checkpoint recipes ship a .pt2 program, or are refused saying why and what ships."""
    import quantbench

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    net = quantbench.model(mlp.eval(), name="contract-mlp", make_inputs=_rows)
    with pytest.raises(QuantbenchError, match=r"writes a \.pt2 file: name the output \*\.pt2"):
        quantbench.quantize(net, "fp32", tmp_path / "m.pt")
    with pytest.raises(QuantbenchError) as e:
        quantbench.quantize(net, "dynamic-int8", tmp_path / "m.pt2")
    said = str(e.value)
    assert "dynamic-int8 of in-memory model 'contract-mlp' has no portable file" in said
    assert "\n" not in said and "ort-* (.onnx)" in said and "pt2e-static-int8 (.pt2)" in said
    assert not list(tmp_path.iterdir())  # nothing half-written


def _rows(batch_size: int, input_size: int, seed: int = 0) -> tuple:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch_size, 8, generator=g),)
