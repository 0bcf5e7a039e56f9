"""The results store: SQLite by default, PostgreSQL for real; resume after SIGKILL;
runs / show / export / report / compare commands and their bad inputs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import fast_overrides, start_postgres, stop_postgres
from quantbench.cli import main
from quantbench.errors import QuantbenchError
from quantbench.results import CellResult, LatencyPoint, Speedup, Stats
from quantbench.store import SCHEMA_VERSION, open_store


def _point(ms: float, speedup: float | None = None, b: int = 1, s: int = 32) -> LatencyPoint:
    return LatencyPoint(
        batch_size=b, input_size=s, sweep="input_size", unit="ms",
        stats=Stats(mean=ms, std=0.01, median=ms, p90=ms, p99=ms, min=ms, n=3, ci_low=ms,
                    ci_high=ms, verdict="stable"),
        samples=[ms, ms * 1.01, ms * 0.99],
        speedup=Speedup(speedup, speedup, speedup, 3) if speedup else None,
    )  # fmt: skip


def _stored_run(store, run_id: str, scale: float = 1.0, models=("m1",)) -> None:
    store.begin_run({"id": run_id, "started_at": f"2026-11-27T0{len(run_id) % 9}:00:00",
                     "status": "finished", "host": {"cpu": "AMD EPYC", "cores": 2},
                     "spec": {"models": [{"name": m} for m in models]}})  # fmt: skip
    cells = []
    for m in models:
        cells += [
            CellResult(model=m, recipe="fp32", size_bytes=4_000_000, latency=[_point(10 * scale)]),
            CellResult(
                model=m,
                recipe="static-int8",
                size_bytes=1_000_000,
                latency=[_point(4 * scale, 2.5)],
            ),  # fmt: skip
        ]
    store.write_cells(run_id, cells)


def test_round_trip_keeps_every_sample(tmp_path):
    st = open_store(tmp_path / "q.db")
    _stored_run(st, "r1")
    assert [r["id"] for r in st.runs()] == ["r1"] and st.runs()[0]["cells"] == 2
    meta, cells = st.load_run("r1")
    assert meta["host"]["cores"] == 2
    assert cells[1].latency[0].samples == pytest.approx([4.0, 4.04, 3.96])
    assert cells[1].latency[0].speedup.median == 2.5
    # a cell already stored is never rewritten
    assert st.write_cells("r1", [CellResult(model="m1", recipe="fp32", status="error")]) == 0
    assert st.load_run("r1")[1][0].status == "ok"
    st.close()
    with sqlite3.connect(tmp_path / "q.db") as con:
        version = con.execute(
            "select value from quantbench_meta where key='schema_version'"
        ).fetchone()
    assert version == (str(SCHEMA_VERSION),)


def test_bad_stores_are_refused_never_replaced(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("my notes")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as con:
        con.execute("create table users (id int)")
    newer = tmp_path / "newer.db"
    open_store(newer).close()
    with sqlite3.connect(newer) as con:
        con.execute("update quantbench_meta set value='99' where key='schema_version'")
    good = tmp_path / "good.db"
    st = open_store(good)
    _stored_run(st, "r1", models=[f"m{i}" for i in range(20)])
    st.close()
    blob = good.read_bytes()
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(blob[:300])
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(blob[:4096] + b"\xff" * (len(blob) - 4096))
    cases = [
        (text, "not a quantbench database"), (other, "not a quantbench one"),
        (newer, "newer than this quantbench"), (truncated, "truncated"),
        (corrupt, "corrupted"), (tmp_path / "no" / "x.db", "does not exist"),
    ]  # fmt: skip
    for path, needle in cases:
        before = path.read_bytes() if path.exists() else None
        assert main(["runs", "--store", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and "\n" not in err, err
        assert (path.read_bytes() if path.exists() else None) == before  # untouched
    url = "postgresql+psycopg://qb:secret@127.0.0.1:1/qb"
    assert main(["runs", "--store", url]) == 2
    err = capsys.readouterr().err
    assert "unreachable" in err and "secret" not in err  # the password is not printed


def test_store_edge_cases(tmp_path, capsys):
    # a path with URL characters is a file name, not a query string
    odd = tmp_path / "a?b#c.db"
    st = open_store(odd)
    _stored_run(st, "r1")
    # a NaN sample is not a timing: dropped, and the cell is still stored
    bad = CellResult(model="m2", recipe="fp32", latency=[_point(1.0)])
    bad.latency[0].samples = [1.0, float("nan")]
    assert st.write_cells("r1", [bad]) == 1
    assert st.load_run("r1")[1][-1].latency[0].samples == [1.0]
    st.close()
    assert odd.is_file() and not (tmp_path / "a").exists()
    # read-only commands do not create a store for a mistyped path
    missing = tmp_path / "typo.db"
    assert main(["runs", "--store", str(missing)]) == 2
    assert "no store at" in capsys.readouterr().err and not missing.exists()
    # --resume takes its settings from the store
    assert main(["run", "--resume", "r1", "--store", str(odd), "--models", "bert"]) == 2
    assert "drop models" in capsys.readouterr().err


def test_commands_on_stored_runs(tmp_path, capsys):
    db = tmp_path / "q.db"
    st = open_store(db)
    _stored_run(st, "base")
    _stored_run(st, "slower", scale=1.5)  # a planted 50% regression
    _stored_run(st, "other", models=("m9",))
    st.close()
    s = ["--store", str(db)]
    assert main(["runs", *s]) == 0
    out = capsys.readouterr().out
    assert "base" in out and "slower" in out and "AMD EPYC (2 cores)" in out
    assert main(["show", "base", *s]) == 0
    out = capsys.readouterr().out
    row = next(ln for ln in out.splitlines() if "static-int8" in ln and ln.startswith("m1"))
    assert "2.50x [2.50, 2.50]" in row  # the speedup with its interval
    assert "contended" not in out  # no point was
    assert main(["show", "nope", *s]) == 2
    err = capsys.readouterr().err
    assert "no run 'nope'" in err and "recent runs:" in err and "base" in err
    assert main(["export", "base", "--format", "json", *s]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["run"]["id"] == "base" and len(doc["results"]) == 2
    assert main(["export", "base", "--format", "csv", "-o", str(tmp_path / "b.csv"), *s]) == 0
    assert "static-int8" in (tmp_path / "b.csv").read_text()
    # compare (significance, gates) is tested in test_compare.py
    assert main(["report", "base", *s, "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "report.html").is_file()


def _config(tmp_path: Path, models: list[str]) -> Path:
    cfg = {"models": models, "recipes": ["dynamic-int8"], "measure": ["size", "latency"],
           **fast_overrides()}  # fmt: skip
    p = tmp_path / "run.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.mark.slow
def test_sigkill_then_resume_stores_every_cell_once(tmp_path, tiny_bert_dir, tiny_classifier_dir):
    db = tmp_path / "q.db"
    models = ["squeezenet", f"hf:{tiny_bert_dir}", f"hf:{tiny_classifier_dir}"]
    cfg = _config(tmp_path, models)
    env = {**os.environ, "QUANTBENCH_FAULT": f"hf:{tiny_classifier_dir}:hang"}
    cmd = [sys.executable, "-m", "quantbench.cli", "run", "--config", str(cfg), "--store",
           str(db), "--out", str(tmp_path / "out"), "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 240
    rows: list[tuple] = []
    while time.time() < deadline:
        if db.exists():
            try:
                with sqlite3.connect(db) as con:
                    rows = con.execute(
                        "select id, model, recipe, finished_at from cells"
                    ).fetchall()
            except sqlite3.OperationalError:
                rows = []
        if len(rows) >= 4:  # two models x (fp32, dynamic-int8): the third hangs
            break
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # no chance to clean up
    proc.wait()
    assert len(rows) == 4, rows
    with sqlite3.connect(db) as con:
        run_id, status = con.execute("select id, status from runs").fetchone()
    assert status == "running"  # it never finished
    assert main(["run", "--resume", run_id, "--store", str(db), "--no-progress"]) == 0
    with sqlite3.connect(db) as con:
        after = con.execute("select id, model, recipe, finished_at from cells").fetchall()
        status = con.execute("select status from runs").fetchone()[0]
    assert sorted(after[:4]) == sorted(rows)  # the earlier cells untouched
    keys = [(m, r) for _, m, r, _ in after]
    assert len(keys) == len(set(keys)) == 6  # every cell exactly once
    assert status == "finished"
    assert main(["run", "--resume", run_id, "--store", str(db), "--no-progress"]) == 0
    with sqlite3.connect(db) as con:
        assert con.execute("select count(*) from cells").fetchone()[0] == 6


@pytest.mark.slow
def test_run_writes_to_the_store_as_it_goes(tmp_path, capsys):
    db = tmp_path / "q.db"
    cfg = _config(tmp_path, ["squeezenet"])
    assert main(["run", "--config", str(cfg), "--store", str(db), "--out",
                 str(tmp_path / "o"), "--no-isolate"]) == 0  # fmt: skip
    assert "stored:  run " in capsys.readouterr().out
    st = open_store(db)
    (run,) = st.runs()
    meta, cells = st.load_run(run["id"])
    st.close()
    assert run["status"] == "finished" and {c.recipe for c in cells} == {"fp32", "dynamic-int8"}
    assert all(p.samples for c in cells for p in c.latency)  # raw samples stored
    exported = json.loads((tmp_path / "o" / "results.json").read_text())
    assert len(exported["results"]) == len(cells)
    # a second real run, compared with the first: the table and the plots
    assert main(["run", "--config", str(cfg), "--store", str(db), "--out",
                 str(tmp_path / "o2"), "--no-isolate"]) == 0  # fmt: skip
    capsys.readouterr()
    st = open_store(db)
    ids = [r["id"] for r in st.runs()][::-1]
    st.close()
    assert main(["compare", *ids, "--store", str(db), "--out", str(tmp_path / "c")]) == 0
    text = capsys.readouterr().out
    assert "| squeezenet | dynamic-int8 | 1 × 32 |" in text
    assert (tmp_path / "c" / "compare_latency.png").is_file()
    assert (tmp_path / "c" / "compare_speedup.png").is_file()


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="module")
def pg_url():
    import shutil
    import tempfile

    url = os.environ.get("QUANTBENCH_TEST_PG_URL")
    # Not under pytest's tmp dirs: those are private to root, and the server runs as
    # 'postgres' when the tests run as root.
    tmp = Path(tempfile.mkdtemp(prefix="quantbench-pg-"))
    os.chmod(tmp, 0o755)
    data = None
    if not url:
        try:
            started = start_postgres(tmp)
        except (subprocess.CalledProcessError, OSError) as e:
            started, reason = None, f"could not start PostgreSQL: {e}"
        else:
            reason = "no PostgreSQL server binaries (Debian package postgresql)"
        if started is None:
            if os.environ.get("QUANTBENCH_REQUIRE_PG"):
                pytest.fail(reason)
            pytest.skip(reason)
        url, data = started
    yield url
    if data is not None:
        stop_postgres(data)
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.slow
def test_postgresql_store(pg_url, tmp_path, capsys):
    import sqlalchemy as sa

    st = open_store(pg_url)
    with st.engine.begin() as con:  # a clean slate when the server is shared
        for t in ("samples", "cells", "runs", "quantbench_meta"):
            con.execute(sa.text(f"drop table if exists {t} cascade"))
    st.close()
    st = open_store(pg_url)
    _stored_run(st, "pg-base")
    _stored_run(st, "pg-slow", scale=1.2)
    meta, cells = st.load_run("pg-base")
    assert cells[1].latency[0].samples == pytest.approx([4.0, 4.04, 3.96])
    st.close()
    # 3 samples a side: too few to test a change, so the gate has nothing to check (exit 2,
    # test_compare.py); the comparison itself reads both runs from PostgreSQL
    assert main(["compare", "pg-base", "pg-slow", "--store", pg_url, "--out",
                 str(tmp_path / "c"), "--fail-if-slower", "10"]) == 2  # fmt: skip
    assert "nothing to check" in capsys.readouterr().err
    assert main(["compare", "pg-base", "pg-slow", "--store", pg_url, "--out",
                 str(tmp_path / "c2")]) == 0  # fmt: skip
    assert "pg-slow" in capsys.readouterr().out
    # a real run into PostgreSQL
    cfg = _config(tmp_path, ["squeezenet"])
    assert main(["run", "--config", str(cfg), "--store", pg_url, "--out",
                 str(tmp_path / "o"), "--no-isolate"]) == 0  # fmt: skip
    assert main(["runs", "--store", pg_url]) == 0
    assert "pg-base" in capsys.readouterr().out
    # a PostgreSQL database that is not a quantbench store is refused
    st = open_store(pg_url)
    with st.engine.begin() as con:
        con.execute(sa.text("update quantbench_meta set value='other' where key='app'"))
    st.close()
    with pytest.raises(QuantbenchError, match="not a quantbench database"):
        open_store(pg_url)


@pytest.mark.slow
def test_resume_retry_errors_replaces_failed_cells(tmp_path, monkeypatch, capsys):
    db = tmp_path / "q.db"
    cfg = _config(tmp_path, ["squeezenet", "resnet18"])
    monkeypatch.setenv("QUANTBENCH_FAULT", "resnet18:raise")
    base = ["run", "--config", str(cfg), "--store", str(db), "--no-isolate", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "o")]) == 0
    with sqlite3.connect(db) as con:
        run_id = con.execute("select id from runs").fetchone()[0]
        before = dict(con.execute("select model || ' ' || recipe, status from cells").fetchall())
    assert before["resnet18 fp32"] == "error" and before["squeezenet fp32"] == "ok"
    monkeypatch.delenv("QUANTBENCH_FAULT")
    assert main(["run", "--retry-errors", "--store", str(db)]) == 2  # needs --resume
    assert main(["run", "--resume", run_id, "--retry-errors", "--store", str(db)]) == 0
    with sqlite3.connect(db) as con:
        after = con.execute("select model || ' ' || recipe, status from cells").fetchall()
    assert sorted(after) == sorted((k, "ok") for k in before)  # each once, all ok now


def test_sweep_runs_groups_runs_by_sweep_id(tmp_path):
    from quantbench.errors import QuantbenchError
    from quantbench.store import open_store

    st = open_store(tmp_path / "s.db")
    for i, (sid, node) in enumerate([("sw1", "a"), ("sw1", "b"), ("sw2", "a"), (None, None)]):
        meta = {"id": f"r{i}", "started_at": f"2026-01-0{i + 1}", "host": {"hostname": node}}
        if sid:
            meta.update(sweep_id=sid, node=node)
        st.begin_run(meta)
    got = st.sweep_runs("sw1")
    assert [m["id"] for m in got] == ["r0", "r1"]
    assert [m["node"] for m in got] == ["a", "b"]
    with pytest.raises(QuantbenchError, match="sweeps: sw1, sw2"):
        st.sweep_runs("nope")
    st.close()
