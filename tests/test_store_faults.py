"""A store's faults, named as what they are: locked by a real second process (waited for,
a bounded time), read-only (a read-only bind mount: root ignores file modes), damaged
(random bytes in the middle: one line and a count), a schema version row missing or
nonsense, a row whose text does not decode."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quantbench import storefaults
from quantbench.cli import main
from quantbench.results import CellResult
from quantbench.store import open_store
from test_files import _one_line, read_only_dir
from test_store import _stored_run

HOLD = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("COMMIT")
"""


def _holder(db: Path, seconds: float) -> subprocess.Popen:
    """A real second process holding ``db`` in a write transaction for ``seconds``."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(db), str(seconds)],
                         stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert p.stdout.readline().strip() == "locked"
    return p


def _big_store(path: Path, cells: int = 300) -> Path:
    st = open_store(path)
    st.begin_run({"id": "r1", "spec": {"models": []}})
    st.write_cells("r1", [CellResult(model=f"m{i}", recipe="fp32", details={"x": "y" * 500})
                          for i in range(cells)])  # fmt: skip
    st.close()
    return path


def test_store_locked_by_another_process_is_waited_for_then_named(tmp_path, capsys, monkeypatch):
    db = tmp_path / "q.db"
    st = open_store(db)
    _stored_run(st, "r1")
    st.close()
    monkeypatch.setattr(storefaults, "BUSY_TIMEOUT_S", 1.5)  # 10 s in production
    holder = _holder(db, 60)
    try:
        t0 = time.monotonic()
        assert main(["runs", "--store", str(db)]) == 2
        waited = time.monotonic() - t0
        err = _one_line(capsys.readouterr().err)
        assert f"is locked by another process (pid {holder.pid}): waited 1.5 s" in err, err
        assert "corrupted" not in err and waited >= 1.4, (err, waited)
    finally:
        holder.kill()
        holder.wait()
    # a lock released within the wait is only waited for
    monkeypatch.setattr(storefaults, "BUSY_TIMEOUT_S", 10.0)
    holder = _holder(db, 1.0)
    try:
        assert main(["runs", "--store", str(db)]) == 0
        assert "r1" in capsys.readouterr().out
    finally:
        holder.wait()


def test_read_only_store_is_read_only_not_corrupted(tmp_path, capsys):
    import yaml

    src = tmp_path / "src"
    src.mkdir()
    st = open_store(src / "q.db")
    _stored_run(st, "r1")
    st.close()
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"models": ["squeezenet"], "recipes": ["dynamic-int8"],
                                   "measure": ["size"]}))  # fmt: skip
    ro = read_only_dir(src, tmp_path / "ro")
    try:
        before = (ro / "q.db").read_bytes()
        assert main(["runs", "--store", str(ro / "q.db")]) == 0  # reading is fine
        assert "r1" in capsys.readouterr().out
        out = tmp_path / "o"
        args = ["run", "--config", str(cfg), "--out", str(out), "--no-progress", "--store"]
        assert main([*args, str(ro / "q.db")]) == 2
        err = _one_line(capsys.readouterr().err)
        assert "store" in err and "is read-only (the filesystem" in err, err
        assert "mounted read-only" in err and "corrupted" not in err, err
        assert not out.exists()  # a refused run leaves no empty directory behind
        assert main([*args, str(ro / "new.db")]) == 2
        err = _one_line(capsys.readouterr().err)
        assert "cannot create store" in err and "mounted read-only" in err, err
        assert (ro / "q.db").read_bytes() == before
    finally:
        subprocess.run(["umount", "-l", str(ro)], capture_output=True)


def test_immutable_store_file_is_read_only(tmp_path, capsys):
    """The other read-only store root meets: ``chattr +i`` (no mount needed)."""
    db = tmp_path / "q.db"
    st = open_store(db)
    _stored_run(st, "r1")
    st.close()
    p = subprocess.run(["chattr", "+i", str(db)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"chattr +i is not possible here: {p.stderr.strip() or p.returncode}")
    try:
        assert main(["show", "r1", "--store", str(db)]) == 0  # reading is fine
        capsys.readouterr()
        cfg = tmp_path / "run.yaml"
        cfg.write_text("{models: [squeezenet], recipes: [dynamic-int8], measure: [size]}")
        out = tmp_path / "o"
        assert main(["run", "--config", str(cfg), "--store", str(db), "--out", str(out),
                     "--no-progress"]) == 2  # fmt: skip
        err = _one_line(capsys.readouterr().err)
        assert not out.exists() and not list(tmp_path.glob(".*.lock"))
        assert "is read-only (the file is not writable: its mode, or chattr +i)" in err, err
    finally:
        subprocess.run(["chattr", "-i", str(db)], capture_output=True)


@pytest.fixture(scope="module")
def big_store(tmp_path_factory) -> bytes:
    """The bytes of a store with 300 cells (about 350 KB: b-tree pages to damage)."""
    return _big_store(tmp_path_factory.mktemp("big") / "good.db").read_bytes()


@pytest.mark.parametrize("offset", [4096, 8192, 100_000, 300_000])
def test_damaged_store_is_one_line_with_the_count(tmp_path, capsys, offset, big_store):
    blob = bytearray(big_store)
    rng = random.Random(1)
    for i in range(offset, offset + 3000):  # random bytes in the middle of the file
        blob[i] = rng.randrange(256)
    bad = tmp_path / "bad.db"
    bad.write_bytes(bytes(blob))
    assert main(["runs", "--store", str(bad)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "is corrupted (" in err and "not replaced" in err, err
    with sqlite3.connect(f"file:{bad}?mode=ro", uri=True) as con:
        try:
            rows = con.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError:
            rows = []
    lines = [ln.strip() for r in rows for ln in str(r[0]).splitlines()]
    problems = len([ln for ln in lines if ln and not ln.startswith("***")])  # one a line
    if problems > 1:
        assert f"and {problems - 1} more problem(s)" in err, (err, rows)
    assert bad.read_bytes() == bytes(blob)  # untouched


def test_schema_version_row_missing_or_nonsense(tmp_path, capsys):
    for value, needle in [(None, "has no schema_version row in quantbench_meta"),
                          ("abc", "has schema version 'abc', not a version number"),
                          ("-1", "has schema version '-1', not a version number")]:  # fmt: skip
        db = tmp_path / f"s{value}.db"
        open_store(db).close()
        with sqlite3.connect(db) as con:
            if value is None:
                con.execute("delete from quantbench_meta where key = 'schema_version'")
            else:
                con.execute("update quantbench_meta set value = ? where key = 'schema_version'",
                            (value,))  # fmt: skip
        before = db.read_bytes()
        assert main(["runs", "--store", str(db)]) == 2
        err = _one_line(capsys.readouterr().err)
        assert needle in err and "damaged" in err, err
        assert db.read_bytes() == before


def test_a_row_that_does_not_decode(tmp_path, capsys):
    db = _big_store(tmp_path / "q.db", cells=40)
    blob = bytearray(db.read_bytes())
    at = blob.find(b"y" * 200, len(blob) // 2)
    blob[at : at + 200] = bytes(random.Random(3).randrange(128, 256) for _ in range(200))
    db.write_bytes(bytes(blob))  # the b-tree is intact: only a record's text is damaged
    assert main(["show", "r1", "--store", str(db)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "is damaged: a row of run r1 is not UTF-8 text" in err, err
