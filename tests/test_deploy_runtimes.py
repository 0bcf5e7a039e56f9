"""ExecuTorch and OpenVINO recipes as a run sees them, without building a program: listed
without importing their libraries, ``unsupported`` naming the extra when the library is
missing, and each recipe's speedup also taken against its own runtime's fp32."""

from __future__ import annotations

import json

import pytest

from deploy_models import LIBRARIES, env_without, python, tiny_cnn_model
from quantbench.best import recommend, speedup_text
from quantbench.recipes import get_recipe, list_recipes, runtime_baseline
from quantbench.recipes.support import availability
from quantbench.results import CellResult, Fidelity, LatencyPoint, Speedup, Stats

ET = ("et-fp32", "et-int8")
OV = ("ov-fp32", "ov-int8", "ov-int8-weight-only", "ov-int4-weight-only")


def test_the_recipes_are_registered_for_the_cpu_with_their_files_and_baselines():
    names = [r.name for r in list_recipes()]
    for name in ET + OV:
        r = get_recipe(name)
        assert name in names and r.devices == ("cpu",)
        assert r.file_format == ("pte" if name in ET else "openvino-ir")
        assert availability(r, "cpu") is None  # installed here (the test extra)
    assert get_recipe("et-int8").baseline == "et-fp32"
    assert {get_recipe(n).baseline for n in OV[1:]} == {"ov-fp32"}
    assert get_recipe("ov-int4-weight-only").families == ("text",)
    assert get_recipe("et-int8").float_layers and get_recipe("ov-int8").float_layers


@pytest.mark.slow  # seconds of real runs: the everyday suite stays under 5 minutes
def test_listing_imports_none_of_the_libraries_and_a_missing_one_is_an_unsupported_cell(
    tmp_path,
):
    """One fresh process: ``list recipes`` and ``--help`` import none of executorch,
    openvino, nncf (ExecuTorch alone takes 10+ s to import); then, with the three made
    unimportable (as on a machine without the extras; a ``sitecustomize`` on PYTHONPATH
    reaches the run's worker processes too), the recipes are listed as unavailable and a
    run's cells are ``unsupported`` with the pip line that installs them."""
    site = tmp_path / "site"
    env_without(site, LIBRARIES)  # writes site/sitecustomize.py
    model = tiny_cnn_model(tmp_path)
    (tmp_path / "m.pte").write_bytes(b"\0" * 64)
    (tmp_path / "m.xml").write_text("<?xml version='1.0'?><net/>")
    (tmp_path / "m.bin").write_bytes(b"\0" * 64)
    code = f"""
import json, os, sys
from quantbench.cli import main
main(["list", "recipes"])
try:
    main(["--help"])
except SystemExit:
    pass
print("LOADED", sorted({{m.split(".")[0] for m in sys.modules}} & {set(LIBRARIES)!r}))
for name in {LIBRARIES!r}:
    sys.modules[name] = None
os.environ["PYTHONPATH"] = os.pathsep.join([{str(site)!r}, os.environ["PYTHONPATH"]])
from quantbench.recipes import get_recipe
from quantbench.recipes.support import availability
print("AVAIL", json.dumps({{n: availability(get_recipe(n), "cpu") for n in ("et-int8", "ov-int8")}}))
from quantbench import load_artifact
from quantbench.errors import QuantbenchError
for name in ("m.pte", "m.xml"):
    try:
        load_artifact({str(tmp_path)!r} + "/" + name)
    except QuantbenchError as e:
        print("LOAD", e)
main(["run", "--models", {model!r}, "--recipes", "et-int8,ov-fp32", "--measure", "size",
      "--image-sizes", "32", "--batch-sizes", "1", "--calib-batches", "1",
      "--out", {str(tmp_path / "run")!r}])
"""
    out = python(code)
    assert "et-int8" in out and "ov-int4-weight-only" in out
    assert "LOADED []" in out.splitlines()
    avail = json.loads(out.split("AVAIL ", 1)[1].splitlines()[0])
    assert avail["et-int8"] == "missing package: executorch (pip install 'quantbench[executorch]')"
    assert avail["ov-int8"] == (
        "missing package: openvino, nncf (pip install 'quantbench[openvino]')"
    )
    # a shipped file of theirs: one line naming what to install
    assert [ln for ln in out.splitlines() if ln.startswith("LOAD ")] == [
        "LOAD loading .pte artifacts needs ExecuTorch: executorch is not installed: "
        "pip install 'quantbench[executorch]'",
        "LOAD loading OpenVINO IR artifacts needs OpenVINO: openvino and nncf not installed: "
        "pip install 'quantbench[openvino]'",
    ]
    cells = json.loads((tmp_path / "run" / "results.json").read_text())["results"]
    by = {c["recipe"]: c for c in cells}
    assert by["fp32"]["status"] == "ok"
    assert by["et-int8"]["status"] == "unsupported"
    assert by["et-int8"]["error"] == (
        "executorch is not installed: pip install 'quantbench[executorch]'"
    )
    assert by["ov-fp32"]["status"] == "unsupported"
    assert "pip install 'quantbench[openvino]'" in by["ov-fp32"]["error"]


def test_runtime_baselines_of_variants():
    assert runtime_baseline("et-int8") == "et-fp32"
    assert runtime_baseline("ov-int4-weight-only") == "ov-fp32"
    assert runtime_baseline("ort-static-int8+fallback") == "ort-fp32"
    assert runtime_baseline("ort-int4-weight-only") == "ort-fp32"
    assert runtime_baseline("static-int8+compile") == "fp32+compile"
    # torch's fp32 is every cell's speedup already; a baseline is not its own
    for name in ("static-int8", "ort-fp32", "et-fp32", "fp32", "fp32+compile", "no-such"):
        assert runtime_baseline(name) is None


def _point(median: float, speedup: float, runtime: float | None = None) -> LatencyPoint:
    stats = Stats(median, 0.0, median, median, median, median, 10, median, median, "stable")
    sp = Speedup(speedup, speedup, speedup, 10)
    rt = Speedup(runtime, runtime, runtime, 10) if runtime is not None else None
    return LatencyPoint(1, 224, "batch_size", "ms", stats, [median] * 10, sp, runtime_speedup=rt)


def test_the_recommendation_quotes_both_speedups_and_results_keep_them():
    fp32 = CellResult(model="m", recipe="fp32", family="vision", size_bytes=100)
    fp32.latency = [_point(10.0, 1.0)]
    et = CellResult(model="m", recipe="et-int8", family="vision", size_bytes=30)
    et.latency = [_point(4.0, 2.5, 2.0)]
    et.details["runtime_baseline"] = "et-fp32"
    et.fidelity = Fidelity(cosine=0.999, max_abs_err=0.01)
    again = CellResult.from_dict(json.loads(json.dumps(et.to_dict())))
    assert again.latency[0].runtime_speedup.median == pytest.approx(2.0)
    # a point without it stores no key: older results read as they were written
    assert "runtime_speedup" not in fp32.to_dict()["latency"][0]
    rec = recommend([fp32, again])["m"]
    assert rec.fastest.recipe == "et-int8"
    assert (rec.fastest.runtime_baseline, rec.fastest.runtime_speedup) == ("et-fp32", 2.0)
    assert speedup_text(rec.fastest.__dict__) == "2.50x; 2.00x vs et-fp32"


@pytest.mark.slow
def test_a_run_times_each_runtime_against_its_own_fp32_and_ships_its_files(tmp_path):
    """A real run of both libraries' recipes: every cell ok, int8 speedups taken against
    torch's fp32 and against their own runtime's, and --save-artifacts writes the very
    files that were sized (.pte; .xml with its .bin)."""
    from quantbench.cli import main

    out = tmp_path / "run"
    code = main([
        "run", "--models", tiny_cnn_model(tmp_path), "--out", str(out),
        "--recipes", "et-fp32,et-int8,ov-fp32,ov-int8", "--save-artifacts", "--threads", "1",
        "--image-sizes", "32", "--batch-sizes", "1,2", "--ref-image-size", "32",
        "--min-runs", "3", "--warmup", "1", "--calib-batches", "2", "--calib-batch-size", "2",
    ])  # fmt: skip
    assert code == 0
    cells = {c["recipe"]: c for c in json.loads((out / "results.json").read_text())["results"]}
    assert {r: c["status"] for r, c in cells.items()} == dict.fromkeys(
        ["fp32", "et-fp32", "et-int8", "ov-fp32", "ov-int8"], "ok"
    )
    for recipe, own in (("et-int8", "et-fp32"), ("ov-int8", "ov-fp32")):
        cell = cells[recipe]
        assert cell["details"]["runtime_baseline"] == own
        assert cell["details"]["threads"] == 1
        points = cell["latency"]
        assert [(p["batch_size"], p["input_size"]) for p in points] == [(1, 32), (2, 32)]
        for p in points:
            assert p["speedup"]["median"] > 0 and p["runtime_speedup"]["median"] > 0
            assert p["runtime_speedup"]["n"] == p["n"]
        saved = cell["details"]["artifact"]
        path = out / saved["path"]
        files = [path] + ([path.with_suffix(".bin")] if recipe.startswith("ov") else [])
        assert saved["bytes"] == sum(f.stat().st_size for f in files) == cell["size_bytes"]
    for base in ("et-fp32", "ov-fp32"):
        assert "runtime_baseline" not in cells[base]["details"]
        assert all("runtime_speedup" not in p for p in cells[base]["latency"])


def test_the_benchmark_table_shows_runtime_and_quantization_apart():
    from conftest import load_script

    bench = load_script("benchmarks/deploy_runtimes.py", "deploy_runtimes_bench")

    def cell(recipe, ms, speedup, size, cos, runtime=None, own=None, **kw):
        c = CellResult(model="resnet18", recipe=recipe, family="vision", size_bytes=size, **kw)
        if ms is not None:
            c.latency = [_point(ms, speedup, runtime)]
        if own:
            c.details["runtime_baseline"] = own
        c.fidelity = Fidelity(cosine=cos, max_abs_err=0.1, top1_agreement=1.0)
        return c

    mib = 2**20
    cells = [
        cell("fp32", 40.0, 1.0, 44 * mib, 1.0),
        cell("ort-fp32", 30.0, 1.33, 44 * mib, 1.0),
        cell("ort-dynamic-int8", 35.0, 1.14, 11 * mib, 0.95, 0.86, "ort-fp32"),  # misses the bar
        cell("ort-static-int8", 15.0, 2.67, 11 * mib, 0.999, 2.0, "ort-fp32"),
        cell("et-fp32", 60.0, 0.67, 44 * mib, 1.0),
        cell("et-int8", 20.0, 2.0, 11 * mib, 0.9998, 3.0, "et-fp32"),
        cell("ov-fp32", None, None, None, 1.0, status="unsupported",
             error="openvino is not installed: pip install 'quantbench[openvino]'"),
    ]  # fmt: skip
    text = "\n".join(bench.table(cells))
    assert (
        "| resnet18 | onnxruntime | ort-static-int8 | 2.67x | 2.00x | 1.33x | 11.00 (0.25) | "
        "0.9990 |" in text
    )
    assert "| resnet18 | executorch | et-int8 | 2.00x | 3.00x | 0.67x | 11.00 (0.25) |" in text
    assert "| resnet18 | openvino | — | not run | | unsupported: openvino is not installed" in text
    assert "| resnet18 | torch fp32 | — | 40.00 ms | | | 44.00 | |" in text
