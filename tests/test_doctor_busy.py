"""`quantbench doctor`'s other-work lines (a real busy process), and the contention
benchmark's load and arguments."""

from __future__ import annotations

import os

import pytest

from conftest import load_script
from quantbench import doctor_busy


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_doctor_names_a_busy_process_and_how_to_quiet_the_machine():
    load = load_script("benchmarks/busyload.py", "busyload_doctor")
    with load.competing_load(1) as pids:
        top = doctor_busy.top_consumers(sample_s=0.5)
        lines = doctor_busy.busy_lines(sample_s=0.3, cores=2)
    mine = [c for c in top if c.pid == pids[0]]
    assert mine and mine[0].cores > 0.02 and mine[0].name.startswith("-c try: import ctypes")
    assert os.getpid() not in {c.pid for c in top}
    assert lines[0].startswith("others:     ") and "cores busy with other processes" in lines[0]
    assert any(ln.startswith("effect:     ") for ln in lines)
    assert any("pyperf system tune" in ln for ln in lines)
    assert not any(_alive(p) for p in pids)  # stopped at the block's end


def test_effect_and_advice_texts():
    assert doctor_busy.effect_text(0.1, 4).startswith("quiet")
    text = doctor_busy.effect_text(3.0, 4)
    assert "3.0 of 4 cores (75%)" in text and "contended" in text
    advice = doctor_busy.tuning_advice(8)
    assert any("taskset -c 4-7" in a and "--threads 4" in a for a in advice)
    assert any("taskset -c 1 " in a for a in doctor_busy.tuning_advice(2))


def test_load_is_stopped_on_failure():
    load = load_script("benchmarks/busyload.py", "busyload_fail")
    with pytest.raises(RuntimeError), load.competing_load(2) as pids:
        assert all(_alive(p) for p in pids)
        raise RuntimeError("the run failed")
    assert not any(_alive(p) for p in pids)


@pytest.mark.parametrize(
    "argv, message",
    [(["--load", "0"], "argument --load: expected a whole number > 0, got 0"),
     (["--min-runs", "x"], "argument --min-runs: expected a whole number > 0, got 'x'"),
     (["--tolerance", "2"], "argument --tolerance: expected a fraction between 0 and 1, got 2"),
     (["--bogus"], "unrecognized arguments: --bogus")],
)  # fmt: skip
def test_bench_contention_bad_arguments_are_one_line(argv, message, capsys):
    bench = load_script("benchmarks/contention.py", "contention_args")
    with pytest.raises(SystemExit) as e:
        bench.parse_args(argv)
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"contention: error: {message}"]


def test_bench_contention_unknown_model_exits_2_before_any_load(tmp_path, capsys):
    bench = load_script("benchmarks/contention.py", "contention_models")
    assert bench.main(["--models", "nope", "--out", str(tmp_path / "b")]) == 2
    out = capsys.readouterr()
    assert out.out == "" and len(out.err.strip().splitlines()) == 1
    assert out.err.startswith("contention: error: unknown model 'nope'.")
    assert not (tmp_path / "b").exists()  # nothing started, nothing written


def test_bench_contention_compares_and_judges():
    bench = load_script("benchmarks/contention.py", "contention_cmp")
    args = bench.parse_args(["--models", "resnet18", "--min-runs", "3", "--wait-policy", "active"])
    o = bench.overrides(args, __import__("pathlib").Path("/x/quiet"))
    assert o == {"out": "/x/quiet", "store": "/x/store.db", "models": "resnet18",
                 "min_runs": 3, "wait_policy": "active"}  # fmt: skip
    k1, k2 = ("m", "static-int8", 1, 224), ("m", "dynamic-int8", 1, 224)
    lines, ok = bench.compare({k1: (2.0, False), k2: (1.5, False)},
                              {k1: (2.2, False), k2: (3.0, True)}, 0.15)  # fmt: skip
    assert ok and "drifts, marked contended" in lines[1] and lines[2].endswith("ok")
    lines, ok = bench.compare({k1: (2.0, False)}, {k1: (2.6, False)}, 0.15)
    assert not ok and lines[1].endswith("DRIFTS")


def test_a_high_load_average_with_nothing_running_now_is_no_busy_warning():
    """The 1-minute load average still counts what ran before (doctor's own measurement of
    the ceilings, a run just finished): where the sample of other processes says they use
    next to nothing now, doctor does not call the machine busy; where it says they do, or
    cannot say, the load average warns as before."""
    from quantbench.doctor import warnings_for

    host = {"cores": 2, "load_avg": 1.1}

    def said(others):
        return any("the machine is busy" in w for w in warnings_for(host, 1, None, others))

    assert not said(0.02) and said(None) and said(1.5)
