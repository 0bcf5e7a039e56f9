"""The wait policy reaches each runtime: read back from inside the worker that timed the
cells (torch's OpenMP environment, ONNX Runtime's session options), and recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quantbench import waitpolicy

ROOT = Path(__file__).parent.parent
MODEL = f"py:{ROOT / 'examples' / 'digits_cnn.py'}:DigitsCNN"
# Waiting variables a developer's shell may hold: each test starts without them.
CLEAN = {k: v for k, v in os.environ.items() if k not in waitpolicy.OPENMP_VARS}


def _run(tmp_path: Path, *flags: str, env: dict[str, str] | None = None) -> dict:
    """A real run in a spawned worker: fp32 (torch, OpenMP) and ort-fp32 (ONNX Runtime)."""
    out = subprocess.run(
        [sys.executable, "-m", "quantbench", "run", "-q", "--models", MODEL, "--weights",
         "random", "--recipes", "fp32,ort-fp32", "--measure", "latency", "--image-sizes", "16",
         "--vision-batch-sizes", "1", "--ref-image-size", "16", "--min-runs", "2",
         "--warmup", "1", "--min-time-s", "0", "--out", str(tmp_path / "o"),
         "--store", str(tmp_path / "q.db"), *flags],
        capture_output=True, text=True, timeout=300, env={**CLEAN, **(env or {})},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    cells = json.loads((tmp_path / "o" / "results.json").read_text())["results"]
    return {c["recipe"]: c for c in cells}


def _check(cells: dict, policy: str, omp: str | None, spin: str) -> None:
    torch_cell, ort_cell = cells["fp32"], cells["ort-fp32"]
    for c in (torch_cell, ort_cell):
        w = c["details"]["waiting"]
        assert w["policy"] == policy and w["openmp_follows"] is True
        assert w["openmp"] == "GNU libgomp"  # torch's OpenMP here (parallel_info: OpenMP)
        assert w["openmp_env"].get("OMP_WAIT_POLICY") == omp
        assert w["pinned_threads"] == {}  # nobody pinned a thread behind our back
    assert set(ort_cell["details"]["spinning"].values()) == {spin}
    assert all(p["contention"]["verdict"] in ("quiet", "contended")
               for c in cells.values() for p in c["latency"])  # fmt: skip


@pytest.mark.slow  # a spawned worker, torch and ONNX Runtime loaded: ~10 s on a quiet machine
def test_default_policy_reaches_torch_and_onnxruntime_in_the_worker(tmp_path):
    cells = _run(tmp_path)
    _check(
        cells,
        waitpolicy.DEFAULT,
        waitpolicy.env_for(waitpolicy.DEFAULT)["OMP_WAIT_POLICY"],
        waitpolicy.ort_entries(waitpolicy.DEFAULT)["session.intra_op.allow_spinning"],
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "policy, env, omp, spin",
    [("active", {"OMP_WAIT_POLICY": "PASSIVE"}, "ACTIVE", "1"),  # the setting wins
     ("passive", {}, "PASSIVE", "0"),
     ("runtime", {"OMP_WAIT_POLICY": "PASSIVE"}, "PASSIVE", "unset (spins)"),  # the env's
     ("runtime", {}, None, "unset (spins)")],
)  # fmt: skip
def test_each_policy_reaches_the_worker(tmp_path, policy, env, omp, spin):
    cells = _run(tmp_path, "--wait-policy", policy, env=env)
    _check(cells, policy, omp, spin)
    assert cells["fp32"]["details"]["waiting"]["env_before"] == env


def test_in_a_process_that_loaded_torch_only_onnxruntime_follows():
    code = ("import torch, json\nfrom quantbench import waitpolicy\n"
            "print(json.dumps(waitpolicy.apply('active')))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=CLEAN, check=True, timeout=120)  # fmt: skip
    assert json.loads(out.stdout)["openmp_follows"] is False
    saved = dict(os.environ)
    try:  # a caller's own process: the record only, its environment untouched
        assert waitpolicy.apply("active", environ=False)["openmp_follows"] is False
        assert dict(os.environ) == saved and waitpolicy.current() == "active"
    finally:
        waitpolicy._applied = None
    assert waitpolicy.ort_entries("active") == {
        "session.intra_op.allow_spinning": "1",
        "session.inter_op.allow_spinning": "1",
    }
    assert waitpolicy.ort_entries("runtime") == {} and waitpolicy.env_for("runtime") == {}


def test_an_unknown_policy_is_one_line_and_exit_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "quantbench", "run", "--wait-policy", "spin",
                          "--out", str(tmp_path / "o")], capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "quantbench: error: unknown wait_policy value 'spin'. Valid wait_policy values: "
        "active, passive, runtime"
    ]
    with pytest.raises(ValueError):
        waitpolicy.apply("spin")


def test_pinned_runtime_threads_are_read_back():
    """A session with its thread count set (as quantbench's are) pins nothing; a thread
    that pins itself (as ONNX Runtime's own do when it picks their number) is named."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: nothing narrower to pin to")
    code = """
import json, os, threading, numpy as np, onnxruntime as ort
from onnx import TensorProto, helper
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 64])
g = helper.make_graph([helper.make_node("MatMul", ["x", "x"], ["y"])], "g", [x],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 64])])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
from quantbench import waitpolicy
so = ort.SessionOptions(); so.intra_op_num_threads = 2
mine = ort.InferenceSession(m, so, providers=["CPUExecutionProvider"])
mine.run(None, {"x": np.ones((64, 64), np.float32)})
before = waitpolicy.effective()["pinned_threads"]
ready, done = threading.Event(), threading.Event()
def pinned():
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})  # this thread only
    ready.set(); done.wait()
t = threading.Thread(target=pinned, name="pinned-one"); t.start(); ready.wait()
after = waitpolicy.effective()["pinned_threads"]
done.set(); t.join()
print(json.dumps([before, after]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)  # fmt: skip
    before, after = json.loads(out.stdout)
    assert before == {}
    assert list(after.values()) == [str(max(os.sched_getaffinity(0)))]
