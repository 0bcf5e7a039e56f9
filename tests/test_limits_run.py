"""Real runs against the machine's ceilings: no measured variant above its roof by more
than CEILING_NOISE, every timed variant counted and profiled at its reference shape."""

from __future__ import annotations

import pytest

from conftest import fast_overrides
from quantbench.report.limits import CEILING_NOISE, limits
from quantbench.runner import run
from quantbench.runner.checks import build_spec
from quantbench.shapes import ref_sizes


def _under_ceilings(result) -> list:
    """Every ok cell's roofline row, each checked against its ceiling."""
    meta = result.run.to_dict()
    found = limits(meta, result.results, ref_sizes(meta["spec"]))
    assert found is not None and found.ceilings is not None, meta["host"].get("ceilings")
    ok = {(c.model, c.recipe) for c in result.results if c.status == "ok"}
    assert {(r.cell.model, r.cell.recipe) for r in found.rows} == ok
    for r in found.rows:
        name = f"{r.cell.model} · {r.cell.recipe}"
        assert r.roof is not None, name
        assert r.roof.share <= 1 + CEILING_NOISE, (name, r.roof.share, r.roof.bound)
        b = r.breakdown
        assert b is not None and 0 < b.attributed_ms <= b.wall_ms * 1.001, name
    return found.rows


@pytest.mark.slow  # seconds of real processes or runs: the everyday suite stays under 5 minutes
def test_a_tiny_run_stays_under_its_ceilings(tmp_path, tiny_bert_dir):
    bert = f"hf:{tiny_bert_dir}"
    spec = build_spec(overrides=fast_overrides(
        models=[bert], recipes=["fp32", "dynamic-int8", "ort-dynamic-int8"],
        isolate=False, threads=1, out=str(tmp_path / "o"),
    ))  # fmt: skip
    result = run(spec, progress=False)
    rows = _under_ceilings(result)
    assert result.run.host["ceilings"]["threads"] == 1  # the run's threads
    by = {r.cell.recipe: r for r in rows}
    assert set(by) == {"fp32", "dynamic-int8", "ort-dynamic-int8"}
    fp32, dyn, ort = by["fp32"], by["dynamic-int8"], by["ort-dynamic-int8"]
    assert (fp32.work.batch_size, fp32.work.input_size) == (1, 16)  # the reference shape
    assert fp32.work.low_flops == 0 and fp32.work.precision == "fp32"
    # every Linear is int8: most of the work, not the attention's functional matmuls
    assert dyn.work.precision == "int8" and 0.5 * dyn.work.flops < dyn.work.low_flops
    assert dyn.work.low_flops < dyn.work.flops and dyn.work.activations_from == "variant"
    assert dyn.work.weight_bytes < fp32.work.weight_bytes
    assert ort.breakdown.profiler == "onnxruntime profiling" and fp32.breakdown.profiler == (
        "torch.profiler"
    )
    assert ort.work.activations_from == "fp32 model" and ort.work.low_flops > 0
    for c in result.results:  # profiled at the reference shape only, by default
        assert len(c.details["profile"]) == 1, c.recipe
    report = (tmp_path / "o" / "report.md").read_text(encoding="utf-8")
    assert "### How close to the limit" in report and "](plots/roofline.png)" in report


@pytest.mark.slow
def test_the_quick_preset_models_stay_under_their_ceilings(tmp_path):
    spec = build_spec(preset="quick", overrides={"out": str(tmp_path / "o")})
    result = run(spec, progress=False)
    rows = _under_ceilings(result)
    assert {r.cell.model for r in rows} == {"resnet18", "distilbert"}


def test_the_profile_setting_is_one_field_with_its_flag(tmp_path, capsys):
    from quantbench.cli import main
    from quantbench.settings import SECTION_OF, RunSpec

    assert SECTION_OF["profile"] == "timing" and RunSpec().timing.profile == "ref"
    assert RunSpec(profile=False).timing.profile == "off"  # YAML 1.1 reads `off` as false
    config = tmp_path / "c.yaml"
    for text, want in (("profile: on", "unknown profile mode 'on'"),
                       ("profile: 3", "setting 'profile' must be a string, got 3")):  # fmt: skip
        config.write_text(text + "\n")
        assert main(["run", "--config", str(config), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and want in err, err
    assert main(["run", "--profile", "sometimes", "--out", str(tmp_path / "o")]) == 2
    assert "Valid profile modes: all, off, ref" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow  # seconds of real runs: the everyday suite stays under 5 minutes
def test_profile_off_counts_work_only_and_all_profiles_every_point(tmp_path, tiny_bert_dir):
    base = fast_overrides(models=[f"hf:{tiny_bert_dir}"], recipes=["fp32"], isolate=False,
                          threads=1, measure=["latency"], seq_lens=[8, 16])  # fmt: skip
    off = run(build_spec(overrides={**base, "profile": "off", "out": str(tmp_path / "off")}),
              progress=False).results[0]  # fmt: skip
    assert "profile" not in off.details and off.details["roofline"]["flops"] > 0
    every = run(build_spec(overrides={**base, "profile": "all", "out": str(tmp_path / "all")}),
                progress=False).results[0]  # fmt: skip
    shapes = [(p["batch_size"], p["input_size"]) for p in every.details["profile"]]
    assert shapes[0] == (1, 16)  # the reference shape first
    assert sorted(shapes) == sorted((p.batch_size, p.input_size) for p in every.latency)


@pytest.mark.slow
def test_a_run_above_its_cached_ceilings_measures_them_again(
    tmp_path, monkeypatch, capsys, tiny_bert_dir
):
    """Ceilings cached far too low (as a busy moment leaves them): the run's variants land
    above them, so the run measures them again, keeps the best and reports nothing above."""
    from quantbench.measure import ceiling_cache as cache
    from quantbench.measure.ceilings import Ceilings

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    low = Ceilings(threads=1, peaks={p: {"rate": 1e6, "library": "x", "shape": [1, 1, 1]}
                                     for p in ("fp32", "int8")},
                   bandwidth_={"triad": 1e6, "copy": 1e6}, fingerprint=cache.fingerprint(1),
                   contention={"verdict": "quiet"})  # fmt: skip
    assert cache.save(low) is None
    spec = build_spec(overrides=fast_overrides(
        models=[f"hf:{tiny_bert_dir}"], recipes=["fp32", "dynamic-int8"], isolate=False,
        threads=1, out=str(tmp_path / "o"),
    ))  # fmt: skip
    result = run(spec, progress=False)
    assert "ran above the machine's ceilings: measured them again" in capsys.readouterr().err
    found = result.run.host["ceilings"]
    assert found["measurements"] == 2 and found["peaks"]["fp32"]["rate"] > 1e9
    assert cache.load_cached(1).measurements == 2  # and cached
    _under_ceilings(result)
    report = (tmp_path / "o" / "report.md").read_text(encoding="utf-8")
    assert "Above the ceiling" not in report
