"""One quantbench at a time per run and per output directory, across real processes:
two ``run --resume`` of one run at once (SQLite and PostgreSQL), a lock left by a
killed process taken over with a note, a lock file on a filesystem without flock."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import fast_overrides
from quantbench.locks import DIR_LOCK, Locked, _acquire_pidfile, acquire_file, lock_dir, lock_run
from quantbench.store import open_store
from test_files import _one_line
from test_store import pg_url  # noqa: F401  (the throwaway PostgreSQL server, a fixture)

SRC = str(Path(__file__).resolve().parent.parent / "src")
HOLD = """
import sys, time
from quantbench.locks import lock_dir
with lock_dir(sys.argv[1], "the holder"):
    print("held", flush=True)
    time.sleep(600)
"""


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC, **extra}


def test_directory_lock_names_its_holder_and_is_taken_over_once_it_dies(tmp_path, capsys):
    d = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(d)], stdout=subprocess.PIPE,
                              text=True, env=_env())  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(Locked) as e, lock_dir(d, "the second"):
            pass
        msg = str(e.value)
        assert f"output directory '{d}' is in use by the holder (pid {holder.pid} on " in msg
        assert socket.gethostname() in msg and "since 20" in msg and "\n" not in msg, msg
    finally:
        holder.send_signal(signal.SIGKILL)  # no chance to release: its file stays
        holder.wait()
    assert json.loads((d / DIR_LOCK).read_text())["pid"] == holder.pid
    with lock_dir(d, "the second"):  # the kernel released the flock: taken over, said so
        assert json.loads((d / DIR_LOCK).read_text())["pid"] == os.getpid()
    err = capsys.readouterr().err
    assert f"taking over the lock left by the holder (pid {holder.pid}" in err, err
    assert not (d / DIR_LOCK).exists()  # released: removed


def test_pid_file_lock_where_there_is_no_flock(tmp_path):
    path = tmp_path / "x.lock"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path.write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(),
                                    "since": "t", "what": "a live one"}))  # fmt: skip
        with pytest.raises(Locked, match=f"in use by a live one \\(pid {sleeper.pid}"):
            _acquire_pidfile(path, "me", "thing")
    finally:
        sleeper.kill()
        sleeper.wait()
    lock = _acquire_pidfile(path, "me", "thing")  # its holder is gone: taken over
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()
    path.write_text(json.dumps({"pid": 1, "host": "elsewhere", "since": "t", "what": "far"}))
    with pytest.raises(Locked, match="if it is gone, remove"):
        _acquire_pidfile(path, "me", "thing")


def test_lock_file_of_a_run_next_to_an_sqlite_store(tmp_path):
    st = open_store(tmp_path / "q.db")
    try:
        with lock_run(st, "r1", "first"):
            lockfile = tmp_path / ".q.db.run-r1.lock"
            assert json.loads(lockfile.read_text())["what"] == "first"
            with pytest.raises(Locked, match="run r1 is in use by first"):
                acquire_file(lockfile, "second", "run r1")
        assert not lockfile.exists()
    finally:
        st.close()


def _stored_size_run(db_or_url: str, run_id: str, out: Path, models: list[str]) -> None:
    """A stored run with no cells yet: what ``--resume`` completes."""
    from quantbench.runner.checks import build_spec

    spec = build_spec(overrides={"models": ",".join(models), "recipes": "dynamic-int8",
                                 "measure": "size", **fast_overrides()})  # fmt: skip
    st = open_store(db_or_url)
    try:
        st.begin_run({"id": run_id, "started_at": "2026-01-01T00:00:00+00:00",
                      "status": "interrupted", "spec": spec.to_dict(), "out_dir": str(out)})  # fmt: skip
    finally:
        st.close()


@pytest.mark.slow
def test_two_resumes_of_one_run_at_once(tmp_path):
    """The second of two real ``quantbench run --resume`` processes says in one line who
    holds the run, exits 2 and measures nothing; the first (killed) leaves its locks,
    which the next resume takes over with a note; every cell is stored once, and
    results.json matches the store."""
    db, out, pidfile = tmp_path / "q.db", tmp_path / "out", tmp_path / "hang.pid"
    _stored_size_run(str(db), "r1", out, ["squeezenet", "tv:squeezenet1_1"])
    cmd = [sys.executable, "-m", "quantbench", "run", "--resume", "r1", "--store", str(db),
           "--no-progress"]  # fmt: skip
    first = subprocess.Popen(cmd, env=_env(QUANTBENCH_FAULT="squeezenet:hang",
                                           QUANTBENCH_FAULT_PIDFILE=str(pidfile)),
                             start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 240
    while not pidfile.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pidfile.exists(), first.communicate(timeout=30)
    second = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    assert second.returncode == 2, second.stderr
    err = _one_line(second.stderr)
    assert f"run r1 is in use by quantbench run --resume r1 (pid {first.pid} on " in err, err
    with sqlite3.connect(db) as con:  # the second measured nothing; the first hangs
        assert con.execute("select count(*) from cells").fetchone()[0] == 0
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    third = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert third.returncode == 0, third.stderr
    assert f"taking over the lock left by quantbench run --resume r1 (pid {first.pid}" in (
        third.stderr
    )
    with sqlite3.connect(db) as con:
        keys = con.execute("select model, recipe from cells").fetchall()
    assert len(keys) == len(set(keys)) == 4
    doc = json.loads((out / "results.json").read_text())
    assert sorted((c["model"], c["recipe"]) for c in doc["results"]) == sorted(keys)
    assert not list(tmp_path.rglob("*.lock"))


@pytest.mark.slow
def test_run_locked_across_processes_in_postgresql(pg_url, tmp_path):  # noqa: F811
    """PostgreSQL: an advisory lock per run (released by the server when its connection
    ends), its holder named through application_name."""
    import sqlalchemy as sa

    st = open_store(pg_url)
    with st.engine.begin() as con:  # a clean slate when the server is shared
        for t in ("samples", "cells", "runs", "quantbench_meta"):
            con.execute(sa.text(f"drop table if exists {t} cascade"))
    st.close()
    out = tmp_path / "out"
    _stored_size_run(pg_url, "pg-r1", out, ["squeezenet"])
    cmd = [sys.executable, "-m", "quantbench", "run", "--resume", "pg-r1", "--store", pg_url,
           "--no-progress"]  # fmt: skip
    st = open_store(pg_url)
    try:
        with lock_run(st, "pg-r1", "this test"):
            p = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
            assert p.returncode == 2, p.stderr
            err = _one_line(p.stderr)
            assert f"run pg-r1 is in use by another quantbench (pid {os.getpid()} on " in err
            assert "since 20" in err, err
            assert not out.exists()
    finally:
        st.close()
    p = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    st = open_store(pg_url)
    try:
        assert len(st.cell_rows("pg-r1")) == 2
    finally:
        st.close()


def test_lock_run_of_an_in_memory_store_is_a_no_op():
    st = open_store("sqlite://")  # in memory: one process only, nothing to lock
    try:
        with lock_run(st, "r1", "x"), lock_run(st, "r1", "y"):
            pass
    finally:
        st.close()
