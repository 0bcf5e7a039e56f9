"""Contention watch: a real competing process on the same core makes a point 'contended';
the verdict reaches the records, results.csv's columns and the run's closing lines."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from quantbench.measure import contention
from quantbench.measure.contention import CONTENDED, QUIET, Watch

SPIN = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True:\n    pass\n"


# A clean process (no threads of pytest's or torch's) held to one CPU, watching passes of
# pure-Python work: prints the point's summary as JSON.
WATCHED = """
import json, os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
from quantbench.measure.contention import Watch
w = Watch(threads=1)
for _ in range(12):
    w.before()
    sum(range(60_000))
    w.after()
print(json.dumps(w.summary()))
"""


def _watched(cpu: int) -> dict:
    import json

    out = subprocess.run([sys.executable, "-c", WATCHED, str(cpu)], capture_output=True,
                         text=True, timeout=60, check=True)  # fmt: skip
    return json.loads(out.stdout)


@pytest.fixture
def one_cpu():
    """The CPU the test's processes share: the last one this process may use."""
    return max(os.sched_getaffinity(0))


def test_a_competing_process_on_the_same_core_is_seen(one_cpu):
    """Two busy loops pinned to the watched process's core take about two thirds of its
    time: its passes wait on the run queue and the point is contended (whatever else
    the machine runs)."""
    procs = [subprocess.Popen([sys.executable, "-c", SPIN, str(one_cpu)]) for _ in range(2)]
    try:
        time.sleep(0.3)  # both started and spinning
        s = _watched(one_cpu)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert s["verdict"] == CONTENDED, s
    assert 0.3 <= s["wait_share"] <= 1.0 and s["cpu_share"] < 0.7, s
    assert s["passes"] == 12 and s["threads"] == 1


def test_verdict_rules_and_fallback_without_schedstat():
    w = Watch(threads=2)
    w.wall, w.cpu, w.wait, w.passes = 1.0, 1.9, 0.1, 10  # 5% waited: quiet
    assert w.summary()["verdict"] == QUIET
    w.wait = 0.2  # 10% of 2 thread-seconds
    assert w.summary()["verdict"] == CONTENDED
    w.wait_known, w.cpu = False, 0.9  # no schedstat: CPU share 45% < 50%
    s = w.summary()
    assert s["wait_share"] is None and s["verdict"] == CONTENDED
    w.cpu = 1.5
    assert w.summary()["verdict"] == QUIET
    assert contention.run_delay_s() is not None  # Linux with schedstat (this machine)


def test_contended_points_reach_records_columns_and_caveats(tmp_path, capsys):
    from quantbench.best import as_dict, recommend, summary_lines
    from quantbench.measure.latency import summarize
    from quantbench.measure.metrics import csv_columns, csv_rows
    from quantbench.results import CellResult, LatencyPoint, Speedup

    def point(ms, sp, verdict):
        p = LatencyPoint(1, 224, "input_size", "ms", summarize([ms, ms]), [ms, ms],
                         speedup=Speedup(sp, sp, sp, 2))  # fmt: skip
        p.contention = {"verdict": verdict, "wait_share": 0.42, "cpu_share": 0.5}
        return LatencyPoint.from_dict(p.to_dict())  # through the stored form

    cells = [CellResult("m", "fp32", size_bytes=4, latency=[point(10, 1.0, CONTENDED)]),
             CellResult("m", "static-int8", size_bytes=1, latency=[point(5, 2.0, CONTENDED)]),
             CellResult("q", "fp32", size_bytes=4, latency=[point(10, 1.0, QUIET)]),
             CellResult("q", "static-int8", size_bytes=1, latency=[point(5, 2.0, QUIET)])]  # fmt: skip
    assert {"contention", "run_wait_share", "cpu_share"} <= set(csv_columns())
    row = csv_rows(cells[1])[0]
    assert row["contention"] == CONTENDED and row["run_wait_share"] == 0.42
    recs = recommend(cells)
    assert recs["q"].caveats == [] and len(recs["m"].caveats) == 1
    assert recs["m"].caveats[0].startswith("contended: speedups measured while other work")
    assert "42%" in recs["m"].caveats[0]
    lines = summary_lines({}, as_dict(recs), cells)  # next to the model's summary line
    at = next(i for i, ln in enumerate(lines) if ln.startswith("m:"))
    assert lines[at + 1].startswith("  caveat: contended:")
    # `show` of the stored run: the contended speedups marked, the same closing lines
    from quantbench.cli import main
    from quantbench.store import open_store

    st = open_store(tmp_path / "q.db")
    st.begin_run({"id": "r", "status": "finished", "host": {"cores": 2},
                  "spec": {"measure": ["size", "latency"]},
                  "recommendations": as_dict(recs)})  # fmt: skip
    st.write_cells("r", cells)
    st.close()
    assert main(["show", "r", "--store", str(tmp_path / "q.db")]) == 0
    out = capsys.readouterr().out.splitlines()
    row = next(ln for ln in out if ln.startswith("m ") and "static-int8" in ln)
    assert "2.00x [2.00, 2.00]*" in row
    assert "* measured while other work held the cores (contended)" in out
    at = next(i for i, ln in enumerate(out) if ln.startswith("m:"))
    assert out[at + 1].startswith("  caveat: contended:")


@pytest.mark.slow
def test_a_run_under_competition_marks_its_points_and_says_so(tmp_path, one_cpu):
    """A real run held to one CPU (its worker inherits that) with a busy loop on the
    same CPU: its points are contended, and the run's closing lines carry the caveat.
    Without the hold, a quiet machine's scheduler gives the run another core."""
    root = os.path.dirname(os.path.dirname(__file__))
    model = f"py:{root}/examples/digits_cnn.py:DigitsCNN"
    spin = subprocess.Popen([sys.executable, "-c", SPIN, str(one_cpu)])
    try:
        out = subprocess.run(
            [sys.executable, "-m", "quantbench", "run", "--models", model, "--weights", "random",
             "--recipes", "fp32,dynamic-int8", "--measure", "latency", "--image-sizes", "16",
             "--vision-batch-sizes", "1", "--ref-image-size", "16", "--min-runs", "20",
             "--threads", "1", "--out", str(tmp_path / "o"), "--store", str(tmp_path / "q.db")],
            capture_output=True, text=True, timeout=300,
            preexec_fn=lambda: os.sched_setaffinity(0, {one_cpu}),
        )  # fmt: skip
    finally:
        spin.kill()
        spin.wait()
    assert out.returncode == 0, out.stderr
    import json

    cells = json.loads((tmp_path / "o" / "results.json").read_text())["results"]
    verdicts = {p["contention"]["verdict"] for c in cells for p in c["latency"]}
    assert verdicts == {CONTENDED}, [
        (c["recipe"], p["contention"]) for c in cells for p in c["latency"]
    ]
    caveats = [ln for ln in out.stdout.splitlines() if "caveat: contended:" in ln]
    assert len(caveats) == 1, out.stdout
    assert ": contended: speedups measured while other work held the cores" in caveats[0]


def test_watched_points_speak_instead_of_the_load_average():
    """A load average of 1.1 on 2 cores (this run's own worker, or what ran just before)
    with every point watched and quiet: no busy-machine caveat; unwatched points (older
    records) keep the load-average rule."""
    from quantbench.caveats import busy
    from quantbench.measure.latency import summarize
    from quantbench.results import CellResult, LatencyPoint

    run = {"host": {"load_avg": 1.1, "cores": 2}}
    p = LatencyPoint(1, 224, "input_size", "ms", summarize([5.0, 5.0]), [5.0, 5.0])
    assert busy(run, [CellResult("m", "fp32", latency=[p])]).startswith("the machine was busy")
    p.contention = {"verdict": QUIET, "wait_share": 0.01, "cpu_share": 0.8}
    assert busy(run, [CellResult("m", "fp32", latency=[p])]) is None
