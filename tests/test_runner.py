"""Isolation: a worker that is killed, crashes, raises or hangs leaves error/timeout
cells with the reason, keeps what was measured before, and the run goes on."""

from __future__ import annotations

import pytest

from conftest import fast_overrides
from quantbench.runner import run
from quantbench.runner.checks import build_spec


def _cells(result):
    return {(c.model, c.recipe): c for c in result.results}


@pytest.mark.slow
def test_faulty_workers_do_not_stop_the_run(tmp_path, monkeypatch, capfd, tiny_bert_dir):
    monkeypatch.setenv("QUANTBENCH_DEBUG", "1")  # the worker prints its traceback
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
    assert raised.status == "error" and raised.error == "RuntimeError: injected failure"
    tb = raised.details["traceback"]  # the whole traceback, from the worker
    assert tb.startswith("Traceback") and "inject_fault" in tb and "measure_model" in tb
    assert "inject_fault" in capfd.readouterr().err  # printed by the worker (QUANTBENCH_DEBUG)
    assert "traceback" not in killed.details  # a killed worker leaves no traceback
    good = cells[(f"hf:{tiny_bert_dir}", "dynamic-int8")]
    assert good.status == "ok" and good.latency
    assert (result.out_dir / "report.md").is_file()
    assert "SIGKILL" in (result.out_dir / "report.md").read_text()


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_sigterm_keeps_results_and_stops_the_worker(tmp_path, tiny_bert_dir):
    import json
    import os
    import signal
    import subprocess
    import sys

    import yaml

    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump(fast_overrides(
        models=["tv:squeezenet1_1", f"hf:{tiny_bert_dir}"], recipes=["fp32"],
    )))  # fmt: skip
    out = tmp_path / "o"
    pidfile = tmp_path / "hanging.pid"
    env = {**os.environ, "QUANTBENCH_FAULT": f"hf:{tiny_bert_dir}:hang",
           "QUANTBENCH_FAULT_PIDFILE": str(pidfile)}  # fmt: skip
    p = subprocess.Popen(
        [sys.executable, "-m", "quantbench.cli", "run", "--config", str(cfg), "--out", str(out),
         "--no-progress"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _wait_for(pidfile.exists, 120)  # the second model's worker is now hanging
    worker = int(pidfile.read_text())
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    doc = json.loads((out / "results.json").read_text())
    assert doc["run"]["status"] == "interrupted"
    assert [r["model"] for r in doc["results"]] == ["tv:squeezenet1_1"]
    assert _wait_for(lambda: not _alive(worker), 10), "the hanging worker outlived the run"


def _wait_for(cond, timeout_s: float) -> bool:
    """Poll ``cond`` every 0.1 s until it holds or ``timeout_s`` passes; whether it held."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return bool(cond())


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie awaiting its reaper does not)."""
    from pathlib import Path

    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.slow
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


# --------------------------------------------------------------------------- internals


def _size_spec(tmp_path, **kw):
    return build_spec(overrides=fast_overrides(**{
        "models": ["tv:squeezenet1_1"], "recipes": ["dynamic-int8"], "measure": ["size"],
        "isolate": False, "out": str(tmp_path / "o"), **kw,
    }))  # fmt: skip


def test_messages_round_trip_through_a_pipe():
    import multiprocessing as mp

    from quantbench.results import CellResult
    from quantbench.runner.collector import Collector
    from quantbench.runner.messages import Advance, Done, Ended, Failed, Progress, Snapshot
    from quantbench.runner.progress import ProgressBar

    cell = CellResult(model="m", recipe="static-int8", size_bytes=123, notes=["n"])
    sent = [Progress("m: quantizing"), Advance(2), Snapshot.of([cell]),
            Done([cell.to_dict()]), Failed("ValueError: bad", "Traceback ..."),
            Ended("timeout", "timed out after 1 s", lost=True)]  # fmt: skip
    recv, send = mp.get_context("spawn").Pipe(duplex=False)
    for msg in sent:
        send.send(msg)
    got = [recv.recv() for _ in sent]
    assert got == sent and [type(m) for m in got] == [type(m) for m in sent]
    col = Collector(ProgressBar(10, enabled=False))
    for msg in got[:3]:
        col.handle(msg)
    assert col.partial["static-int8"].to_dict() == cell.to_dict()


def _raise_after(stage_name):
    def hook(stage, run):
        if stage == stage_name:
            raise ValueError("broken on purpose\nsecond line")

    return hook


def test_failure_keeps_one_line_error_and_whole_traceback(tmp_path, monkeypatch, capfd):
    from quantbench.runner import pipeline

    monkeypatch.delenv("QUANTBENCH_DEBUG", raising=False)
    monkeypatch.setattr(pipeline, "STAGE_HOOKS", [_raise_after("quantize")])
    cells = _cells(run(_size_spec(tmp_path), progress=False))
    cell = cells[("tv:squeezenet1_1", "dynamic-int8")]
    assert cell.status == "error" and cell.error == "ValueError: broken on purpose"
    assert cell.size_bytes is not None  # measured before the failure: kept
    tb = cell.details["traceback"]
    assert tb.startswith("Traceback") and "in hook" in tb and "second line" in tb
    assert cell.details["recipe_config"]["version"] >= 1
    assert "Traceback" not in capfd.readouterr().err  # printed only with QUANTBENCH_DEBUG


def test_debug_prints_the_traceback(tmp_path, monkeypatch, capfd):
    from quantbench.runner import pipeline

    monkeypatch.setenv("QUANTBENCH_DEBUG", "1")
    monkeypatch.setattr(pipeline, "STAGE_HOOKS", [_raise_after("load")])
    cells = _cells(run(_size_spec(tmp_path), progress=False))
    cell = cells[("tv:squeezenet1_1", "dynamic-int8")]  # failed before any cell: no partial
    assert cell.error == "ValueError: broken on purpose" and "in hook" in cell.details["traceback"]
    err = capfd.readouterr().err
    assert "Traceback (most recent call last)" in err and "broken on purpose" in err


def test_fault_hook_is_inert_unless_installed(tmp_path, monkeypatch):
    from conftest import FAULT_HOOK
    from quantbench.runner import pipeline

    monkeypatch.delenv(pipeline.HOOKS_ENV, raising=False)
    monkeypatch.setenv("QUANTBENCH_FAULT", "tv:squeezenet1_1:raise")
    assert pipeline.stage_hooks() == []
    seen = []
    monkeypatch.setattr(pipeline, "STAGE_HOOKS", [lambda stage, run: seen.append(stage)])
    (fp32, int8) = run(_size_spec(tmp_path), progress=False).results
    assert fp32.status == int8.status == "ok"  # QUANTBENCH_FAULT alone does nothing
    assert seen == [name for name, _, _ in pipeline.STAGES]  # every stage, in order
    assert seen[:6] == ["load", "quantize", "fidelity", "accuracy", "fallback", "latency"]
    monkeypatch.setenv(pipeline.HOOKS_ENV, FAULT_HOOK)  # installed: loaded from the file
    assert [h.__name__ for h in pipeline.stage_hooks()] == ["<lambda>", "inject_fault"]


class _Store:
    """A store whose every call is recorded; ``begin_run`` may fail."""

    label = "test-store"

    def __init__(self, fail_begin: bool) -> None:
        self.fail_begin, self.closed = fail_begin, False

    def begin_run(self, meta):
        if self.fail_begin:
            raise OSError("database is locked")

    def close(self):
        self.closed = True


@pytest.mark.parametrize("step", ["begin_run", "prepare_out_dir"])
def test_store_is_closed_when_the_run_fails_early(tmp_path, monkeypatch, step):
    import quantbench.store
    from quantbench.errors import QuantbenchError

    store = _Store(fail_begin=step == "begin_run")
    monkeypatch.setattr(quantbench.store, "open_store", lambda *a, **k: store)
    spec = _size_spec(tmp_path)
    if step == "prepare_out_dir":
        (tmp_path / "o").mkdir()
        (tmp_path / "o" / "results.json").write_text("{}")  # the directory holds a run
    with pytest.raises(QuantbenchError, match="cannot write run|already holds a run"):
        run(spec, progress=False)
    assert store.closed


def test_sensitivity_imports_only_the_output_directory_helpers():
    import subprocess
    import sys

    code = (
        "import sys, quantbench.sensitivity, quantbench.outdir\n"
        "bad = [m for m in sys.modules if m in ('quantbench.runner.pipeline',"
        " 'quantbench.runner.lifecycle', 'quantbench.runner.executors',"
        " 'quantbench.runner.executors.local', 'quantbench.runner.books')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sensitivity_plot_is_written_atomically(tmp_path):
    from quantbench.report.plots.sensitivity import plot_layer_effects
    from quantbench.sensitivity import LayerEffect, Sensitivity

    result = Sensitivity("m", "static-int8", "float-one", "cosine", 1.0, 0.9,
                         [LayerEffect("fc", "Linear", 10, 0.95, 0.05)], 0.1)  # fmt: skip
    assert plot_layer_effects(tmp_path / "sensitivity.png", result)
    assert (tmp_path / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["sensitivity.png"]  # no temporary left
