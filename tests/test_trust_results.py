"""A wrong result is never "ok": NaN/inf outputs are errors that say whose outputs they
were, never recommended; every JSON quantbench writes is strict JSON; a store that fails
mid-run (a real PostgreSQL server stopped) exits 3 and ``quantbench import`` completes it."""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import fast_overrides
from quantbench.cli import EXIT_NOT_STORED, main
from quantbench.results import (
    Accuracy,
    CellResult,
    Fidelity,
    LatencyPoint,
    RunMeta,
    Stats,
    read_json,
    write_json,
)
from quantbench.runner import pipeline
from quantbench.store import open_store


def strict_load(text: str):
    """json.loads that refuses NaN/Infinity tokens, as jq, browsers and RFC 8259 do."""

    def refuse(token: str):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


# A model whose every output is NaN (fp32 included), and one that is finite in fp32 but
# whose dynamic-int8 weights round a 1e-3 margin to 0, so that log() gives -inf.
MODELS = """
import torch
from torch import nn


class NanNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, num_classes)
        with torch.no_grad():
            self.fc.weight.fill_(float("nan"))

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(2, 3)))


class LogNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.fc = nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0, -0.999]]))

    def forward(self, x):
        v = x.abs().mean(dim=(1, 2, 3)).unsqueeze(1) + 1.0
        y = torch.log(self.fc(torch.cat([v, v], dim=1)))
        return y.expand(-1, self.num_classes) + torch.arange(self.num_classes, dtype=y.dtype)
"""


@pytest.fixture
def nan_models(tmp_path: Path) -> Path:
    p = tmp_path / "wrong_models.py"
    p.write_text(MODELS)
    return p


def _point(ms: float, speedup: float | None = None, n: int = 3) -> LatencyPoint:
    from quantbench.results import Speedup

    return LatencyPoint(
        batch_size=1, input_size=224, sweep="input_size", unit="ms",
        stats=Stats(mean=ms, std=0.0, median=ms, p90=ms, p99=ms, min=ms, n=n, ci_low=ms,
                    ci_high=ms, verdict="stable"),
        samples=[ms] * n, speedup=Speedup(speedup, speedup, speedup, n) if speedup else None,
    )  # fmt: skip


# --------------------------------------------------------------------------- units


def test_fidelity_says_whose_outputs_are_not_finite():
    import torch

    from quantbench.measure.fidelity import compare, nonfinite

    ok, nan = torch.ones(2, 3), torch.full((2, 3), float("nan"))
    inf = torch.tensor([[1.0, float("inf"), 0.0], [1.0, 1.0, 1.0]])
    assert nonfinite(inf) == (1, 6) and nonfinite((ok, {"a": inf})) == (1, 12)
    for ref, out, whose, says in [
        (ok, nan, "variant", "6 of 6 output values are NaN/inf (fp32's are finite)"),
        (nan, ok, "fp32", "fp32 outputs not finite"),
        (nan, inf, "both", "fp32's too"),
    ]:
        f = compare(ref, out, is_classifier=True)
        assert f.nonfinite == whose and says in f.note
        # nothing that reads as agreement: no cosine of -1, no 100% top-1
        assert f.cosine is None and f.top1_agreement is None and f.max_abs_err is None
    assert compare(ok, ok, True).nonfinite is None


def test_task_metrics_refuse_nonfinite_outputs():
    import torch

    from quantbench.measure.accuracy import (
        NonFiniteOutputs,
        classification_metrics,
        embedding_fidelity,
    )

    logits = torch.full((4, 3), float("nan"))
    with pytest.raises(NonFiniteOutputs, match="12 of 12 values are NaN/inf"):
        classification_metrics(logits, torch.tensor([0, 1, 2, 0]))  # argmax would say 25%
    e = torch.randn(4, 8)
    with pytest.raises(NonFiniteOutputs, match="^fp32 outputs not finite"):
        embedding_fidelity(e * float("inf"), e)
    with pytest.raises(NonFiniteOutputs, match="^outputs not finite"):
        embedding_fidelity(e, e * float("nan"))


def test_nan_or_nonfinite_cells_are_never_recommended():
    from quantbench.best import keeps_fidelity, recommend

    nan = float("nan")
    fp32 = CellResult(model="m", recipe="fp32", size_bytes=400, latency=[_point(10.0)],
                      fidelity=Fidelity(1.0, 0.0, 1.0))  # fmt: skip
    cells = [
        fp32,
        # NaN numbers, as an old store holds them: every comparison with NaN is False
        CellResult(model="m", recipe="nan-cosine", size_bytes=50, latency=[_point(1.0, 9.0)],
                   fidelity=Fidelity(nan, nan, 1.0)),
        CellResult(model="m", recipe="nan-top1", size_bytes=60, latency=[_point(1.0, 8.0)],
                   fidelity=Fidelity(0.999, 0.1, nan)),
        CellResult(model="m", recipe="nan-accuracy", size_bytes=70, latency=[_point(1.0, 7.0)],
                   accuracy=Accuracy(metric="top1", value=nan, relative=nan, passes=True)),
        CellResult(model="m", recipe="nonfinite", size_bytes=80, latency=[_point(1.0, 6.0)],
                   fidelity=Fidelity(None, None, None, note="outputs not finite: ...",
                                     nonfinite="variant")),
        CellResult(model="m", recipe="nan-speedup", size_bytes=90,
                   latency=[_point(1.0, nan)], fidelity=Fidelity(0.999, 0.1, 1.0)),
        # 5 rounds: the fewest a speedup may name a winner on (quantbench.fastest)
        CellResult(model="m", recipe="good", size_bytes=200, latency=[_point(5.0, 2.0, n=5)],
                   fidelity=Fidelity(0.999, 0.1, 1.0)),
    ]  # fmt: skip
    for c in cells[1:5]:
        assert keeps_fidelity(c, 0.99, 0.99)[0] is False, c.recipe
    rec = recommend(cells)["m"]
    assert rec.fastest.recipe == "good"  # not the NaN ones claiming 6-9x
    assert rec.smallest.recipe == "nan-speedup"  # its fidelity is fine; its speed unknown
    assert next(c for c in rec.candidates if c.recipe == "nan-speedup").speedup is None
    why = {c.recipe: c.why_not for c in rec.candidates}
    assert why["nonfinite"].startswith("outputs not finite")
    # an fp32 whose own outputs were not finite is not a fallback to recommend either
    bad_fp32 = CellResult(model="m", recipe="fp32", status="error", error="fp32 outputs not finite")
    assert keeps_fidelity(bad_fp32, 0.99, 0.99)[0] is False


def test_every_json_written_is_strict(tmp_path):
    from quantbench import strictjson

    nan, inf = float("nan"), float("inf")
    assert strict_load(strictjson.dumps({"a": [1.0, nan], "b": {"c": -inf}})) == {
        "a": [1.0, None], "b": {"c": None}, "nonfinite_as_null": ["a[1]", "b.c"]}  # fmt: skip
    cell = CellResult(model="m", recipe="r", fidelity=Fidelity(nan, inf, 1.0),
                      latency=[_point(1.0)])  # fmt: skip
    cell.latency[0].samples.append(nan)  # a NaN sample is no timing: dropped, not nulled
    d = cell.to_dict()
    assert d["fidelity"]["cosine"] is None and d["fidelity"]["max_abs_err"] is None
    assert d["latency"][0]["samples"] == [1.0, 1.0, 1.0]
    assert d["notes"] == [
        "non-finite values (NaN/inf) written as null: fidelity.cosine, fidelity.max_abs_err"
    ]
    assert cell.fidelity.cosine != cell.fidelity.cosine  # the record itself is untouched
    meta = RunMeta(id="r1", host={"microbench": {"ratio": inf}})
    write_json(tmp_path / "results.json", meta, [cell])
    doc = strict_load((tmp_path / "results.json").read_text())
    assert doc["nonfinite_as_null"] == ["run.host.microbench.ratio"]
    # the store holds strict JSON text too, and export prints it
    st = open_store(tmp_path / "q.db")
    st.begin_run(meta.to_dict())
    st.write_cells("r1", [cell])
    st.close()
    with sqlite3.connect(tmp_path / "q.db") as con:
        for (text,) in con.execute("select data from cells union all select fingerprint from runs"):
            strict_load(text)


def test_nan_read_back_from_an_old_store_is_null_and_says_so(tmp_path, capsys):
    """A store (or results.json) written before values were checked holds bare NaN."""
    st = open_store(tmp_path / "old.db")
    st.begin_run({"id": "old", "started_at": "2026-01-01", "status": "finished",
                  "spec": {"models": [{"name": "m"}]}})  # fmt: skip
    st.write_cells("old", [
        CellResult(model="m", recipe="fp32", size_bytes=400, fidelity=Fidelity(1.0, 0.0, 1.0)),
        CellResult(model="m", recipe="int8", size_bytes=100, fidelity=Fidelity(0.5, 0.1, 1.0)),
    ])  # fmt: skip
    st.close()
    with sqlite3.connect(tmp_path / "old.db") as con:  # what json.dumps used to write
        data = json.loads(con.execute("select data from cells where recipe='int8'").fetchone()[0])
        data["fidelity"] = {"cosine": -1.0, "max_abs_err": float("nan"), "top1_agreement": 1.0}
        data["accuracy"] = {"metric": "top1", "value": float("nan"), "relative": float("nan"),
                            "passes": True}  # fmt: skip
        con.execute("update cells set data=? where recipe='int8'", (json.dumps(data),))
    st = open_store(tmp_path / "old.db")
    cell = st.cells("old")[1]
    st.close()
    assert cell.fidelity.max_abs_err is None and cell.accuracy.value is None
    assert any("read as null: fidelity.max_abs_err, accuracy.value" in n for n in cell.notes)
    from quantbench.best import recommend

    fp32 = CellResult(model="m", recipe="fp32", size_bytes=400, fidelity=Fidelity(1.0, 0.0, 1.0))
    assert recommend([fp32, cell])["m"].smallest.recipe == "fp32"  # not the NaN one
    assert main(["export", "old", "--store", str(tmp_path / "old.db")]) == 0
    doc = strict_load(capsys.readouterr().out)
    assert doc["results"][1]["accuracy"]["value"] is None


def test_store_gap_line_and_exit_code(tmp_path, capsys):
    """The lines a run ends with when the store lacks cells (the PostgreSQL test below
    makes that happen for real)."""
    from quantbench.cli import print_run_summary
    from quantbench.runner import RunResult

    meta = RunMeta(id="r9", store="'q.db'", spec={"store": "postgresql+psycopg://qb:pw@h/db"},
                   store_errors=["server closed the connection unexpectedly"],
                   unstored=[["m2", "fp32"], ["m2", "int8"]])  # fmt: skip
    cells = [CellResult(model=m, recipe=r) for m in ("m1", "m2") for r in ("fp32", "int8")]
    res = RunResult(tmp_path / "out", meta, cells, report=tmp_path / "out" / "report.md")
    assert print_run_summary(res) == EXIT_NOT_STORED == 3
    out, err = capsys.readouterr()
    assert "stored:  INCOMPLETE: 2 of 4 cells of run r9 are only in results.json" in out
    line = err.strip()
    assert "\n" not in line and "(server closed the connection unexpectedly)" in line
    assert line.endswith(f"quantbench import {tmp_path}/out/results.json --store "
                         "postgresql+psycopg://qb@h/db")  # fmt: skip
    meta.unstored, meta.record_unstored = [], True  # only the final record is missing
    assert print_run_summary(res) == 3
    assert "final record (status, recommendations) is only in results.json" in (
        capsys.readouterr().err
    )
    # a sweep across machines: any run with a gap makes the sweep exit 3 too
    from quantbench.cli import print_sweep_summary
    from quantbench.runner import SweepResult

    whole = RunResult(tmp_path / "o2", RunMeta(id="r8", node="b"), cells, tmp_path / "r.md")
    assert print_sweep_summary(SweepResult("sw1", [whole, res], "'q.db'")) == 3
    out, err = capsys.readouterr()
    assert "stored:  sweep sw1 (INCOMPLETE, see below)" in out
    assert "b: run r8: 4 cells" in out and "\n    warning: " not in out  # no caveat: none said
    assert "run r9's final record" in err and "r8" not in err


def test_import_is_idempotent_and_refuses_conflicts(tmp_path, capsys):
    meta = RunMeta(id="r1", started_at="2026-12-01T00:00:00", status="finished",
                   spec={"models": [{"name": "m"}]}, unstored=[["m", "int8"]])  # fmt: skip
    cells = [
        CellResult(model="m", recipe="fp32", size_bytes=400, latency=[_point(10.0)]),
        CellResult(model="m", recipe="int8", size_bytes=100, latency=[_point(4.0, 2.5)]),
    ]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_json(run_dir / "results.json", meta, cells)
    db = tmp_path / "q.db"
    st = open_store(db)  # the store got the record and the first cell before failing
    st.begin_run({**meta.to_dict(), "status": "running", "finished_at": None})
    st.write_cells("r1", cells[:1])
    st.close()
    assert main(["import", str(run_dir / "results.json"), "--store", str(db)]) == 0
    assert "1 cell(s) written, 1 already there (identical)" in capsys.readouterr().out
    st = open_store(db)
    stored_meta, stored = st.load_run("r1")
    st.close()
    assert [c.to_dict() for c in stored] == [c.to_dict() for c in cells]
    assert stored_meta["status"] == "finished" and "unstored" not in stored_meta
    # again, by directory: nothing to do
    assert main(["import", str(run_dir), "--store", str(db)]) == 0
    assert "all 2 cell(s) identical, nothing written" in capsys.readouterr().out
    # a conflicting cell, another run under the same id: refused in one line, untouched
    before = db.read_bytes()
    doc = json.loads((run_dir / "results.json").read_text())
    doc["results"][1]["size_bytes"] = 99
    (tmp_path / "changed.json").write_text(json.dumps(doc))
    doc["results"][1]["size_bytes"], doc["run"]["started_at"] = 100, "2026-12-02T00:00:00"
    (tmp_path / "other.json").write_text(json.dumps(doc))
    for path, says in [("changed.json", "1 cell(s) of run r1 in store"),
                       ("other.json", "holds another run with id r1"),
                       ("nope.json", "is not a results.json")]:  # fmt: skip
        assert main(["import", str(tmp_path / path), "--store", str(db)]) == 2
        err = capsys.readouterr().err.strip()
        assert says in err and "\n" not in err, err
    assert db.read_bytes() == before


# --------------------------------------------------------------------------- real runs


def _run_args(tmp_path: Path, models: list[str], **extra) -> list[str]:
    cfg = {"models": models, "recipes": ["dynamic-int8"], **fast_overrides(), "image_sizes": [32],
           "vision_batch_sizes": [1], **extra}  # fmt: skip
    p = tmp_path / "run.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return ["run", "--config", str(p), "--store", str(tmp_path / "q.db"), "--out",
            str(tmp_path / "out"), "--no-isolate", "--no-progress"]  # fmt: skip


def test_nonfinite_outputs_are_errors_in_a_real_run(tmp_path, nan_models, capsys):
    """fp32 NaN: every cell of that model an error. fp32 finite, int8 -inf: that cell an
    error saying fp32's are finite, fp32 measured; nothing NaN recommended or "keeping
    fidelity"; results.json, the store and export strict JSON."""
    models = [f"py:{nan_models}:NanNet", f"py:{nan_models}:LogNet"]
    args = _run_args(tmp_path, models, measure=["size", "fidelity", "latency"])
    assert main(args) == 0  # LogNet's fp32 succeeds
    out = capsys.readouterr().out
    doc = strict_load((tmp_path / "out" / "results.json").read_text())
    cells = {(Path(c["model"]).name, c["recipe"]): c for c in doc["results"]}
    nan_fp32 = cells[("wrong_models.py:NanNet", "fp32")]
    assert nan_fp32["status"] == "error" and nan_fp32["error"].startswith(
        "fp32 outputs not finite (20 of 20 output values are NaN/inf, on the fidelity inputs)"
    )
    assert cells[("wrong_models.py:NanNet", "dynamic-int8")]["status"] == "error"
    bad = cells[("wrong_models.py:LogNet", "dynamic-int8")]
    assert bad["status"] == "error" and bad["latency"] == []
    assert (
        bad["error"] == "outputs not finite: 20 of 20 output values are NaN/inf (fp32's are finite)"
    )
    assert bad["fidelity"]["nonfinite"] == "variant" and bad["fidelity"]["cosine"] is None
    good = cells[("wrong_models.py:LogNet", "fp32")]
    assert good["status"] == "ok" and good["fidelity"]["cosine"] == 1.0 and good["latency"]
    recs = doc["run"]["recommendations"]
    assert recs[f"py:{nan_models}:NanNet"]["fastest"] is None
    assert recs[f"py:{nan_models}:LogNet"]["fastest"]["recipe"] == "fp32"
    assert "NanNet" not in out.split("cells:")[1].split("stored:")[0]  # no "keeping fidelity"
    report = (tmp_path / "out" / "report.md").read_text()
    assert "outputs not finite: 20 of 20 output values are NaN/inf (fp32's are finite)" in report
    st = open_store(tmp_path / "q.db")
    (run_id,) = [r["id"] for r in st.runs()]
    assert {(c.model, c.recipe): c.status for c in st.cells(run_id)}[
        (f"py:{nan_models}:LogNet", "dynamic-int8")] == "error"  # fmt: skip
    st.close()
    assert main(["export", run_id, "--store", str(tmp_path / "q.db")]) == 0
    strict_load(capsys.readouterr().out)


@pytest.mark.slow
def test_nonfinite_on_evaluation_data_and_in_timing(tmp_path, nan_models, digits_dir, capsys):
    """Without fidelity, NaN outputs are caught where outputs are read: scoring on the
    evaluation data, and the first pass of each timed shape."""
    name = f"py:{nan_models}:NanNet"
    args = _run_args(tmp_path, [name], measure=["size"], image_sizes=[16],
                     ref_image_size=16, dataset=str(digits_dir / "test"), limit=20)  # fmt: skip
    assert main(args) == 1
    assert "fp32 outputs not finite: 200 of 200 values are NaN/inf (on the evaluation data)" in (
        capsys.readouterr().err
    )
    (tmp_path / "t").mkdir()
    args = _run_args(tmp_path / "t", [name], measure=["size", "latency"])
    assert main(args) == 1
    doc = strict_load((tmp_path / "t" / "out" / "results.json").read_text())
    errors = {c["recipe"]: c["error"] for c in doc["results"]}
    assert errors["fp32"].startswith("outputs not finite at batch 1, size 32: 10 of 10")


def test_sensitivity_of_a_nan_model_is_refused(nan_models, tmp_path, capsys):
    assert main(["sensitivity", f"py:{nan_models}:NanNet", "--recipe", "dynamic-int8",
                 "--out", str(tmp_path / "s")]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert "fp32 score is nan (its outputs are NaN/inf)" in err and "\n" not in err


# --------------------------------------------------------------------------- PostgreSQL


class _Postgres:
    """A throwaway PostgreSQL server on a Unix socket that a test can stop and start."""

    PORT = 54331

    def __init__(self, root: Path) -> None:
        import glob
        import pwd
        import shutil

        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins:
            pytest.skip("no PostgreSQL server binaries (Debian package postgresql)")
        self.bin, self.root = bins[-1], root
        self.prefix: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: the server runs as 'postgres'
            pw = pwd.getpwnam("postgres")
            os.chown(root, pw.pw_uid, pw.pw_gid)
            self.prefix = [shutil.which("runuser") or "runuser", "-u", "postgres", "--"]
        self.sock = root / "sock"
        self.sock.mkdir()
        if self.prefix:
            os.chown(self.sock, pw.pw_uid, pw.pw_gid)
        subprocess.run([*self.prefix, f"{self.bin}/initdb", "-D", str(root / "data"), "-U", "qb",
                        "--auth=trust"], check=True, capture_output=True)  # fmt: skip
        self.url = f"postgresql+psycopg://qb@/postgres?host={self.sock}&port={self.PORT}"

    def ctl(self, *args: str) -> None:
        subprocess.run([*self.prefix, f"{self.bin}/pg_ctl", "-D", str(self.root / "data"), "-w",
                        "-l", str(self.root / "log"), "-o",
                        f"-k {self.sock} -c listen_addresses='' -p {self.PORT}", *args],
                       check=True, capture_output=True)  # fmt: skip


@pytest.fixture
def postgres():
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="quantbench-pg-stop-"))
    os.chmod(root, 0o755)
    pg = _Postgres(root)
    pg.ctl("start")
    yield pg
    subprocess.run([*pg.prefix, f"{pg.bin}/pg_ctl", "-D", str(root / "data"), "-m",
                    "immediate", "stop"], capture_output=True)  # fmt: skip
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_postgres_stopped_mid_run_then_import(tmp_path, postgres, capsys):
    """The server stops once the first model is stored: the run still measures the
    second, exits 3 saying how many cells are only in results.json and how to import
    them; after a restart that command makes the store equal results.json."""
    args = _run_args(tmp_path, ["squeezenet", "mnasnet"], measure=["size", "latency"])
    args[args.index("--store") + 1] = postgres.url

    def stop_server(stage: str, run) -> None:
        if stage == "load" and run.ref.name == "mnasnet":
            postgres.ctl("-m", "fast", "stop")

    pipeline.STAGE_HOOKS.append(stop_server)
    try:
        assert main(args) == EXIT_NOT_STORED
    finally:
        pipeline.STAGE_HOOKS.remove(stop_server)
    out, err = capsys.readouterr()
    line = err.strip().splitlines()[-1]
    assert "2 of 4 cell(s) of run" in line and "are only in results.json" in line, err
    assert "stored:  INCOMPLETE: 2 of 4 cells" in out
    command = line.split("put them into the store with: ")[1]
    meta, cells = read_json(tmp_path / "out" / "results.json")
    assert meta["unstored"] == [["mnasnet", "fp32"], ["mnasnet", "dynamic-int8"]]
    assert meta["status"] == "finished" and meta["record_unstored"] is True
    assert [c.status for c in cells] == ["ok"] * 4

    postgres.ctl("start")
    st = open_store(postgres.url)
    assert st.run_meta(meta["id"])["status"] == "running"  # what the failure left
    assert len(st.cells(meta["id"])) == 2
    st.close()
    argv = shlex.split(command)
    assert argv[:2] == ["quantbench", "import"]
    assert main(argv[1:]) == 0
    assert "2 cell(s) written, 2 already there (identical)" in capsys.readouterr().out
    st = open_store(postgres.url)
    stored_meta, stored = st.load_run(meta["id"])
    st.close()
    assert stored_meta["status"] == "finished" and stored_meta["recommendations"]
    assert [c.to_dict() for c in stored] == [c.to_dict() for c in cells]  # samples and all
    assert main(argv[1:]) == 0  # idempotent
    assert "nothing written" in capsys.readouterr().out
