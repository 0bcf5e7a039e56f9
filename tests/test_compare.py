"""``quantbench compare``: significance of latency changes on the stored raw samples, and
the CI gates (slower / less accurate / larger), on runs written straight into a SQLite
store."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from quantbench.cli import main
from quantbench.compare import Failure, check_threshold, compare, gate_report, gates
from quantbench.errors import QuantbenchError
from quantbench.measure.latency import summarize
from quantbench.results import Accuracy, CellResult, LatencyPoint, Speedup
from quantbench.store import open_store

# 20 samples within ±0.5% of 4 ms: any real change is significant
TIGHT = [4.0 + 0.02 * ((i * 7) % 10 - 5) for i in range(20)]
# widely spread samples, medians 4 ms and 6 ms (+50%), heavily overlapping: not significant
NOISY_BASE = [1.0, 1.5, 2.0, 3.0, 3.5, 4.5, 6.0, 7.5, 9.0, 11.0]
NOISY_NEW = [1.5, 2.0, 3.0, 4.0, 5.5, 6.5, 8.0, 9.0, 10.0, 12.0]


def _point(samples: list[float], b: int = 1, s: int = 32) -> LatencyPoint:
    return LatencyPoint(batch_size=b, input_size=s, sweep="input_size", unit="ms",
                        stats=summarize(samples), samples=list(samples),
                        speedup=Speedup(2.5, 2.4, 2.6, len(samples)))  # fmt: skip


def _cell(recipe: str, samples: list[float], size: int | None = 1_000_000,
          acc: float | None = None, model: str = "m1") -> CellResult:  # fmt: skip
    return CellResult(
        model=model, recipe=recipe, size_bytes=size, latency=[_point(samples)],
        accuracy=Accuracy(metric="top1", value=acc) if acc is not None else None,
    )  # fmt: skip


def _store(db: Path, runs: dict[str, list[CellResult]]) -> None:
    st = open_store(db)
    try:
        for i, (run_id, cells) in enumerate(runs.items()):
            st.begin_run({"id": run_id, "started_at": f"2026-11-27T0{i}:00:00",
                          "status": "finished", "host": {"cpu": "AMD EPYC", "cores": 2},
                          "spec": {"models": [{"name": "m1"}]}})  # fmt: skip
            st.write_cells(run_id, cells)
    finally:
        st.close()


def _compare(tmp_path: Path, capsys, *args: str) -> tuple[int, str, str]:
    code = main(["compare", *args, "--store", str(tmp_path / "q.db"),
                 "--out", str(tmp_path / "cmp")])  # fmt: skip
    out, err = capsys.readouterr()
    return code, out, err


def _failed(out: str) -> list[str]:
    return [x for x in out.splitlines() if "FAILED --fail-if" in x]


def test_significant_slowdown_fails_and_table_shows_the_verdict(tmp_path, capsys):
    slow = [x * 1.5 for x in TIGHT]  # a planted 50% regression, tight samples
    _store(tmp_path / "q.db", {"base": [_cell("fp32", TIGHT), _cell("static-int8", TIGHT)],
                               "slow": [_cell("fp32", TIGHT), _cell("static-int8", slow)]})  # fmt: skip
    code, out, _ = _compare(tmp_path, capsys, "base", "slow", "--fail-if-slower", "10")
    assert code == 1
    assert "| m1 | static-int8 | 1 × 32 | 3.990 | 5.985 | +50.0% ⚠️ | significant | <0.0001 |" in out
    assert "| m1 | fp32 | 1 × 32 | 3.990 | 3.990 | +0.0% | not significant | 1.0000 |" in out
    bad = _failed(out)
    assert bad == ["- FAILED --fail-if-slower 10: m1 · static-int8 · 1 × 32 (slow vs base): "
                   "+50.0% (3.990 → 5.985 ms), significant, p<0.0001"]  # fmt: skip
    assert "**1 gate failure(s) (--fail-if-slower 10).**" in out
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert md.strip() in out and "| significant |" in md and bad[0] in md
    assert (tmp_path / "cmp" / "compare_latency.png").is_file()
    assert (tmp_path / "cmp" / "compare_speedup.png").is_file()
    assert _compare(tmp_path, capsys, "base", "slow", "--fail-if-slower", "60")[0] == 0
    assert _compare(tmp_path, capsys, "base", "slow")[0] == 0  # no gate asked for


NOISY_VERDICT = "inconclusive: too noisy to tell (n 10 vs 10, CI 1.50–9.00 vs 2.00–10.0 ms)"


def test_noisy_slowdown_is_inconclusive_and_passes(tmp_path, capsys):
    """+50% that the samples cannot settle reads "inconclusive", never as no change."""
    _store(tmp_path / "q.db", {"base": [_cell("fp32", NOISY_BASE)],
                               "noisy": [_cell("fp32", NOISY_NEW)]})  # fmt: skip
    code, out, _ = _compare(tmp_path, capsys, "base", "noisy", "--fail-if-slower", "10")
    assert code == 0, out
    assert f"| m1 | fp32 | 1 × 32 | 4.000 | 6.000 | +50.0% | {NOISY_VERDICT} | 0.4267 |" in out
    assert not _failed(out) and "not significant" not in out
    notes = [x for x in out.splitlines() if "not failed" in x]
    assert notes == ["- --fail-if-slower 10: m1 · fp32 · 1 × 32 (noisy vs base): +50.0% "
                     f"(4.000 → 6.000 ms), {NOISY_VERDICT}, p=0.4267, not failed"]  # fmt: skip
    assert "**All gates passed (--fail-if-slower 10).**" in out


def test_too_few_samples_are_reported_not_failed(tmp_path, capsys):
    few = [4.0, 4.04, 3.96]
    _store(tmp_path / "q.db", {"base": [_cell("fp32", few), _cell("int8", TIGHT)],
                               "slow": [_cell("fp32", [x * 1.5 for x in few]),
                                        _cell("int8", TIGHT)]})  # fmt: skip
    code, out, _ = _compare(tmp_path, capsys, "base", "slow", "--fail-if-slower", "10")
    assert code == 0
    assert "| +50.0% | too few samples (3 vs 3) | — |" in out
    assert "(4.000 → 6.000 ms), too few samples (3 vs 3), not failed" in out


def test_identical_runs_pass_every_gate(tmp_path, capsys):
    cells = [_cell("fp32", TIGHT, 4_000_000, 0.9), _cell("static-int8", TIGHT, 1_000_000, 0.88)]
    _store(tmp_path / "q.db", {"a": cells, "b": cells})
    code, out, _ = _compare(tmp_path, capsys, "a", "b", "--fail-if-slower", "0",
                            "--fail-if-less-accurate", "0", "--fail-if-larger", "0")  # fmt: skip
    assert code == 0, out
    assert not _failed(out) and "not failed" not in out and "not significant" in out
    assert ("**All gates passed (--fail-if-slower 0, --fail-if-less-accurate 0, "
            "--fail-if-larger 0).**") in out  # fmt: skip


def test_accuracy_drop_gate(tmp_path, capsys):
    _store(tmp_path / "q.db", {
        "base": [_cell("fp32", TIGHT, acc=0.90), _cell("static-int8", TIGHT, acc=0.89),
                 _cell("dynamic-int8", TIGHT)],  # no accuracy: skipped
        "new": [_cell("fp32", TIGHT, acc=0.90), _cell("static-int8", TIGHT, acc=0.86),
                _cell("dynamic-int8", TIGHT, acc=0.10)],
    })  # fmt: skip
    code, out, _ = _compare(tmp_path, capsys, "base", "new", "--fail-if-less-accurate", "1")
    assert code == 1
    assert _failed(out) == ["- FAILED --fail-if-less-accurate 1: m1 · static-int8 (new vs base): "
                            "accuracy 0.8900 → 0.8600 (-3.00 points)"]  # fmt: skip
    assert _compare(tmp_path, capsys, "base", "new", "--fail-if-less-accurate", "5")[0] == 0
    assert _compare(tmp_path, capsys, "base", "new", "--fail-if-less-accurate", "3")[0] == 0


def test_a_gate_with_nothing_to_check_is_an_error(tmp_path, capsys):
    """No accuracy in either run, no size, no point with samples enough to test: the gate
    could neither pass nor fail, so compare exits 2 in one line and writes nothing."""
    few = [4.0, 4.04, 3.96]
    _store(tmp_path / "q.db", {"base": [_cell("fp32", TIGHT, size=None)],
                               "new": [_cell("fp32", TIGHT, size=None)],
                               "b3": [_cell("q", few)], "n3": [_cell("q", few)]})  # fmt: skip
    for gate, run, why in (
        ("--fail-if-less-accurate", "new", "no shared cell has accuracy in both base and new"),
        ("--fail-if-larger", "new", "no shared cell has a size in both base and new"),
        ("--fail-if-slower", "n3", "no shared point of b3 and n3 has enough raw samples"),
    ):  # fmt: skip
        base = "b3" if run == "n3" else "base"
        code, out, err = _compare(tmp_path, capsys, base, run, gate, "1")
        assert code == 2 and out == "", (gate, out)
        assert err.count("\n") == 1 and f"error: {gate} 1: {why}" in err, err
        assert "nothing to check" in err and not (tmp_path / "cmp").exists()


def test_size_growth_gate(tmp_path, capsys):
    _store(tmp_path / "q.db", {
        "base": [_cell("fp32", TIGHT, 4_000_000), _cell("static-int8", TIGHT, 1_000_000)],
        "new": [_cell("fp32", TIGHT, 4_000_000), _cell("static-int8", TIGHT, 1_300_000)],
    })  # fmt: skip
    code, out, _ = _compare(tmp_path, capsys, "base", "new", "--fail-if-larger", "10")
    assert code == 1
    assert _failed(out) == ["- FAILED --fail-if-larger 10: m1 · static-int8 (new vs base): "
                            "size 1,000,000 → 1,300,000 bytes (+30.0%)"]  # fmt: skip
    assert _compare(tmp_path, capsys, "base", "new", "--fail-if-larger", "30")[0] == 0


def test_every_gate_is_evaluated_and_reported(tmp_path, capsys):
    slow = [x * 1.5 for x in TIGHT]
    _store(tmp_path / "q.db", {
        "base": [_cell("fp32", TIGHT, 4_000_000, 0.9), _cell("static-int8", TIGHT, 1_000_000, 0.9)],
        "new": [_cell("fp32", slow, 4_000_000, 0.8), _cell("static-int8", slow, 2_000_000, 0.9)],
        "newer": [_cell("fp32", TIGHT, 4_000_000, 0.9), _cell("static-int8", TIGHT, 1_000_000)],
    })  # fmt: skip
    code, out, _ = _compare(tmp_path, capsys, "base", "new", "newer", "--fail-if-slower", "10",
                            "--fail-if-less-accurate", "1", "--fail-if-larger", "10")  # fmt: skip
    assert code == 1
    bad = _failed(out)
    assert len(bad) == 4 and all("(new vs base)" in x for x in bad)
    assert sum("--fail-if-slower" in x for x in bad) == 2
    assert sum("--fail-if-less-accurate" in x and "m1 · fp32" in x for x in bad) == 1
    assert sum("--fail-if-larger" in x and "static-int8" in x for x in bad) == 1
    assert "## `newer` vs `base`" in out and "**4 gate failure(s)" in out


@pytest.mark.parametrize("flag", ["--fail-if-slower", "--fail-if-less-accurate",
                                  "--fail-if-larger"])  # fmt: skip
@pytest.mark.parametrize("value", ["-1", "abc", "nan", "inf", "-0.5"])
def test_bad_thresholds_exit_2_in_one_line(tmp_path, capsys, flag, value):
    db = tmp_path / "q.db"
    _store(db, {"base": [_cell("fp32", TIGHT)], "new": [_cell("fp32", TIGHT)]})
    before = db.read_bytes()
    code, out, err = _compare(tmp_path, capsys, "base", "new", f"{flag}={value}")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("quantbench: error:") and flag[2:] in err, err
    assert not (tmp_path / "cmp").exists() and db.read_bytes() == before
    if value.startswith("-"):  # also as a separate argument
        assert _compare(tmp_path, capsys, "base", "new", flag, value)[0] == 2


def test_compare_leaves_the_store_untouched(tmp_path, capsys):
    db = tmp_path / "q.db"
    _store(db, {"base": [_cell("fp32", TIGHT)], "new": [_cell("fp32", [x * 2 for x in TIGHT])],
                "other": [_cell("fp32", TIGHT, model="m9")]})  # fmt: skip
    files = sorted(tmp_path.glob("q.db*"))
    digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    assert _compare(tmp_path, capsys, "base", "new", "--fail-if-slower", "1")[0] == 1
    code, _, err = _compare(tmp_path, capsys, "base", "other")
    assert code == 2 and "share no measured cells" in err
    assert sorted(tmp_path.glob("q.db*")) == files
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files} == digest


def test_gates_as_a_library():
    base = {"id": "a"}, [_cell("fp32", TIGHT, 1_000, 0.9)]
    new = {"id": "b"}, [_cell("fp32", [x * 1.2 for x in TIGHT], 1_500, 0.85)]
    points = compare([base, new])
    assert points[0].significant and points[0].verdict == "significant"
    fails = gates(points, slower_pct=10, less_accurate_pp=1, larger_pct=10)
    assert [type(f) for f in fails] == [Failure] * 3
    assert [f.gate for f in fails] == ["--fail-if-slower", "--fail-if-less-accurate",
                                       "--fail-if-larger"]  # fmt: skip
    assert fails[0].shape == (1, 32) and fails[1].shape is None
    assert gates(points) == [] and not gate_report(points).lines()
    assert gates(points, slower_pct=25, less_accurate_pp=6, larger_pct=50) == []
    with pytest.raises(QuantbenchError, match="fail-if-larger must be a percentage >= 0"):
        gates(points, larger_pct=-1)
    with pytest.raises(QuantbenchError, match="percentage points >= 0, got nan"):
        check_threshold("less_accurate_pp", float("nan"))


def test_points_without_raw_samples_are_too_few_to_test():
    old, new = _cell("fp32", TIGHT), _cell("fp32", [x * 2 for x in TIGHT])
    old.latency[0].samples = []  # a run stored before samples were kept
    points = compare([({"id": "a"}, [old]), ({"id": "b"}, [new])])
    assert points[0].verdict == "too few samples (0 vs 20)" and points[0].p_text == "—"
    with pytest.raises(QuantbenchError, match="enough raw samples.*nothing to check"):
        gates(points, slower_pct=10)


def test_compare_on_stored_runs_with_few_samples(tmp_path, capsys):
    """Moved from test_store.py: runs of 3 samples a point, a planted 50% regression."""
    few = [4.0, 4.04, 3.96]
    _store(tmp_path / "q.db", {"base": [_cell("static-int8", few)],
                               "slower": [_cell("static-int8", [x * 1.5 for x in few])],
                               "other": [_cell("static-int8", few, model="m9")]})  # fmt: skip
    code, out, _ = _compare(tmp_path, capsys, "base", "slower")
    assert code == 0 and "| m1 | static-int8 | 1 × 32 | 4.000 | 6.000 | +50.0% |" in out
    assert (tmp_path / "cmp" / "compare_latency.png").is_file()
    # 3 samples a side cannot show any change is real: the gate has nothing to check
    assert _compare(tmp_path, capsys, "base", "slower", "--fail-if-slower", "10")[0] == 2
    code, _, err = _compare(tmp_path, capsys, "base", "other")
    assert code == 2 and "share no measured cells" in err


# ------------------------------------ for CI: JSON, -q, any way to name a run, differences


def _strict_json(text: str) -> dict:
    import json

    def refuse(name: str) -> None:
        raise AssertionError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_compare_as_json_and_quiet(tmp_path, capsys):
    slow = [x * 1.5 for x in TIGHT]
    _store(tmp_path / "q.db", {
        "base": [_cell("fp32", TIGHT), _cell("static-int8", TIGHT), _cell("q", NOISY_BASE)],
        "new": [_cell("fp32", TIGHT), _cell("static-int8", slow), _cell("q", NOISY_NEW)],
    })  # fmt: skip
    code, out, err = _compare(tmp_path, capsys, "base", "new", "--format", "json",
                              "--fail-if-slower", "10")  # fmt: skip
    assert code == 1 and err == ""
    doc = _strict_json(out)
    assert doc["baseline"] == "base" and [r["id"] for r in doc["runs"]] == ["base", "new"]
    verdicts = {p["recipe"]: p["verdict"] for p in doc["points"]}
    assert verdicts == {"fp32": "not significant", "static-int8": "significant",
                        "q": NOISY_VERDICT}  # fmt: skip
    point = next(p for p in doc["points"] if p["recipe"] == "static-int8")
    assert point["change_pct"] == pytest.approx(50.0) and point["n_base"] == point["n"] == 20
    assert point["values"]["size_bytes"] == [1_000_000, 1_000_000]
    gates_ = doc["gates"]
    assert gates_["failed"] and gates_["checked"] == ["--fail-if-slower 10"]
    assert [(f["recipe"], f["shape"]) for f in gates_["failures"]] == [("static-int8", [1, 32])]
    assert gates_["summary"] == "1 gate failure(s) (--fail-if-slower 10)."
    assert doc["written"].endswith("compare.md") and doc["warnings"] == []

    code, out, _ = _compare(tmp_path, capsys, "base", "new", "-q", "--fail-if-slower", "10")
    lines = out.splitlines()
    # a verdict a point; the gate's failure, its note (not failed) and its summary
    assert code == 1 and len(lines) == 3 + 3, lines
    assert lines[2] == ("new vs base: m1 · static-int8 · 1 × 32: +50.0% (3.990 → 5.985 ms): "
                        "significant")  # fmt: skip
    assert lines[1].endswith(f": {NOISY_VERDICT}") and "no change" not in out
    assert lines[3].startswith("FAILED --fail-if-slower 10: m1 · static-int8")
    assert lines[4].startswith("--fail-if-slower 10: m1 · q") and lines[4].endswith("not failed")
    assert lines[5] == "1 gate failure(s) (--fail-if-slower 10)."
    code, out, err = _compare(tmp_path, capsys, "base", "new", "--machines", "--format", "json")
    assert code == 2 and out == "" and "--format json is for runs compared with a baseline" in err


def _stored(db: Path, runs: dict[str, tuple[list[CellResult], dict]]) -> None:
    st = open_store(db)
    try:
        for i, (run_id, (cells, meta)) in enumerate(runs.items()):
            st.begin_run({"id": run_id, "started_at": f"2026-12-05T0{i}:00:00",
                          "status": "finished", **meta})  # fmt: skip
            st.write_cells(run_id, cells)
    finally:
        st.close()


HOST = {"hostname": "ci-1", "cpu": "AMD EPYC 7B13", "cores": 2}
SPEC = {"min_runs": 20, "threads": None, "device": "cpu", "models": ["m1"], "out": "a"}


def test_compare_takes_ids_prefixes_directories_and_results_files(tmp_path, capsys):
    from quantbench.results import RunMeta, write_json

    meta = {"host": HOST, "spec": SPEC}
    _stored(tmp_path / "q.db", {"20261205-aa1": ([_cell("fp32", TIGHT)], meta),
                                "20261205-aa2": ([_cell("fp32", TIGHT)], meta),
                                "20261205-bb1": ([_cell("fp32", TIGHT)], meta)})  # fmt: skip
    run_dir = tmp_path / "ci-run"
    run_dir.mkdir()
    write_json(run_dir / "results.json", RunMeta(id="ci-7", host=HOST, spec=SPEC),
               [_cell("fp32", [x * 1.5 for x in TIGHT])])  # fmt: skip
    code, out, err = _compare(tmp_path, capsys, "20261205-b", str(run_dir), "--format", "json")
    assert code == 0, err
    doc = _strict_json(out)
    assert [r["id"] for r in doc["runs"]] == ["20261205-bb1", "ci-7"]
    assert doc["points"][0]["verdict"] == "significant"
    shutil.rmtree(tmp_path / "cmp")  # --out holds another comparison now
    code, out, err = _compare(tmp_path, capsys, str(run_dir / "results.json"), "20261205-aa2", "-q")
    assert code == 0, err
    assert out.startswith("20261205-aa2 vs ci-7: m1 · fp32 · 1 × 32: -33.3%")

    code, out, err = _compare(tmp_path, capsys, "20261205-a", "20261205-bb1")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "run id prefix '20261205-a' is ambiguous" in err and "20261205-aa1, 20261205-aa2" in err
    code, _, err = _compare(
        tmp_path, capsys, "20261205-bb1", str(tmp_path / "gone" / "results.json")
    )
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err
    code, _, err = _compare(tmp_path, capsys, "20261205-bb1", "zz")
    assert code == 2 and "no run 'zz' in store" in err

    import quantbench  # the same from Python (this file imported the module quantbench.compare)

    res = quantbench.compare(["20261205-bb", run_dir], store=str(tmp_path / "q.db"),
                             out=tmp_path / "api")  # fmt: skip
    assert [m["id"] for m in res.runs] == ["20261205-bb1", "ci-7"] and res.warnings == []
    assert res.to_dict()["points"][0]["verdict"] == "significant"


def test_compare_warns_when_machines_or_settings_differ(tmp_path, capsys):
    other_host = {**HOST, "hostname": "laptop", "cores": 8}
    _stored(tmp_path / "q.db", {
        "a": ([_cell("fp32", TIGHT)], {"host": HOST, "spec": SPEC, "threads": 2}),
        "b": ([_cell("fp32", TIGHT)], {"host": HOST, "threads": 2,
                                       "spec": {**SPEC, "out": "b", "models": ["m1", "m2"]}}),
        "c": ([_cell("fp32", TIGHT)], {"host": other_host, "threads": 8,
                                       "spec": {**SPEC, "min_runs": 5}}),
    })  # fmt: skip
    code, out, err = _compare(tmp_path, capsys, "a", "b")  # output dir and models: no warning
    assert code == 0 and "Warning" not in out and err == ""
    shutil.rmtree(tmp_path / "cmp")
    code, out, err = _compare(tmp_path, capsys, "a", "a", "--format", "json")
    assert _strict_json(out)["warnings"] == ["run a is compared with itself: every change is 0"]
    shutil.rmtree(tmp_path / "cmp")
    code, out, err = _compare(tmp_path, capsys, "a", "c", "-q")
    assert code == 0 and "warning" not in out
    warned = err.splitlines()
    assert warned == [
        "quantbench: warning: runs a and c ran on different machines (hostname ci-1 → laptop; "
        "cores 2 → 8): a change may come from the machine, not the code",
        "quantbench: warning: runs a and c differ in settings (threads 2 → 8; min_runs 20 → 5): "
        "a change may come from them, not the code",
    ]
    shutil.rmtree(tmp_path / "cmp")
    code, out, _ = _compare(tmp_path, capsys, "a", "c")
    assert out.index("> ⚠️ **Warning:** runs a and c ran on different machines") < out.index("## ")
