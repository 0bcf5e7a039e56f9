"""The machine's limits: measured (GEMM peaks per precision, STREAM bandwidth), beside the
theoretical peak from the ISA, cached per machine in the user's cache directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
    # a contended measurement is taken again (test below): not what this test is about
    monkeypatch.setattr(cache, "MAX_MEASUREMENTS", 1)
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


SPIN = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True:\n    pass\n"


def test_a_measurement_while_the_cores_are_held_is_contended_and_taken_again(tmp_path, monkeypatch):
    """Two busy loops on the one CPU the measurement may use: the watch says contended,
    doctor and the cache say so, and the next call measures again (best of both) until
    MAX_MEASUREMENTS are held."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cpus = os.sched_getaffinity(0)
    cpu = max(cpus)
    spins = [subprocess.Popen([sys.executable, "-c", SPIN, str(cpu)]) for _ in range(2)]
    os.sched_setaffinity(0, {cpu})  # the usable cores are part of the cache's key
    try:
        time.sleep(0.3)
        busy = cache.machine_ceilings(1, **QUICK)
        for p in spins:
            p.kill()
            p.wait()
        stale = cache.stale(cache.load_cached(1))  # the next call measures again
        again = cache.machine_ceilings(1, **QUICK)
    finally:
        os.sched_setaffinity(0, cpus)
        for p in spins:
            p.kill()
            p.wait()
    assert busy.contended and busy.contention["wait_share"] >= 0.1, busy.contention
    assert "waited for a core" in busy.busy_reason(cores=2)
    from quantbench.doctor import warnings_for

    said = warnings_for({"cores": 2}, 1, busy)
    assert any("measured under load (its threads waited for a core" in w for w in said), said
    assert stale
    assert not again.cached and again.measurements == 2
    assert again.peak("fp32") >= busy.peak("fp32")


def test_a_contended_cache_is_taken_again_only_so_often():
    held = {"verdict": "contended", "wait_share": 0.5}
    c = Ceilings(threads=1, contention=held, measurements=1)
    assert cache.stale(c)
    c.measurements = cache.MAX_MEASUREMENTS  # a machine that is never quiet: kept
    assert not cache.stale(c) and c.busy_reason(cores=2)
    quiet = Ceilings(threads=1, contention={"verdict": "quiet", "wait_share": 0.0})
    assert not cache.stale(quiet) and quiet.busy_reason(cores=2) is None
    # the best of a quiet and a contended measurement is quiet: it had a quiet one
    best = cache.best_of(quiet, Ceilings(threads=1, contention=held))
    assert not best.contended and best.measurements == 2
    old = Ceilings(threads=1, load_avg=3.0)  # a record from before the watch
    assert not old.contended and old.busy_reason(cores=2) == "load average 3.0 on 2 cores"


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
    monkeypatch.setattr(cache, "MAX_MEASUREMENTS", 1)  # a busy moment: no second take
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
