"""Never overwrite what is not yours; faults of the machine named as what they are.

Files the user names (``export -o``, ``quantize -o``) and output directories (``run
--out``, ``report --out``, ``compare --out``, ``sensitivity --out``); a full disk, a
file-size limit and a read-only filesystem, real ones: a tmpfs mounted for the test (we
are root here and in CI), a read-only bind mount, ``RLIMIT_FSIZE`` in a child process.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

from fault_hooks import fill
from quantbench.cli import main
from quantbench.errors import QuantbenchError
from quantbench.store import open_store
from test_store import _stored_run

SRC = str(Path(__file__).resolve().parent.parent / "src")


def _one_line(err: str) -> str:
    err = err.strip()
    assert err and "\n" not in err and "Traceback" not in err, err
    return err


def _store(tmp_path: Path, *runs: str) -> Path:
    db = tmp_path / "q.db"
    st = open_store(db)
    for r in runs:
        _stored_run(st, r)
    st.close()
    return db


def _leftovers(d: Path) -> list[str]:
    """Temporary files a write left behind (``.NAME.xxxx.tmp``)."""
    return sorted(p.name for p in d.rglob("*.tmp"))


@pytest.fixture
def mount_tmpfs(tmp_path):
    """``mount_tmpfs(size)``: a real filesystem of that size, unmounted after the test;
    the test is skipped (with the reason) where this process cannot mount."""
    mounted: list[Path] = []

    def make(size: str = "256k") -> Path:
        d = tmp_path / f"fs{len(mounted)}"
        d.mkdir()
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                            str(d)], capture_output=True, text=True)  # fmt: skip
        if p.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({p.stderr.strip() or p.returncode}); "
                        "test_file_size_limit covers the class with RLIMIT_FSIZE")  # fmt: skip
        mounted.append(d)
        return d

    yield make
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def read_only_dir(src: Path, dst: Path) -> Path:
    """``dst``: a read-only bind mount of ``src`` (root ignores file modes, so chmod
    would prove nothing); the test is skipped where this process cannot mount. The
    caller unmounts it (``umount -l``)."""
    dst.mkdir()
    for cmd in (["mount", "--bind", str(src), str(dst)],
                ["mount", "-o", "remount,ro,bind", str(dst)]):  # fmt: skip
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            subprocess.run(["umount", "-l", str(dst)], capture_output=True)
            pytest.skip(f"cannot make a read-only bind mount here: {p.stderr.strip()}")
    return dst


# ------------------------------------------------------------------ files the user names


def test_export_never_overwrites_without_force_nor_the_store(tmp_path, capsys):
    db = _store(tmp_path, "r1")
    before = db.read_bytes()
    mine = tmp_path / "mine.json"
    mine.write_text("keep")
    assert main(["export", "r1", "--store", str(db), "-o", str(mine)]) == 2
    assert "exists; use --force" in _one_line(capsys.readouterr().err)
    assert mine.read_text() == "keep"
    # the store, however its path is spelled, is never written over, --force or not
    (tmp_path / "link.db").symlink_to(db)
    os.link(db, tmp_path / "hard.json")
    (tmp_path / "sub").mkdir()
    spellings = [str(db), str(tmp_path / "link.db"), str(tmp_path / "hard.json"),
                 str(tmp_path / "sub" / ".." / "q.db"), f"{db}-journal", f"{db}-wal"]  # fmt: skip
    for target in spellings:
        for force in ([], ["--force"]):
            assert main(["export", "r1", "--store", str(db), "-o", target, *force]) == 2
            err = _one_line(capsys.readouterr().err)
            assert "results store" in err and "never written over" in err, err
    assert db.read_bytes() == before and not Path(f"{db}-journal").exists()
    # any database, a directory, a missing directory: refused
    other = tmp_path / "other.db"
    other.write_bytes(before)
    for target, needle in [(other, "is a database"), (tmp_path / "sub", "is a directory"),
                           (tmp_path / "no" / "x.json", "does not exist")]:  # fmt: skip
        assert main(["export", "r1", "--store", str(db), "-o", str(target), "--force"]) == 2
        assert needle in _one_line(capsys.readouterr().err)
    # --force replaces a plain file, atomically: nothing half-written, no temp file left
    assert main(["export", "r1", "--store", str(db), "-o", str(mine), "--force"]) == 0
    assert json.loads(mine.read_text())["run"]["id"] == "r1"
    fresh = tmp_path / "fresh.csv"
    assert main(["export", "r1", "--store", str(db), "-o", str(fresh), "--format", "csv"]) == 0
    assert "static-int8" in fresh.read_text()
    assert _leftovers(tmp_path) == [] and db.read_bytes() == before


def test_atomic_write_without_overwrite_never_replaces(tmp_path):
    from quantbench.files import atomic_write_text

    p = tmp_path / "a.txt"
    atomic_write_text(p, "one", overwrite=False)
    with pytest.raises(QuantbenchError, match="exists; use --force"):
        atomic_write_text(p, "two", overwrite=False)
    atomic_write_text(p, "three")
    assert p.read_text() == "three" and _leftovers(tmp_path) == []


def test_quantize_never_writes_over_the_store(tmp_path, monkeypatch, capsys):
    db = _store(tmp_path, "r1")
    before = db.read_bytes()
    monkeypatch.setenv("QUANTBENCH_STORE", str(db))
    for out in (db, tmp_path / "link.pt"):
        if out != db:
            out.symlink_to(db)
        args = ["quantize", "squeezenet", "--recipe", "dynamic-int8", "-o", str(out), "--force"]
        assert main(args) == 2
        assert "is the results store" in _one_line(capsys.readouterr().err)
    assert db.read_bytes() == before


# ------------------------------------------------------------------- output directories


@pytest.mark.slow  # seconds of real runs: the everyday suite stays under 5 minutes
def test_report_out_into_another_runs_directory_is_refused(tmp_path, capsys):
    db = _store(tmp_path, "r1", "r2")
    s = ["--store", str(db)]
    rep = tmp_path / "rep"
    assert main(["report", "r1", *s, "--out", str(rep)]) == 0
    first = (rep / "report.md").read_text()
    assert main(["report", "r2", *s, "--out", str(rep)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "holds run r1" in err and "not overwritten" in err, err
    assert (rep / "report.md").read_text() == first
    assert main(["report", "r1", *s, "--out", str(rep)]) == 0  # its own: rendered again
    # a run's own directory (its results.json) is that run's alone
    run_dir = tmp_path / "run2"
    run_dir.mkdir()
    assert main(["export", "r2", *s, "-o", str(run_dir / "results.json")]) == 0
    assert main(["report", "r1", *s, "--out", str(run_dir)]) == 2
    assert "holds run r2" in _one_line(capsys.readouterr().err)
    assert not (run_dir / "report.md").exists()
    assert main(["report", str(run_dir)]) == 0  # the run's report, in the run's directory
    # compare --out: free, or the same comparison; never a run's report directory
    assert main(["compare", "r1", "r2", *s, "--out", str(rep)]) == 2
    assert "holds run r1" in _one_line(capsys.readouterr().err)
    cmp_dir = tmp_path / "cmp"
    assert main(["compare", "r1", "r2", *s, "--out", str(cmp_dir)]) == 0
    assert main(["compare", "r1", "r2", *s, "--out", str(cmp_dir)]) == 0
    assert main(["report", "r1", *s, "--out", str(cmp_dir)]) == 2
    assert "the comparison r1 vs r2" in _one_line(capsys.readouterr().err)
    assert _leftovers(tmp_path) == [] and not list(tmp_path.rglob(".quantbench.lock"))


def test_output_directories_have_one_owner(tmp_path, monkeypatch):
    from quantbench import outdir

    marked = tmp_path / "marked"
    for name, content in [("report.md", "# quantbench report: r9\n"),
                          ("compare.md", "# x\n"), ("sensitivity.json", "{}")]:  # fmt: skip
        d = tmp_path / name
        d.mkdir()
        (d / name).write_text(content)
        with pytest.raises(QuantbenchError, match="already holds"):
            outdir.prepare_out_dir(d)
    assert outdir.owner(tmp_path / "report.md") == ("run", "r9")  # an older report's heading
    marked.mkdir()
    (marked / "results.json").write_text(json.dumps({"run": {"id": "r1"}}))
    with pytest.raises(QuantbenchError, match="now holds run r1"):  # another run took its path
        outdir.reopen_out_dir(marked, "r2")
    assert outdir.reopen_out_dir(marked, "r1") == marked
    # the default directory (a timestamp) taken in the same second, or locked: a suffix
    base = tmp_path / "runs" / "20260101-000000"
    monkeypatch.setattr(outdir, "default_out_dir", lambda: base)
    second = base.with_name(base.name + "-2")
    with ExitStack() as held:
        assert outdir.prepare_out_dir(None, held) == base
        with ExitStack() as other:  # locked (flock excludes this process too): the next
            assert outdir.prepare_out_dir(None, other) == second
        assert not second.exists()  # made, locked, left unused: removed again
        (base / "results.json").write_text(json.dumps({"run": {"id": "r1"}}))
    assert outdir.prepare_out_dir(None) == second  # base holds a run now


# ----------------------------------------------------------------- faults of the machine


def test_disk_fault_messages_name_the_fault():
    from quantbench.files import disk_fault

    path = "/tmp/x.json"
    for code, needle in [(errno.ENOSPC, "no space left on /"), (errno.EDQUOT, "quota exceeded"),
                         (errno.EFBIG, "file too large writing /tmp/x.json"),
                         (errno.EROFS, "is read-only: cannot write /tmp/x.json")]:  # fmt: skip
        fault = disk_fault(OSError(code, os.strerror(code)), path)
        assert fault is not None and needle in str(fault) and fault.errno == code, fault
    assert disk_fault(OSError(errno.ENOENT, "no"), path) is None
    assert disk_fault(ValueError("x"), path) is None


def test_export_and_report_on_a_full_disk(tmp_path, mount_tmpfs, capsys):
    db = _store(tmp_path, "r1")
    full = mount_tmpfs("64k")
    fill(str(full / "filler"))
    out = full / "r1.json"
    assert main(["export", "r1", "--store", str(db), "-o", str(out)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert f"no space left on {full} (tmpfs) writing {out}" in err, err
    assert main(["report", "r1", "--store", str(db), "--out", str(full / "rep")]) == 2
    assert "no space left on" in _one_line(capsys.readouterr().err)
    assert sorted(p.name for p in full.iterdir()) == ["filler"]  # no partial file, no dir


def test_write_to_a_read_only_filesystem(tmp_path, capsys):
    db = _store(tmp_path, "r1")
    src = tmp_path / "src"
    src.mkdir()
    ro = read_only_dir(src, tmp_path / "ro")
    try:
        out = ro / "r1.json"
        assert main(["export", "r1", "--store", str(db), "-o", str(out)]) == 2
        err = _one_line(capsys.readouterr().err)
        assert f"{ro} (" in err and f"is read-only: cannot write {out}" in err, err
    finally:
        subprocess.run(["umount", "-l", str(ro)], capture_output=True)
    assert list(src.iterdir()) == []


def test_file_size_limit(tmp_path):
    """EFBIG: a real file-size limit (``ulimit -f``) on a real child process."""
    db = _store(tmp_path, "r1")
    out = tmp_path / "r1.json"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    env = {**os.environ, "PYTHONPATH": SRC}
    p = subprocess.run([sys.executable, "-m", "quantbench", "export", "r1", "--store", str(db),
                        "-o", str(out)], capture_output=True, text=True, env=env,
                       preexec_fn=limit, timeout=120)  # fmt: skip
    assert p.returncode == 2, p.stderr
    err = _one_line(p.stderr)
    assert f"file too large writing {out}" in err and "ulimit -f) is 2000 bytes" in err, err
    assert not out.exists() and _leftovers(tmp_path) == []


@pytest.mark.slow
def test_quantize_onto_a_full_disk(mount_tmpfs, capsys):
    full = mount_tmpfs("64k")
    fill(str(full / "filler"))
    out = full / "q.pt"
    assert main(["quantize", "squeezenet", "--recipe", "dynamic-int8", "-o", str(out)]) == 2
    assert f"no space left on {full} (tmpfs) writing {out}" in _one_line(capsys.readouterr().err)
    assert sorted(p.name for p in full.iterdir()) == ["filler"]


@pytest.mark.slow
def test_disk_full_mid_run_stops_keeps_every_cell_and_resumes(tmp_path, mount_tmpfs):
    """A real full disk, filled by the first model's worker after its cells are measured:
    the run stops with one line, the store keeps those cells, results.json keeps what it
    had; with space again, --resume measures only the rest."""
    import sqlite3

    import yaml

    from conftest import fast_overrides

    fs = mount_tmpfs("1m")
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"models": ["squeezenet", "tv:squeezenet1_1"],
                                   "recipes": ["dynamic-int8"], "measure": ["size"],
                                   **fast_overrides()}))  # fmt: skip
    db, out, filler = tmp_path / "q.db", fs / "out", fs / "filler"
    env = {**os.environ, "PYTHONPATH": SRC, "QUANTBENCH_FAULT": "squeezenet:fill",
           "QUANTBENCH_FAULT_FILL": str(filler)}  # fmt: skip
    cmd = [sys.executable, "-m", "quantbench", "run", "--config", str(cfg), "--store", str(db),
           "--out", str(out), "--no-progress"]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 2, p.stderr
    err = p.stderr.strip().splitlines()[-1]
    assert "Traceback" not in p.stderr and err.startswith("quantbench: error: "), p.stderr
    assert f"no space left on {fs} (tmpfs) writing {out / 'results.json'}" in err, err
    with sqlite3.connect(db) as con:
        run_id, status = con.execute("select id, status from runs").fetchone()
        cells = con.execute("select model, recipe from cells").fetchall()
    assert sorted(cells) == [("squeezenet", "dynamic-int8"), ("squeezenet", "fp32")]
    assert f"2 cell(s) of run {run_id} are stored" in err and f"--resume {run_id}" in err, err
    assert status == "interrupted"
    kept = json.loads((out / "results.json").read_text())  # what it had: whole, valid
    assert kept["run"]["id"] == run_id and kept["results"] == []
    assert _leftovers(fs) == []
    filler.unlink()  # space again
    env.pop("QUANTBENCH_FAULT")
    p = subprocess.run([sys.executable, "-m", "quantbench", "run", "--resume", run_id,
                        "--store", str(db), "--no-progress"], capture_output=True, text=True,
                       env=env, timeout=600)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "[1/2] squeezenet: already stored, skipped" in p.stderr
    with sqlite3.connect(db) as con:
        keys = con.execute("select model, recipe from cells").fetchall()
    assert len(keys) == len(set(keys)) == 4  # every cell once
    doc = json.loads((out / "results.json").read_text())
    assert len(doc["results"]) == 4 and doc["run"]["status"] == "finished"
