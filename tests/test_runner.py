"""Isolation: a worker that is killed, crashes, raises or hangs leaves error/timeout
cells with the reason, keeps what was measured before, and the run goes on."""

from __future__ import annotations

import pytest

from conftest import fast_overrides
from quantbench.runner import run
from quantbench.spec import build_spec


def _cells(result):
    return {(c.model, c.recipe): c for c in result.results}


def test_faulty_workers_do_not_stop_the_run(tmp_path, monkeypatch, tiny_bert_dir):
    monkeypatch.setenv(
        "QUANTBENCH_FAULT",
        "tv:squeezenet1_1:kill,tv:mobilenet_v3_small:crash,tv:shufflenet_v2_x0_5:raise",
    )
    models = [
        "tv:squeezenet1_1",
        "tv:mobilenet_v3_small",
        "tv:shufflenet_v2_x0_5",
        f"hf:{tiny_bert_dir}",
    ]
    spec = build_spec(
        overrides=fast_overrides(models=models, recipes=["dynamic-int8"], out=str(tmp_path / "o"))
    )
    result = run(spec, progress=False)
    cells = _cells(result)
    killed = cells[("tv:squeezenet1_1", "dynamic-int8")]
    assert killed.status == "error" and "SIGKILL" in killed.error
    assert killed.size_bytes is not None  # measured before the kill: kept
    assert "peak RSS seen" in killed.error
    crashed = cells[("tv:mobilenet_v3_small", "fp32")]
    assert crashed.status == "error" and "exited with code 3" in crashed.error
    raised = cells[("tv:shufflenet_v2_x0_5", "dynamic-int8")]
    assert raised.status == "error" and "RuntimeError: injected failure" in raised.error
    good = cells[(f"hf:{tiny_bert_dir}", "dynamic-int8")]
    assert good.status == "ok" and good.latency
    assert (result.out_dir / "report.md").is_file()
    assert "SIGKILL" in (result.out_dir / "report.md").read_text()


def test_hanging_worker_times_out(tmp_path, monkeypatch, tiny_bert_dir):
    monkeypatch.setenv("QUANTBENCH_FAULT", "tv:squeezenet1_1:hang")
    spec = build_spec(overrides=fast_overrides(
        models=["tv:squeezenet1_1", f"hf:{tiny_bert_dir}"], recipes=["fp32"],
        timeout_s=30, out=str(tmp_path / "o"),
    ))  # fmt: skip
    result = run(spec, progress=False)
    cells = _cells(result)
    assert cells[("tv:squeezenet1_1", "fp32")].status == "timeout"
    assert "timed out after 30 s" in cells[("tv:squeezenet1_1", "fp32")].error
    assert cells[(f"hf:{tiny_bert_dir}", "fp32")].status == "ok"


def test_inline_run_records_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTBENCH_FAULT", "tv:squeezenet1_1:raise")
    spec = build_spec(overrides=fast_overrides(
        models=["tv:squeezenet1_1", "tv:mobilenet_v3_small"], recipes=["static-int8"],
        isolate=False, out=str(tmp_path / "o"),
    ))  # fmt: skip
    cells = _cells(run(spec, progress=False))
    assert cells[("tv:squeezenet1_1", "static-int8")].status == "error"
    assert cells[("tv:mobilenet_v3_small", "static-int8")].status == "ok"


@pytest.mark.parametrize("sizes", [[8, 64]])
def test_shape_failure_is_a_note_not_a_crash(tmp_path, sizes):
    # squeezenet cannot run an 8 px image (its pooling shrinks it to nothing)
    spec = build_spec(overrides=fast_overrides(
        models=["tv:squeezenet1_1"], recipes=["fp32"], image_sizes=sizes, measure=["latency"],
        isolate=False, out=str(tmp_path / "o"), ref_image_size=32,
    ))  # fmt: skip
    (cell,) = run(spec, progress=False).results
    assert cell.status == "ok"
    assert any("no latency at batch 1, size 8" in n for n in cell.notes)
    assert {p.input_size for p in cell.latency} == {32, 64}


def test_sigterm_keeps_results_and_stops_the_worker(tmp_path, tiny_bert_dir):
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump(fast_overrides(
        models=["tv:squeezenet1_1", f"hf:{tiny_bert_dir}"], recipes=["fp32"],
    )))  # fmt: skip
    out = tmp_path / "o"
    env = {**os.environ, "QUANTBENCH_FAULT": f"hf:{tiny_bert_dir}:hang"}
    p = subprocess.Popen(
        [sys.executable, "-m", "quantbench.cli", "run", "--config", str(cfg), "--out", str(out),
         "--no-progress"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline:
        doc = (
            json.loads((out / "results.json").read_text())
            if (out / "results.json").exists()
            else {}
        )
        if doc.get("results"):
            break
        time.sleep(0.5)
    time.sleep(8)  # the second worker is now hanging
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    doc = json.loads((out / "results.json").read_text())
    assert doc["run"]["status"] == "interrupted"
    assert [r["model"] for r in doc["results"]] == ["tv:squeezenet1_1"]
    time.sleep(2)  # no orphaned worker is left running
    ps = subprocess.run(["ps", "-eo", "ppid,args"], capture_output=True, text=True).stdout
    orphans = [ln for ln in ps.splitlines() if "spawn_main" in ln and ln.split()[0] == "1"]
    assert not orphans, orphans


def test_compile_flag_adds_compiled_variants(tmp_path, tiny_bert_dir):
    spec = build_spec(overrides=fast_overrides(
        models=[f"hf:{tiny_bert_dir}"], recipes=["fp32"], compile=True, isolate=False,
        text_batch_sizes=[1], seq_lens=[16], out=str(tmp_path / "o"),
    ))  # fmt: skip
    cells = _cells(run(spec, progress=False))
    c = cells[(f"hf:{tiny_bert_dir}", "fp32+compile")]
    assert c.status == "ok", c.error
    assert c.runtime == "torch-compile" and c.compile_s > 0
    assert c.fidelity.cosine > 0.999 and c.latency[0].speedup is not None
