"""--device cpu|cuda|auto, the support matrix (recipe x device x family), the GPU in the
fingerprint and doctor, and CUDA timing. Without a GPU the CUDA tests skip; every test
whose name holds "cuda" is what `benchmarks/gpu_check.py` runs on a GPU machine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from conftest import fast_overrides
from quantbench.cli import main
from quantbench.device import NO_CUDA, gpu_text, resolve_device
from quantbench.errors import QuantbenchError, UnsupportedError
from quantbench.measure.latency import TimingPolicy, cuda_timer, time_interleaved, timer_for
from quantbench.recipes import QuantContext, build, get_recipe, list_recipes
from quantbench.recipes.support import (
    NO_GPU,
    availability,
    device_support,
    matrix,
    matrix_markdown,
)
from quantbench.runner.checks import build_spec

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
no_gpu_here = pytest.mark.skipif(HAS_CUDA, reason="checks the machine-without-a-GPU path")
README = Path(__file__).parent.parent / "README.md"


# --------------------------------------------------------------------------- settings


def test_device_defaults_to_cpu_and_auto_resolves_once():
    assert build_spec(overrides={"models": "resnet18"}).target.device == "cpu"
    spec = build_spec(overrides={"models": "resnet18", "device": "auto"})
    assert spec.target.device == ("cuda" if HAS_CUDA else "cpu")  # stored resolved, never "auto"
    assert spec.to_dict()["device"] == spec.target.device


@no_gpu_here
def test_device_cuda_without_gpu_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(QuantbenchError, match=re.escape(NO_CUDA)):
        resolve_device("cuda")
    out = tmp_path / "o"
    assert main(["run", "--models", "resnet18", "--device", "cuda", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"quantbench: error: {NO_CUDA}"]
    assert not out.exists()


def test_unknown_device_names_the_valid_ones(capsys):
    assert main(["run", "--models", "resnet18", "--device", "tpu"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "unknown device 'tpu'" in line and "auto, cpu, cuda" in line


# --------------------------------------------------------------------------- per cell


def test_cpu_only_recipes_say_so_on_cuda():
    for name in ("dynamic-int8", "static-int8", "qat-int8", "pt2e-static-int8"):
        assert device_support(get_recipe(name), "cuda") == "CPU-only recipe: runs on cpu"
    for r in list_recipes():
        assert device_support(r, "cpu") is None, r.name  # every recipe runs on the CPU


def test_cuda_capable_recipes_need_a_gpu(monkeypatch):
    import quantbench.device as dev

    gpu_ok = ["fp32", "fp16", "bf16", "torchao-int8-dynamic", "torchao-int8-weight-only"]
    monkeypatch.setattr(dev, "cuda_available", lambda: False)
    for name in gpu_ok:
        assert device_support(get_recipe(name), "cuda") == NO_GPU
    monkeypatch.setattr(dev, "cuda_available", lambda: True)
    for name in gpu_ok:
        assert device_support(get_recipe(name), "cuda") is None, name


def test_ort_on_cuda_needs_the_cuda_provider(monkeypatch):
    import onnxruntime

    import quantbench.device as dev

    monkeypatch.setattr(dev, "cuda_available", lambda: True)
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    why = device_support(get_recipe("ort-dynamic-int8"), "cuda")
    assert "no CUDAExecutionProvider" in why and "onnxruntime-gpu" in why
    monkeypatch.setattr(
        onnxruntime, "get_available_providers",
        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
    )  # fmt: skip
    assert device_support(get_recipe("ort-dynamic-int8"), "cuda") is None


def test_build_refuses_a_cpu_only_recipe_on_cuda_before_applying(monkeypatch):
    recipe = get_recipe("dynamic-int8")
    with pytest.raises(UnsupportedError, match="CPU-only recipe: runs on cpu"):
        build(recipe, object(), QuantContext("x86", device="cuda"))  # never reaches apply


def test_pipeline_makes_cpu_only_cells_unsupported_on_cuda(tmp_path):
    """The run's quantize stage on a cuda context: every cell unsupported with its reason
    (no GPU is touched: the decision is made before a recipe is applied)."""
    from quantbench.runner import pipeline
    from quantbench.variants import Variant

    spec = build_spec(overrides=fast_overrides(
        models=["tv:squeezenet1_1"], recipes=["dynamic-int8"], measure=["size"],
        isolate=False, out=str(tmp_path / "o"),
    ))  # fmt: skip
    run = pipeline.ModelRun(spec, spec.target.models[0], lambda m: None)
    pipeline.load(run)
    run.qctx.device = "cuda"
    run.variants = [Variant("dynamic-int8"), Variant("dynamic-int8").with_transform("compile")]
    if not HAS_CUDA:
        run.variants.insert(0, pipeline.FP32)
    pipeline.quantize(run)
    cells = {c.recipe: c for c in run.cells.values()}
    for name in ("dynamic-int8", "dynamic-int8+compile"):
        assert cells[name].status == "unsupported"
        assert cells[name].error == "CPU-only recipe: runs on cpu"
        assert cells[name].details["device"] == "cuda"
    if not HAS_CUDA:
        assert cells["fp32"].status == "unsupported" and cells["fp32"].error == NO_GPU


def test_ort_module_refuses_cuda_without_the_provider(tmp_path):
    from quantbench.recipes.onnx import OrtModule

    path = tmp_path / "m.onnx"
    torch.onnx.export(torch.nn.Linear(4, 2), (torch.randn(1, 4),), str(path), dynamo=False)
    m = OrtModule(path)
    assert m.to_device("cpu") is m and m.provider == "CPUExecutionProvider"
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(UnsupportedError, match="no CUDAExecutionProvider"):
            m.to_device("cuda")


# --------------------------------------------------------------------------- matrix


def test_every_recipe_has_a_row_a_device_declaration_and_reasons():
    rows = {row["name"]: row for row in matrix(list_recipes())}
    assert set(rows) == {r.name for r in list_recipes()}
    for name, row in rows.items():
        assert row["devices"] and set(row["devices"]) <= {"cpu", "cuda"}, name
        assert row["families"] and set(row["families"]) <= {"vision", "text", "tensor"}, name
        for device, why in row["here"].items():
            assert why is None or (isinstance(why, str) and why.strip()), (name, device)
    assert rows["static-int8"]["families"] == ("vision", "tensor")  # FX traces no transformers
    assert rows["ort-fp32"]["devices"] == ("cpu", "cuda")  # derived from the library
    assert rows["dynamic-int8"]["devices"] == ("cpu",)


@no_gpu_here
def test_matrix_says_no_gpu_for_cuda_here():
    for row in matrix(list_recipes()):
        why = row["here"]["cuda"]
        assert why is not None
        if "cuda" in row["devices"]:
            assert why.startswith(NO_GPU), row["name"]
        else:
            assert why == "CPU-only recipe: runs on cpu"


def test_a_missing_package_is_listed_with_the_reason(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import blocked
    why = availability(get_recipe("ort-fp32"), "cpu")
    assert why.startswith("missing package: onnxruntime")


def test_a_recipe_probe_gives_the_reason():
    # torchao 0.18 has no CPU int4 kernel: listed, unavailable, with torchao's own reason
    why = availability(get_recipe("torchao-int4-weight-only"), "cpu")
    assert why is None or "int4" in why


def test_list_recipes_shows_devices_and_families(capsys):
    assert main(["list", "recipes"]) == 0
    plain = capsys.readouterr().out
    assert main(["list", "recipes", "--check"]) == 0
    out = capsys.readouterr().out
    for r in list_recipes():
        assert re.search(rf"^{re.escape(r.name)}\s", out, re.MULTILINE), r.name
        # the declared facts are the same with or without the check of this machine
        assert f"runs on {', '.join(r.devices)}" in plain, r.name
    assert out.count("\n" + " " * 42 + "cpu: ") == len(list_recipes())
    assert out.count("\n" + " " * 42 + "cuda: ") == len(list_recipes())
    assert "\n" + " " * 42 + "cpu: " not in plain  # the plain listing probes nothing
    assert "models vision, tensor;" in out  # static-int8: not transformers (FX tracing)


def test_list_recipes_markdown_is_the_readme_table(capsys):
    assert main(["list", "recipes", "--markdown"]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert table[0].startswith("| recipe | runtime | vision | text | runs on |")
    assert len(table) == 2 + len(list_recipes())
    # The README embeds this command's output: the machine-independent columns
    # (recipe, runtime, families, declared devices) must match what the code declares.
    lines = README.read_text().splitlines()
    start = lines.index(table[0])  # the README's copy of the table
    readme = lines[start + 2 : start + 2 + len(table) - 2]
    readme_rows = {line.split(" | ")[0]: line.split(" | ")[:5] for line in readme}
    for line in table[2:]:
        key = line.split(" | ")[0]
        assert readme_rows.get(key) == line.split(" | ")[:5], f"README row for {key} is stale"


def test_matrix_markdown_escapes_pipes():
    rows = [{"name": "x", "runtime": "r", "families": ("text",), "devices": ("cpu",),
             "here": {"cpu": "a | b", "cuda": None}}]  # fmt: skip
    (line,) = matrix_markdown(rows).splitlines()[2:]
    assert line == "| `x` | r | no | yes | cpu | no: a \\| b | yes |"


# --------------------------------------------------------------------------- fingerprint


def test_fingerprint_has_a_gpu_entry():
    from quantbench import env

    host = env.host()
    assert "gpu" in host
    if HAS_CUDA:
        assert host["gpu"]["name"] and host["gpu"]["capability"]
    else:
        assert host["gpu"] is None and gpu_text(None) == "none"


def test_gpu_text_and_driver_fallback(monkeypatch):
    import quantbench.device as dev

    gpu = {"name": "NVIDIA H200", "capability": "9.0", "memory_bytes": 141 * 2**30,
           "count": 1, "cuda_runtime": "13.0", "driver": "570.86"}  # fmt: skip
    assert gpu_text(gpu) == (
        "NVIDIA H200: compute capability 9.0, 141.0 GiB, driver 570.86, CUDA runtime 13.0"
    )
    assert gpu_text({"error": "RuntimeError: bad"}) == "not readable (RuntimeError: bad)"
    monkeypatch.setattr(dev.shutil, "which", lambda name: None)  # no nvidia-smi
    monkeypatch.setattr(dev, "_cuda_driver_api", lambda: "CUDA driver API 12.8")
    assert dev.driver_version() == "CUDA driver API 12.8"


def test_gpu_info_reads_torch_device_properties(monkeypatch):
    import types

    import quantbench.device as dev

    props = types.SimpleNamespace(name="Fake GPU", major=8, minor=6, total_memory=8 * 2**30)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(dev, "driver_version", lambda: "550.1")
    info = dev.gpu_info()
    assert info == {"name": "Fake GPU", "capability": "8.6", "memory_bytes": 8 * 2**30,
                    "count": 2, "cuda_runtime": torch.version.cuda, "driver": "550.1"}  # fmt: skip


def test_doctor_prints_the_gpu(capsys):
    assert main(["doctor", "--seconds", "0.1"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("gpu:"))
    if HAS_CUDA:
        assert "compute capability" in line
    else:
        assert line.split()[1] == "none"


def test_report_names_the_device_and_gpu():
    from quantbench.report.context import ReportContext
    from quantbench.report.sections.environment import environment

    run = {"id": "r", "device": "cuda", "host": {"cpu": "x", "gpu": {"name": "G",
           "capability": "9.0", "memory_bytes": 2**30, "cuda_runtime": "13.0",
           "driver": "1"}}}  # fmt: skip
    text = "\n".join(environment(ReportContext(run=run, results=[])))
    assert "- **Device:** `cuda`" in text and "- **GPU:** G: compute capability 9.0" in text
    old = "\n".join(environment(ReportContext(run={"id": "r", "host": {}}, results=[])))
    assert "- **Device:** `cpu`" in old  # runs from before --device ran on the CPU


# --------------------------------------------------------------------------- timing


def test_cpu_timing_path_is_the_host_clock():
    assert timer_for("cpu") is None
    ticks = iter(range(10_000))
    samples = time_interleaved(
        {"a": lambda: None}, TimingPolicy(warmup=1, max_warmup=1, min_runs=3),
        clock=lambda: float(next(ticks)),
    )  # fmt: skip
    assert samples["a"] == [1000.0, 1000.0, 1000.0]  # one tick between the two reads


def test_a_timer_replaces_the_host_clock_per_call():
    calls = []

    def timer(fn):
        fn()
        calls.append(1)
        return 0.002

    n = {"a": 0}
    samples = time_interleaved(
        {"a": lambda: n.__setitem__("a", n["a"] + 1)},
        TimingPolicy(warmup=2, max_warmup=2, min_runs=4), timer=timer,
    )  # fmt: skip
    assert samples["a"] == [2.0] * 4 and len(calls) == n["a"] == 6  # 2 warm-up + 4 timed


def test_cuda_timer_synchronizes_then_brackets_the_call_with_events(monkeypatch):
    """The order of CUDA calls, with torch.cuda replaced by a recorder (no GPU needed)."""
    log = []

    class FakeEvent:
        def __init__(self, enable_timing=False):
            assert enable_timing
            self.name = f"e{sum(1 for x in log if x == 'new')}"
            log.append("new")

        def record(self, stream=None):
            log.append(f"record {self.name}")

        def synchronize(self):
            log.append(f"sync {self.name}")

        def elapsed_time(self, end):
            log.append(f"elapsed {self.name}->{end.name}")
            return 12.5

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: log.append("sync all"))
    timed = cuda_timer()
    log.clear()
    assert timed(lambda: log.append("call")) == 0.0125
    assert log == ["sync all", "record e0", "call", "record e1", "sync e1", "elapsed e0->e1"]


@needs_cuda
def test_cuda_timer_measures_gpu_work():
    x = torch.randn(2048, 2048, device="cuda")
    timed = cuda_timer()
    small = min(timed(lambda: x @ x) for _ in range(5))
    big = min(timed(lambda: [x @ x for _ in range(8)]) for _ in range(5))
    assert 0 < small < big  # the events see the queued work, not the launch


@needs_cuda
def test_cuda_run_times_on_the_gpu_and_refuses_cpu_only_recipes(tmp_path):
    from quantbench.runner import run

    spec = build_spec(overrides=fast_overrides(
        models=["tv:resnet18"], device="cuda", isolate=False, out=str(tmp_path / "o"),
        recipes=["fp32", "fp16", "bf16", "torchao-int8-dynamic", "dynamic-int8",
                 "ort-fp32"],
        recipe_options={"torchao-int8-dynamic": {"compile": False}},
    ))  # fmt: skip
    result = run(spec, progress=False)
    cells = {c.recipe: c for c in result.results}
    assert result.run.device == "cuda" and result.run.host["gpu"]["name"]
    for name in ("fp32", "fp16", "torchao-int8-dynamic"):
        c = cells[name]
        assert c.status == "ok", (name, c.error)
        assert c.details["device"] == "cuda" and c.memory["gpu_peak_bytes"] > 0
        assert c.latency and all(p.stats.median > 0 for p in c.latency)
    assert cells["fp16"].fidelity.cosine > 0.99
    assert cells["dynamic-int8"].status == "unsupported"
    assert cells["dynamic-int8"].error == "CPU-only recipe: runs on cpu"
    ort = cells["ort-fp32"]
    assert ort.status == "ok" or "CUDAExecutionProvider" in ort.error
    if ort.status == "ok":
        assert ort.details["provider"] == "CUDAExecutionProvider"


@needs_cuda
def test_cuda_compile_variant_runs(tmp_path, tiny_bert_dir):
    from quantbench.runner import run

    spec = build_spec(overrides=fast_overrides(
        models=[f"hf:{tiny_bert_dir}"], device="cuda", recipes=["fp32"], compile=True,
        isolate=False, text_batch_sizes=[1], seq_lens=[16], out=str(tmp_path / "o"),
    ))  # fmt: skip
    cells = {c.recipe: c for c in run(spec, progress=False).results}
    c = cells["fp32+compile"]
    assert c.status == "ok", c.error
    assert c.details["device"] == "cuda" and c.fidelity.cosine > 0.999


def test_gpu_check_table_from_cells():
    from conftest import load_script
    from quantbench.results import CellResult, Fidelity, LatencyPoint, Speedup, Stats

    g = load_script("benchmarks/gpu_check.py", "gpu_check_bench")

    def point(b, ms, sp):
        st = Stats(mean=ms, std=0.0, median=ms, p90=ms, p99=ms, min=ms, n=10, ci_low=ms,
                   ci_high=ms, verdict="stable")  # fmt: skip
        return LatencyPoint(batch_size=b, input_size=128, sweep="batch_size", unit="ms",
                            stats=st, samples=[ms] * 10, speedup=Speedup(sp, sp * 0.9, sp * 1.1, 10))  # fmt: skip

    cells = [
        CellResult("bert", "fp32", size_bytes=400 * 2**20, latency=[point(8, 4.0, 1.0)],
                   fidelity=Fidelity(1.0, 0.0, None), memory={"gpu_peak_bytes": 2**30}),
        CellResult("bert", "fp16", size_bytes=200 * 2**20, latency=[point(8, 2.0, 2.0)],
                   fidelity=Fidelity(0.99995, 0.01, None), memory={"gpu_peak_bytes": 2**29}),
        CellResult("bert", "dynamic-int8", status="unsupported",
                   error="CPU-only recipe: runs on cpu"),
    ]  # fmt: skip
    text = "\n".join(g.table(cells))
    assert (
        "| bert | fp16 | 8 | 2.000 | 2.00x [1.80, 2.20] | 200.0 (0.50) | 1.0000 | 512.0 |" in text
    )
    assert "| bert | dynamic-int8 | — | unsupported: CPU-only recipe: runs on cpu |" in text


def test_model_and_its_inputs_move_to_the_device():
    """With torch's "meta" device standing in for a GPU (no GPU needed)."""
    from quantbench.device import model_on_device, to_device
    from quantbench.models import LoadedModel

    def make(b, s, seed=0):
        return (torch.randn(b, s, generator=torch.Generator().manual_seed(seed)),)

    lm = LoadedModel("m", "vision", torch.nn.Linear(4, 2), "random", True, True, None, make)
    assert model_on_device(lm, "cpu") is lm
    moved = model_on_device(lm, "meta")
    assert moved is not lm and lm.make_inputs is make  # the shared record is untouched
    assert next(moved.module.parameters()).device.type == "meta"
    (x,) = moved.make_inputs(2, 4, seed=3)
    assert x.device.type == "meta" and x.shape == (2, 4)
    batches = to_device([((torch.ones(1),), torch.zeros(1, dtype=torch.long))], "meta")
    (((a,), y),) = batches
    assert a.device.type == y.device.type == "meta" and y.dtype == torch.long
