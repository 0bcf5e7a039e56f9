"""ExecuTorch recipes on a tiny CNN and a tiny BERT (hidden 64): lowered to XNNPACK,
checked against the graph they came from, run in ExecuTorch's runtime on the run's
threads, sized as the .pte file, close to fp32, with the delegated share recorded;
layers kept float; shipped programs that load in a fresh process to the same outputs.

Lowering takes 10-60 s per program on a small machine (ExecuTorch's import alone takes
10+ s): every test here is slow."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch

from deploy_models import SRC, python, tiny_bert64, tiny_cnn_model
from quantbench import models as zoo
from quantbench.errors import QuantbenchError
from quantbench.measure import fidelity
from quantbench.recipes import QuantContext, apply_recipe

pytestmark = pytest.mark.slow


def _ctx(m, size, float_layers=()):
    calib = [m.make_inputs(2, size, seed=100 + i) for i in range(3)]
    return QuantContext("x86", calib, float_layers=frozenset(float_layers))


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    return zoo.load_model(tiny_cnn_model(tmp_path_factory.mktemp("cnn")))


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return zoo.load_model(f"hf:{tiny_bert64(tmp_path_factory.mktemp('bert64'))}")


@pytest.fixture(scope="module")
def arts():
    cache: dict = {}

    def get(model, recipe, size):
        key = (model.name, recipe)
        if key not in cache:
            cache[key] = apply_recipe(recipe, model, _ctx(model, size))
        return cache[key]

    return get


def _cosine(model, art, x):
    with torch.inference_mode():
        return fidelity.compare(model.module(*x), art.module(*x), is_classifier=False).cosine


def _check_pte(art, recipe):
    assert art.runtime == "executorch" and art.recipe == recipe
    assert str(art.file).endswith(".pte")
    assert art.size_bytes == os.path.getsize(art.file)  # the program is the file
    d = art.details
    assert d["threads"] == torch.get_num_threads() and d["backend"] == "XNNPACK"
    assert d["program_check"]["cosine"] > 0.99
    share = d["delegation"]
    assert share["subgraphs"] >= 1 and 0 < share["share"] <= 1
    assert share["delegated_nodes"] > 0


@pytest.mark.parametrize("recipe", ["et-fp32", "et-int8"])
def test_et_recipe_on_vision(cnn, arts, recipe):
    art = arts(cnn, recipe, 32)
    _check_pte(art, recipe)
    # a static image program: XNNPACK takes all of it
    assert art.details["delegation"]["share"] == 1.0
    assert art.details["delegation"]["non_delegated_nodes"] == 0
    assert "XNNPACK runs 100% of the graph's nodes in 1 subgraph(s)" in art.notes
    assert art.details["input_bounds"] == [[1, 3, 32, 32]]
    # a batch runs as that many calls of the batch-1 program
    for b in (1, 3):
        cos = _cosine(cnn, art, cnn.make_inputs(b, 32, seed=7))
        assert cos > (0.9999 if recipe == "et-fp32" else 0.99)
    if recipe == "et-fp32":
        assert art.quantized_modules == {} and art.int8_param_fraction == 0.0
        assert art.float_modules == {"BatchNorm": 2, "Conv2d": 2, "Linear": 1}
    else:
        assert art.quantized_modules == {"Conv2d (int8 static)": 2, "Linear (int8 static)": 1}
        assert art.int8_param_fraction == 1.0 and art.details["mode"] == "static"
        assert art.size_bytes < arts(cnn, "et-fp32", 32).size_bytes
    with pytest.raises(QuantbenchError, match=r"outside what the .pte was exported for \(3x32x32"):
        art.module(*cnn.make_inputs(1, 48))


@pytest.mark.parametrize("recipe", ["et-fp32", "et-int8"])
def test_et_recipe_on_text(bert, arts, recipe):
    art = arts(bert, recipe, 16)
    _check_pte(art, recipe)
    # sequence length is dynamic up to the model's limit; the mask building is not
    # XNNPACK's: the share and the note say so
    assert art.details["input_bounds"] == [[1, 64], [1, 64]]
    assert art.details["delegation"]["share"] < 1
    assert any("runs on ExecuTorch's portable kernels" in n for n in art.notes)
    for b, s in [(2, 24), (1, 9), (1, 64)]:
        ids, mask = bert.make_inputs(b, s, seed=7)
        mask[0, s - s // 3 :] = 0
        assert _cosine(bert, art, (ids, mask)) > 0.999
    if recipe == "et-int8":  # transformers: XNNPACK's dynamic (QD8) int8
        assert art.details["mode"] == "dynamic"
        assert art.quantized_modules == {"Linear (int8 dynamic)": 12}
        assert art.size_bytes < 0.6 * arts(bert, "et-fp32", 16).size_bytes
    with pytest.raises(QuantbenchError, match="sequences of up to 64 tokens"):
        art.module(*bert.make_inputs(1, 65))


def test_the_runs_threads_size_the_thread_pool(cnn, arts):
    from executorch.extension.pybindings import portable_lib

    from quantbench.recipes.executorch.runtime import EtModule

    path = arts(cnn, "et-int8", 32).file
    for n in (1, 2):
        m = EtModule(path, threads=n)
        assert m.threads == n == portable_lib._threadpool_get_thread_count()
        assert m(*cnn.make_inputs(1, 32)).shape == (1, 10)
    EtModule(path)  # back to torch's threads for the tests after this one
    assert portable_lib._threadpool_get_thread_count() == torch.get_num_threads()


def test_chosen_layers_stay_float(cnn):
    art = apply_recipe("et-int8", cnn, _ctx(cnn, 32, ["fc"]))
    assert art.quantized_modules == {"Conv2d (int8 static)": 2}
    assert art.float_modules == {"Linear": 1}
    with pytest.raises(QuantbenchError, match="no layer named nope"):
        apply_recipe("et-int8", cnn, _ctx(cnn, 32, ["nope"]))


def test_quantize_ships_a_pte_that_loads_in_a_fresh_process(tmp_path, cnn):
    model = tiny_cnn_model(tmp_path)
    pte = tmp_path / "tiny-int8.pte"
    env = {**os.environ, "PYTHONPATH": SRC}
    cmd = [sys.executable, "-m", "quantbench.cli", "quantize", model, "--recipe", "et-int8",
           "--calib-batches", "2"]  # fmt: skip
    done = subprocess.run([*cmd, "-o", str(tmp_path / "x.onnx")], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 2 and "writes a .pte file: name the output *.pte" in done.stderr
    done = subprocess.run([*cmd, "-o", str(pte)], env=env, capture_output=True, text=True,
                          timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{pte.stat().st_size} bytes, et-int8, runtime executorch" in done.stdout
    x = cnn.make_inputs(3, 224, seed=5)
    torch.save(x, tmp_path / "x.pt")
    code = f"""
import json, torch
from quantbench.artifacts import load_artifact
from quantbench.measure import fidelity
from quantbench import models as zoo
m = load_artifact({str(pte)!r})
x = torch.load({str(tmp_path / "x.pt")!r})
a, b = m(*x), load_artifact({str(pte)!r})(*x)
ref = zoo.load_model({model!r}).module(*x)
print(json.dumps({{"shape": list(a.shape), "same": bool(torch.equal(a, b)), "threads": m.threads,
                  "torch_threads": torch.get_num_threads(),
                  "cosine": fidelity.compare(ref, a, True).cosine}}))
"""
    out = json.loads(python(code).strip().splitlines()[-1])
    assert out["shape"] == [3, 10] and out["same"] and out["cosine"] > 0.99
    assert out["threads"] == out["torch_threads"]  # the loading process's own thread count


def test_files_that_are_not_a_program_are_refused_in_one_line(tmp_path):
    from quantbench.artifacts import load_artifact

    cases = {
        "text.pte": (b"not a program at all", "is not an ExecuTorch program (.pte): it is text"),
        "empty.pte": (b"", "the file is empty"),
        "fake.pte": (b"\0\0\0\0ET12" + b"\1" * 64, "does not load in ExecuTorch"),
    }
    for name, (data, said) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(QuantbenchError, match=re.escape(said)):
            load_artifact(tmp_path / name)
