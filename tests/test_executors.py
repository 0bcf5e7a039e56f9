"""Executors: a registry by module name, one protocol, and the one lifecycle every
executor goes through (a new executor is one file; the local and Ray ones are tested
end to end in test_runner.py and test_ray.py)."""

from __future__ import annotations

import sys

import pytest

from conftest import fast_overrides
from quantbench.errors import QuantbenchError
from quantbench.runner.checks import build_spec


def _size_spec(tmp_path, **kw):
    return build_spec(overrides=fast_overrides(**{
        "models": ["tv:squeezenet1_1"], "recipes": ["dynamic-int8"], "measure": ["size"],
        "isolate": False, "out": str(tmp_path / "o"), "store": str(tmp_path / "q.db"), **kw,
    }))  # fmt: skip


def test_registry_names_each_module_and_local_follows_isolate(tmp_path):
    from quantbench.runner.executors import executor_names, get_executor
    from quantbench.runner.executors.local import InlineExecutor, ProcessExecutor

    assert executor_names() == ["local", "ray"]
    spec = _size_spec(tmp_path)
    assert type(get_executor(spec)) is InlineExecutor
    assert type(get_executor(spec.replace(isolate=True))) is ProcessExecutor
    unknown = spec.replace(executor="ssh")  # past the settings' own check
    with pytest.raises(QuantbenchError, match=r"unknown executor 'ssh'.*: local, ray$"):
        get_executor(unknown)


# An executor in one file: each model measured in a thread of this process, its messages
# passed on as they come. Nothing else is changed to use it.
THREADS = """
import queue
import threading

from quantbench.runner.executors import Executor, Job
from quantbench.runner.messages import Done, Failed


def make(spec):
    return ThreadExecutor(spec)


class ThreadExecutor(Executor):
    name = "threads"

    def start(self, place, spec, ref, emit):
        from quantbench.runner.pipeline import measure_model

        job = Job(emit)
        job.queue = queue.Queue()

        def work():
            try:
                cells = measure_model(spec, ref, job.queue.put)
                job.queue.put(Done([c.to_dict() for c in cells]))
            except Exception as e:
                job.queue.put(Failed.of(e))

        threading.Thread(target=work, daemon=True).start()
        return job

    def wait(self, jobs):
        for job in jobs:
            try:
                while not job.ended:
                    job.send(job.queue.get(timeout=0.2))
            except queue.Empty:
                pass
        return [j for j in jobs if j.ended]
"""


def test_an_executor_is_one_file(tmp_path, monkeypatch, capsys):
    import quantbench.runner.executors as executors
    from quantbench.runner import run
    from quantbench.store import open_store

    more = tmp_path / "more"
    more.mkdir()
    (more / "threads.py").write_text(THREADS)
    monkeypatch.setattr(executors, "__path__", [*executors.__path__, str(more)])
    try:
        assert executors.executor_names() == ["local", "ray", "threads"]
        spec = _size_spec(tmp_path).replace(executor="threads")
        result = run(spec, progress=False)
    finally:
        sys.modules.pop("quantbench.runner.executors.threads", None)
    assert [(c.recipe, c.status) for c in result.results] == [
        ("fp32", "ok"),
        ("dynamic-int8", "ok"),
    ]
    assert all(c.size_bytes for c in result.results)
    assert "[1/1] tv:squeezenet1_1: " in capsys.readouterr().err
    store = open_store(tmp_path / "q.db", create=False)
    try:
        assert store.run_meta(result.run.id)["status"] == "finished"
        assert len(store.cells(result.run.id)) == 2
    finally:
        store.close()
    assert (result.out_dir / "report.md").exists()


def test_what_a_node_runs_ends_with_the_cells_or_the_failure(tmp_path, monkeypatch):
    """measure_here: a model measured as locally, every message passed on, the last one
    ending it (what a Ray node streams back to the driver)."""
    from quantbench.runner import pipeline
    from quantbench.runner.executors.local import measure_here
    from quantbench.runner.messages import Done, Failed, Snapshot, is_last
    from quantbench.settings import ModelRef

    spec, ref = _size_spec(tmp_path), ModelRef("tv:squeezenet1_1")
    said = []
    measure_here(spec, ref, said.append)
    assert isinstance(said[-1], Done) and [is_last(m) for m in said].count(True) == 1
    assert [d["recipe"] for d in said[-1].cells] == ["fp32", "dynamic-int8"]
    assert any(isinstance(m, Snapshot) for m in said)

    def broken(stage, run):
        if stage == "load":
            raise RuntimeError("no model today\nsecond line")

    monkeypatch.setattr(pipeline, "STAGE_HOOKS", [broken])
    said.clear()
    measure_here(spec, ref, said.append)
    assert isinstance(said[-1], Failed) and said[-1].error == "RuntimeError: no model today"
    assert "in broken" in said[-1].traceback


def test_a_model_that_cannot_start_is_its_cells_not_the_runs_end(tmp_path, monkeypatch):
    """An executor that fails to start a model (a worker that cannot spawn) leaves that
    model's error cells; the run finishes."""
    from quantbench.runner import run
    from quantbench.runner.executors.local import InlineExecutor

    def refuse(self, place, spec, ref, emit):
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(InlineExecutor, "start", refuse)
    result = run(_size_spec(tmp_path), progress=False)
    assert {c.status for c in result.results} == {"error"}
    assert result.results[0].error == "[Errno 11] Resource temporarily unavailable"
    assert result.run.status == "finished"
