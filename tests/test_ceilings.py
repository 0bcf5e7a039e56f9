"""The machine's limits: measured (GEMM peaks per precision, STREAM bandwidth), beside the
theoretical peak from the ISA, cached per machine in the user's cache directory."""

from __future__ import annotations

import json
import time

import pytest

from quantbench.cli import main
from quantbench.measure import ceiling_cache as cache
from quantbench.measure.ceilings import Ceilings, measure_ceilings
from quantbench.measure.peak_theory import theoretical_peaks

# Real measurements, kept short: one small GEMM shape, arrays of 4 MiB.
QUICK = {"shapes": ((64, 128, 256),), "min_time": 0.0, "array_bytes": 4 << 20}


def test_ceilings_are_measured_per_precision_with_bandwidth():
    c = measure_ceilings(threads=1, **QUICK)
    assert c.threads == 1
    timed = [g for g in c.gemms if "rate" in g]
    libraries = {g["library"] for g in timed}
    assert "torch matmul (MKL/oneDNN)" in libraries
    assert any(lib.startswith("torch quantized Linear") for lib in libraries)
    assert "onnxruntime MatMulInteger" in libraries
    for p in ("fp32", "int8"):  # the best of its cases is the peak
        assert c.peak(p) == max(g["rate"] for g in timed if g["precision"] == p) > 0
    # bf16/fp16: measured only where the CPU has them natively; said either way
    for half in ("bf16", "fp16"):
        assert (half in c.peaks) == (half in c.theoretical) or any(
            g["precision"] == half and "skipped" in g for g in c.gemms
        )
    assert c.bandwidth_["copy"] > 0 and c.bandwidth_["triad"] > 0
    assert c.bandwidth() == c.bandwidth_["triad"]
    assert c.ridge("fp32") == pytest.approx(c.peak("fp32") / c.bandwidth())
    assert c.theoretical["fp32"]["ops_per_cycle"] > 0 and "measured" in c.uses
    assert Ceilings.from_dict(json.loads(json.dumps(c.to_dict()))).peaks == c.peaks


def test_theoretical_peak_follows_the_isa():
    avx2 = theoretical_peaks({"avx", "avx2", "fma"}, cores=2, clock=(2.5, "t"), arm=False)
    assert avx2["fp32"].ops_per_cycle == 32 and avx2["int8"].ops_per_cycle == 64
    assert avx2["fp32"].rate == 32 * 2 * 2.5e9 and "bf16" not in avx2
    vnni = theoretical_peaks({"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"},
                             cores=4, clock=(3.0, "t"), arm=False)  # fmt: skip
    assert vnni["fp32"].ops_per_cycle == 64
    assert vnni["int8"].ops_per_cycle == 4 * 64 and "VNNI" in vnni["int8"].instructions
    assert vnni["bf16"].ops_per_cycle == 2 * 64
    amx = theoretical_peaks({"avx512f", "amx_int8", "amx_bf16"}, 1, (2.0, "t"), arm=False)
    assert amx["int8"].ops_per_cycle == 2048 and amx["bf16"].ops_per_cycle == 1024
    arm = theoretical_peaks({"asimd", "asimddp"}, 1, (None, "no clock"), arm=True)
    assert arm["int8"].ops_per_cycle == 4 * arm["fp32"].ops_per_cycle
    assert arm["fp32"].rate is None  # no clock, no rate


def test_ceilings_are_cached_per_machine_and_refreshed(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = cache.machine_ceilings(1, **QUICK)
    assert not first.cached and first.cache_note is None
    files = list((tmp_path / "quantbench" / "ceilings").glob("*.json"))
    assert len(files) == 1
    again = cache.machine_ceilings(1, **QUICK)  # a hit: nothing measured
    assert again.cached and again.measured_at == first.measured_at
    assert again.peaks == first.peaks and again.fingerprint == cache.fingerprint(1)
    time.sleep(1.1)  # measured_at has a resolution of one second
    fresh = cache.machine_ceilings(1, refresh=True, **QUICK)
    assert not fresh.cached and fresh.measured_at != first.measured_at
    assert fresh.measurements == 2  # the best of both: a busy moment only lowers a peak
    for p in first.peaks:
        assert fresh.peak(p) == max(
            first.peak(p),
            max(g["rate"] for g in fresh.gemms if g["precision"] == p and "rate" in g),
        )
    assert fresh.bandwidth() >= first.bandwidth()
    assert cache.machine_ceilings(1, **QUICK).measured_at == fresh.measured_at  # replaced
    # another thread count is another machine as far as the ceilings go
    two = cache.machine_ceilings(2, **QUICK)
    assert not two.cached and two.threads == 2
    assert len(list(files[0].parent.glob("*.json"))) == 2


def test_a_measurement_under_load_does_not_lower_the_cached_peaks():
    high = Ceilings(threads=1, peaks={"fp32": {"rate": 9e9}, "int8": {"rate": 1e9}},
                    bandwidth_={"triad": 5e9}, load_avg=0.1)  # fmt: skip
    busy = Ceilings(threads=1, peaks={"fp32": {"rate": 3e9}, "int8": {"rate": 2e9}},
                    bandwidth_={"triad": 4e9}, load_avg=7.0)  # fmt: skip
    best = cache.best_of(high, busy)
    assert (best.peak("fp32"), best.peak("int8"), best.bandwidth()) == (9e9, 2e9, 5e9)
    assert best.load_avg == 0.1 and best.measurements == 2  # the fp32 peak's measurement


def test_a_damaged_cache_is_measured_over(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = cache.cache_path(cache.fingerprint(1))
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    found = cache.machine_ceilings(1, **QUICK)
    assert not found.cached and found.peak("fp32")
    assert json.loads(path.read_text())["threads"] == 1  # rewritten whole
    path.write_text(json.dumps({"threads": 1, "fingerprint": {"cpu": "another"}}))
    assert not cache.machine_ceilings(1, **QUICK).cached  # not this machine's


def test_an_unwritable_cache_costs_only_the_measurement(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # no directory can be made in it
    found = cache.machine_ceilings(1, **QUICK)
    assert found.peak("fp32") and found.cache_note.startswith("not cached (")
    assert str(blocker) in found.cache_note


@pytest.mark.slow  # seconds to tens of seconds: the everyday suite stays under 5 minutes
def test_doctor_prints_the_ceilings(capsys):
    assert main(["doctor", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "ceilings:   at 1 thread(s)" in out
    fp32 = next(x for x in out.splitlines() if x.strip().startswith("fp32:"))
    assert "GFLOP/s measured" in fp32 and "theoretical" in fp32
    assert "memory:  triad" in out and "used:    the measured peaks" in out


@pytest.mark.slow
def test_doctor_refresh_measures_again(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["doctor", "--threads", "1", "--seconds", "0.01"]) == 0
    assert "measured now in" in capsys.readouterr().out
    assert main(["doctor", "--threads", "1"]) == 0
    assert "read from the cache" in capsys.readouterr().out
    assert main(["doctor", "--threads", "1", "--refresh", "--seconds", "0.01"]) == 0
    assert "measured now in" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["--seconds", "0"], ["--seconds", "nan"], ["--threads", "0"]])
def test_doctor_refuses_bad_settings(args, capsys):
    assert main(["doctor", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "must be" in err
