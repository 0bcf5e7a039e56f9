"""Results as data: ``RunResult.best`` / ``summary`` / ``rows`` / ``to_dataframe`` / repr,
results.csv's run columns, and the busy-machine caveat where it is read first (synthetic
records built through the real record types, no torch)."""

from __future__ import annotations

import csv
import io
import json
import sys

import pytest

from quantbench.best import as_dict, recommend
from quantbench.errors import QuantbenchError
from quantbench.measure.metrics import csv_columns
from quantbench.results import RunMeta
from quantbench.runner import RunResult
from quantbench.runner.books import save_exports
from test_best import _around, _timed

HOST = {"hostname": "box", "cpu": "AMD EPYC 7B13 64-Core Processor", "cores": 2}
BUSY = "the machine was busy (load average 3.50 on 2 cores at the start)"


def _result(tmp_path, load: float = 3.5, models: tuple[str, ...] = ("m",)) -> RunResult:
    cells = []
    for i, model in enumerate(models):
        cells += _timed(model, {"fp32": _around(10, 0.01, seed=i),
                                "dynamic-int8": _around(5, 0.01, seed=i + 1),
                                "static-int8": _around(8, 0.01, seed=i + 2)})  # fmt: skip
    for c in cells:
        c.details = {"recipe_config": {"version": 1, "per_channel": c.recipe == "static-int8"},
                     "device": "cpu"}  # fmt: skip
    spec = {"measure": ["size", "latency", "fidelity"], "min_cosine": 0.99, "device": "cpu"}
    meta = RunMeta(id="20261205-103000-abc123", status="finished", device="cpu",
                   host={**HOST, "load_avg": load}, spec=spec, store="q.db",
                   recommendations=as_dict(recommend(cells)))  # fmt: skip
    out = tmp_path / "run"
    out.mkdir(exist_ok=True)
    return RunResult(out_dir=out, run=meta, results=cells, report=out / "report.md")


def test_best_summary_and_repr(tmp_path, capsys):
    r = _result(tmp_path)
    rec = r.best("m")
    assert rec.fastest.recipe == "dynamic-int8" and rec.speed.verdict == "faster"
    assert rec.smallest is not None and any(BUSY in c for c in rec.caveats)
    assert r.best().fastest.recipe == "dynamic-int8"  # the only model
    with pytest.raises(QuantbenchError, match=r"no model 'nope' in run .* \(models: m\)"):
        r.best("nope")
    two = _result(tmp_path, models=("m", "n"))
    with pytest.raises(QuantbenchError, match="measured 2 models: say which.* m, n"):
        two.best()

    lines = r.summary().splitlines()
    assert lines[0] == "3 cells: 3 ok"
    assert lines[1].startswith("  m: fastest dynamic-int8 ")
    assert lines[2].startswith(f"  warning: {BUSY}")  # next to the recommendation
    assert lines[3] == "stored:  run 20261205-103000-abc123 in q.db"
    from quantbench.cli import print_run_summary

    assert print_run_summary(r) == 0
    assert capsys.readouterr().out == r.summary() + "\n"  # the CLI prints the same lines
    assert "warning" not in _result(tmp_path, load=0.1).summary()

    text = repr(r)
    assert text == ("RunResult(run='20261205-103000-abc123', cells=3 (3 ok), models=[m], "
                    f"out_dir={str(r.out_dir)!r})")  # fmt: skip
    assert "samples" not in text and len(repr(two)) < 200


def test_rows_dataframe_and_results_csv_carry_run_machine_device_settings(tmp_path):
    r = _result(tmp_path)
    df = r.to_dataframe()
    assert list(df.columns) == csv_columns()
    cols = list(df.columns)  # appended after the metrics, in this order
    at = cols.index("run_id")
    assert cols[at : at + 4] == ["run_id", "machine", "device", "recipe_settings"]
    assert len(df) == sum(max(1, len(c.latency)) for c in r.results) == 3
    assert set(df["run_id"]) == {r.run.id} and set(df["machine"]) == {"box · EPYC 7B13"}
    assert set(df["device"]) == {"cpu"}
    settings = dict(zip(df["recipe"], df["recipe_settings"], strict=True))
    assert json.loads(settings["static-int8"]) == {"per_channel": True, "version": 1}
    assert df.loc[df["recipe"] == "dynamic-int8", "speedup"].item() == pytest.approx(
        r.results[1].latency[0].speedup.median
    )

    save_exports(r.out_dir, r.run, r.results)  # what a run writes
    rows = list(csv.DictReader(io.StringIO((r.out_dir / "results.csv").read_text())))
    assert list(rows[0]) == csv_columns() and len(rows) == 3
    assert [x["run_id"] for x in rows] == [r.run.id] * 3
    assert rows[2]["recipe_settings"] == settings["static-int8"]
    assert r.rows()[0]["machine"] == "box · EPYC 7B13"


def test_to_dataframe_without_pandas_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed
    with pytest.raises(QuantbenchError, match=r"needs pandas: pip install 'quantbench\[pandas\]'"):
        _result(tmp_path).to_dataframe()


def test_busy_warning_is_at_the_top_of_the_report(tmp_path):
    from quantbench.report.render import render_markdown

    r = _result(tmp_path)
    md = render_markdown(r.run.to_dict(), r.results)
    top = md.split("## Recommendation")[0]
    assert f"> ⚠️ **Caveat:** {BUSY}" in top
    assert "the machine was busy" in md.split("## Environment")[1]  # and where it was
    calm = _result(tmp_path, load=0.1)
    assert "Caveat" not in render_markdown(calm.run.to_dict(), calm.results)
