"""Comparing machines: ``quantbench compare --sweep`` / ``--machines`` and ``report --sweep``.

Two real tiny runs are measured into one store and tagged as one sweep, the second with
another machine's fingerprint (a fingerprint is metadata: what a second machine would
have written); the tables are checked against speedups computed here from the stored
raw samples."""

from __future__ import annotations

import dataclasses
import re
import statistics
from pathlib import Path

import pytest

from conftest import DIGITS, fast_overrides
from quantbench.cli import main
from quantbench.machines import (
    Entry,
    build,
    gpu_names,
    int8_isa,
    load,
    machine_label,
    short_cpu,
)
from quantbench.measure.latency import summarize
from quantbench.report import figures, render_sweep_report
from quantbench.report.figures import model_slugs
from quantbench.report.render import SECTIONS, SWEEP_SECTIONS
from quantbench.report.sections.machines import entry_text
from quantbench.results import CellResult, LatencyPoint
from quantbench.store import open_store

SWEEP = "sweep-test"
ARM = {"cpu": "Neoverse-N1", "cores": 4, "machine": "aarch64", "isa_flags": ["asimd", "asimddp"],
       "hostname": "arm-box", "os": "Linux", "gpu": "NVIDIA H200"}  # fmt: skip
REF = {"vision": 32, "text": 16}  # fast_overrides' reference sizes, batch 1


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> dict:
    """A store with two real runs of two tiny models (a small CNN with random weights,
    a 2-layer BERT), tagged as sweep SWEEP on nodes
    "node-a" (this machine) and "arm-1" (an ARM fingerprint), and a copy of the first
    run alone in sweep "solo"."""
    from quantbench.runner import run
    from quantbench.runner.checks import build_spec

    root = tmp_path_factory.mktemp("sweep")
    db = str(root / "q.db")
    ids = []
    for i in range(2):
        spec = build_spec(overrides=fast_overrides(
            models=[DIGITS.MODEL, f"hf:{tiny_bert_dir}"], recipes=["dynamic-int8"],
            measure=["size", "latency"], isolate=False, out=str(root / f"run{i}"), store=db,
            image_sizes=[32], vision_batch_sizes=[1], seq_lens=[16], text_batch_sizes=[1],
        ))  # fmt: skip
        ids.append(run(spec, progress=False).run.id)
    st = open_store(db)
    try:
        a = st.run_meta(ids[0])
        st.begin_run({**a, "sweep_id": SWEEP, "node": "node-a"})
        b = st.run_meta(ids[1])
        st.begin_run({**b, "sweep_id": SWEEP, "node": "arm-1", "host": ARM})
        solo = {**a, "id": "solo-run", "sweep_id": "solo", "node": "node-s"}
        st.begin_run(solo)
        st.write_cells("solo-run", st.cells(ids[0]))
        cells = {r: st.cells(r) for r in ids}
        metas = [st.run_meta(r) for r in ids]
    finally:
        st.close()
    return {"db": db, "ids": ids, "cells": cells, "metas": metas, "root": root,
            "models": [DIGITS.MODEL, f"hf:{tiny_bert_dir}"]}  # fmt: skip


def _at_ref(cells: list[CellResult], model: str, recipe: str) -> LatencyPoint:
    cell = next(c for c in cells if c.model == model and c.recipe == recipe)
    size = REF[str(cell.family)]
    return next(p for p in cell.latency if p.batch_size == 1 and p.input_size == size)


def _expected(cells: list[CellResult], model: str, recipe: str) -> tuple[float, float]:
    """(speedup, median ms) from the raw samples: the median of the per-round ratios."""
    base, mine = _at_ref(cells, model, "fp32"), _at_ref(cells, model, recipe)
    assert len(base.samples) == len(mine.samples) >= 3
    ratios = [b / v for b, v in zip(base.samples, mine.samples, strict=True)]
    return statistics.median(ratios), statistics.median(mine.samples)


def _tables(text: str) -> dict[str, list[list[str]]]:
    """model -> its table's rows (header first), from the "### model" sections."""
    out: dict[str, list[list[str]]] = {}
    model = None
    for line in text.splitlines():
        if line.startswith("### "):
            model = line[4:]
        elif line.startswith("| ") and model is not None and "---" not in line:
            out.setdefault(model, []).append([c.strip() for c in line.strip("|").split(" | ")])
        elif line.startswith("## "):
            model = None
    return out


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_compare_sweep_a_column_per_machine_with_its_own_speedups(sweep, capsys, tmp_path):
    out = tmp_path / "cmp"
    code, text, _ = _cli(capsys, "compare", "--sweep", SWEEP, "--store", sweep["db"],
                         "--out", str(out))  # fmt: skip
    assert code == 0
    tables = _tables(text)
    assert list(tables) == sweep["models"]
    here = sweep["metas"][0]
    assert here["node"] == "node-a" and machine_label(here).startswith("node-a · ")
    for model, rows in tables.items():
        assert rows[0] == ["Recipe", machine_label(here), "arm-1 · H200"]
        assert [r[0] for r in rows[1:]] == ["fp32", "dynamic-int8"]
        for row in rows[1:]:
            for run_id, text_cell in zip(sweep["ids"], row[1:], strict=True):
                speedup, ms = _expected(sweep["cells"][run_id], model, row[0])
                m = re.fullmatch(r"([\d.]+)x · ([\d.e+-]+) ms · [\d.]+ MiB", text_cell)
                assert m, text_cell
                assert float(m[1]) == pytest.approx(speedup, abs=0.006)
                assert float(m[2]) == pytest.approx(ms, rel=0.01)
    # the structured comparison holds the same numbers, unrounded
    cmp = load(sweep_id=SWEEP, store=sweep["db"])
    for table in cmp.tables:
        for run_id in sweep["ids"]:
            e = table.entries[("dynamic-int8", run_id)]
            speedup, ms = _expected(sweep["cells"][run_id], table.model, "dynamic-int8")
            assert e.paired and e.speedup == pytest.approx(speedup, rel=1e-3)
            assert e.ms == pytest.approx(ms, rel=1e-4) and e.shape == (1, REF[table.family])
            cell = next(c for c in sweep["cells"][run_id]
                        if c.model == table.model and c.recipe == "dynamic-int8")  # fmt: skip
            assert e.size_bytes == cell.size_bytes > 0
    # the machines: fingerprints side by side
    assert "| int8 dot product |" in text and "| Arm dot product |" in text
    gpu = ", ".join(gpu_names(here["host"])) or "none recorded"
    assert f"| GPU | {gpu} | NVIDIA H200 |" in text
    assert re.search(r"\| torch \| \d+\.\d+[^|]* \| \d+\.\d+", text)
    md = (out / "compare.md").read_text()
    assert md.strip() in text
    for slug in model_slugs(sweep["models"]).values():
        png = out / f"machines_{slug}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"](machines_{slug}.png)" in md


def test_compare_run_ids_as_machines_in_the_order_given(sweep, capsys, tmp_path):
    a, b = sweep["ids"]
    code, text, _ = _cli(capsys, "compare", b, a, "--machines", "--store", sweep["db"],
                         "--out", str(tmp_path / "m"))  # fmt: skip
    assert code == 0
    header = next(iter(_tables(text).values()))[0]
    assert header[1:] == ["arm-1 · H200", header[2]] and header[2].startswith("node-a · ")
    code, text, _ = _cli(capsys, "compare", a, "--machines", "--store", sweep["db"],
                         "--out", str(tmp_path / "one"))  # fmt: skip
    assert code == 0 and all(len(rows[0]) == 2 for rows in _tables(text).values())
    # as `compare` takes runs: an id prefix, a run directory (its results.json); one run
    # named twice is one column
    run0 = str(sweep["root"] / "run0")
    code, text, _ = _cli(capsys, "compare", b[:-2], run0, a, "--machines", "--store",
                         sweep["db"], "--out", str(tmp_path / "files"))  # fmt: skip
    assert code == 0
    header = next(iter(_tables(text).values()))[0]
    assert len(header) == 3 and header[1] == "arm-1 · H200", header
    code, _, err = _cli(capsys, "compare", "nope-", "--machines", "--store", sweep["db"],
                        "--out", str(tmp_path / "none"))  # fmt: skip
    assert code == 2 and "no run 'nope-'" in err


def test_report_sweep_writes_markdown_html_and_a_figure_per_model(sweep, capsys, tmp_path):
    out = tmp_path / "rep"
    code, text, _ = _cli(capsys, "report", "--sweep", SWEEP, "--store", sweep["db"],
                         "--out", str(out))  # fmt: skip
    assert code == 0 and str(out / "report.md") in text
    md = (out / "report.md").read_text()
    assert md.startswith(f"# quantbench report: sweep {SWEEP}")
    assert "## Models across machines" in md and "## Machines" in md
    assert list(_tables(md)) == sweep["models"]
    pngs = sorted((out / "plots").glob("*.png"))
    assert len(pngs) == len(sweep["models"])
    assert all(p.stat().st_size > 1000 for p in pngs)
    for p in pngs:
        assert md.count(f"](plots/{p.name})") == 1
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(pngs) and "<table>" in page


def test_a_sweep_of_one_run_has_one_column(sweep, capsys, tmp_path):
    code, text, _ = _cli(capsys, "compare", "--sweep", "solo", "--store", sweep["db"],
                         "--out", str(tmp_path / "c"))  # fmt: skip
    assert code == 0
    for rows in _tables(text).values():
        assert len(rows[0]) == 2 and rows[0][1].startswith("node-s · ")
    code, _, _ = _cli(capsys, "report", "--sweep", "solo", "--store", sweep["db"],
                      "--out", str(tmp_path / "r"))  # fmt: skip
    assert code == 0 and len(list((tmp_path / "r" / "plots").glob("*.png"))) == 2


def test_unknown_sweep_is_one_line_exit_2_listing_the_known(sweep, capsys, tmp_path):
    for cmd in ("compare", "report"):
        code, out, err = _cli(capsys, cmd, "--sweep", "nope", "--store", sweep["db"],
                              "--out", str(tmp_path / cmd))  # fmt: skip
        assert code == 2 and out == ""
        assert err.count("\n") == 1 and "no sweep 'nope'" in err
        assert SWEEP in err and "solo" in err
        assert not (tmp_path / cmd).exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["compare", "r1", "--sweep", "s"], "not both"),
        (["compare", "--sweep", "s", "--fail-if-slower", "5"], "--fail-if-slower compares"),
        (["compare", "--machines"], "--machines needs RUN_IDs"),
        (["compare"], "compare needs RUN_IDs"),
        (["report", "r1", "--sweep", "s"], "not both"),
        (["report"], "report needs a run id"),
    ],
)
def test_conflicting_arguments_are_one_line_exit_2(args, needle, capsys, tmp_path):
    code, out, err = _cli(capsys, *args, "--store", str(tmp_path / "none.db"))
    assert code == 2 and out == "" and err.count("\n") == 1 and needle in err


# ------------------------------------------------------- synthetic records, no torch


def _cell(model: str, recipe: str, samples: list[float] | None, status: str = "ok",
          error: str | None = None) -> CellResult:  # fmt: skip
    pts = [] if samples is None else [LatencyPoint(
        batch_size=1, input_size=32, sweep="input_size", unit="ms", stats=summarize(samples),
        samples=samples)]  # fmt: skip
    return CellResult(model=model, recipe=recipe, status=status, error=error, family="vision",
                      size_bytes=2**20, latency=pts)  # fmt: skip


def test_unpaired_speedup_status_reasons_and_missing_cells():
    meta = {"id": "r1", "host": {"cpu": "AMD EPYC 7B13 64-Core Processor", "hostname": "h1"}}
    other = {"id": "r2", "host": {"cpu": "AMD EPYC 7B13 64-Core Processor", "hostname": "h1"}}
    cells = [_cell("m", "fp32", [4.0, 4.2, 4.1]), _cell("m", "int8", [2.0, 2.1, 2.05]),
             _cell("m", "onnx", None, "unsupported", "needs onnxruntime | 1.20\nmore")]  # fmt: skip
    cmp = build([(meta, cells), (other, cells[:1])])
    # same hostname and CPU twice: the labels are told apart by run id
    assert [m.label for m in cmp.machines] == ["h1 · EPYC 7B13 (r1)", "h1 · EPYC 7B13 (r2)"]
    t = cmp.tables[0]
    e = t.entries[("int8", "r1")]
    assert not e.paired and e.speedup == pytest.approx(4.1 / 2.05)  # no stored pairs
    assert entry_text(e) == "2.00x (unpaired) · 2.05 ms · 1.0 MiB"
    assert entry_text(t.entries[("onnx", "r1")]) == "unsupported: needs onnxruntime | 1.20"
    assert ("int8", "r2") not in t.entries and entry_text(None) == "not run"


def test_labels_isa_and_names():
    assert machine_label({"id": "r", "node": "n1", "host": {"cpu": "x", "gpu": [
        {"name": "NVIDIA A100"}, {"name": "NVIDIA A100"}]}}) == "n1 · 2× A100"  # fmt: skip
    assert machine_label({"id": "r", "host": {}}) == "r"
    assert short_cpu("Intel(R) Core(TM) i7-1185G7 @ 3.00GHz") == "Core i7-1185G7"
    assert int8_isa({"isa_flags": ["avx2", "avx512f"]}) == "none (AVX512 only)"
    assert int8_isa({"isa_flags": ["avx2", "avx512_vnni"]}) == "AVX512-VNNI"
    assert int8_isa({}) == "not recorded"
    assert model_slugs(["hf:./a b", "hf:/a b", "x"]) == {
        "hf:./a b": "hf_a_b", "hf:/a b": "hf_a_b-2", "x": "x"}  # fmt: skip
    assert Entry("ok").speedup is None and entry_text(Entry("ok")) == "— · — · — MiB"


def test_sweep_registries_are_consistent():
    keys = [f.key for f in figures.SWEEP_FIGURES]
    assert len(set(keys)) == len(keys)
    assert all("{model}" in f.filename for f in figures.SWEEP_FIGURES)
    assert all(f.slot in {s.key for s in SWEEP_SECTIONS} for f in figures.SWEEP_FIGURES)
    assert not {s.key for s in SWEEP_SECTIONS} & {s.key for s in SECTIONS}


def test_a_figure_that_fails_is_said_and_the_rest_written(tmp_path, monkeypatch, capsys):
    cells = [_cell("m", "fp32", [4.0, 4.2, 4.1]), _cell("m", "int8", [2.0, 2.1, 2.05]),
             _cell("n", "fp32", [1.0, 1.1, 1.2])]  # fmt: skip
    cmp = build([({"id": "r1", "host": {"hostname": "h"}}, cells)], "s1")
    real = figures.SWEEP_FIGURES[0]

    def draw(path, cmp, table):
        if table.model == "n":
            raise ValueError("planted")
        return real.draw(path, cmp, table)

    monkeypatch.setattr(figures, "SWEEP_FIGURES", (dataclasses.replace(real, draw=draw),))
    md = render_sweep_report(tmp_path, cmp).read_text()
    assert "could not be drawn: ValueError: planted" in md.split("### n")[1]
    assert "](plots/machines_m.png)" in md and (tmp_path / "plots" / "machines_m.png").is_file()
    assert not (tmp_path / "plots" / "machines_n.png").exists()
    assert "machines_n.png could not be drawn" in capsys.readouterr().err
