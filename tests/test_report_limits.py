"""The report's "How close to the limit": the machine's ceilings, each variant's roofline
point, where its time goes, the figures, and the "why slower" findings that cite them
(synthetic records, no torch)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from quantbench.measure.profile import KINDS
from quantbench.report import render_report
from quantbench.report.limits import CEILING_NOISE, limits, machine_rates
from quantbench.report.render import render_markdown
from quantbench.results import CellResult, read_json, write_json
from test_report import GFLOP, PNG_MAGIC, RUN, _sweep, _tables_valid, make_results

MiB = 2**20
CEILINGS = {
    "threads": 2,
    "peaks": {"fp32": {"rate": 150e9, "library": "torch matmul (MKL/oneDNN)",
                       "shape": [2048, 2048, 2048]},
              "int8": {"rate": 450e9, "library": "onnxruntime MatMulInteger",
                       "shape": [128, 768, 3072]}},
    "gemms": [{"precision": "bf16", "library": "torch matmul",
               "skipped": "no native bf16 on this CPU (converted in software)"}],
    "bandwidth": {"copy": 20e9, "triad": 25e9, "array_bytes": 128 * MiB, "llc_bytes": 32 * MiB},
    "theoretical": {"fp32": {"precision": "fp32", "ops_per_cycle": 32, "cores": 2, "ghz": 2.5,
                             "clock_source": "base clock in the CPU's model name",
                             "instructions": "AVX2 FMA, 2 x 256-bit units", "rate": 160e9},
                    "int8": {"precision": "int8", "ops_per_cycle": 64, "cores": 2, "ghz": 2.5,
                             "clock_source": "base clock in the CPU's model name",
                             "instructions": "AVX2 vpmaddubsw+vpmaddwd (no VNNI)",
                             "rate": 320e9}},
    "measured_at": "2025-01-02T03:00:00+00:00", "load_avg": 0.3, "cached": True,
}  # fmt: skip
LIMITS_RUN = {**RUN, "host": {**RUN["host"], "ceilings": CEILINGS}}
REF = {"vision": 224, "text": 128}
# Where fp32's and dynamic-int8's time goes in bert (ms of one pass), by kind.
BERT_FP32 = {"matmul": 150.0, "qdq": 0.0, "reorder": 4.0, "norm": 6.0, "softmax": 12.0,
             "other": 8.0}  # fmt: skip
BERT_INT8 = {"matmul": 40.0, "qdq": 0.0, "reorder": 10.0, "norm": 6.0, "softmax": 12.0,
             "other": 4.0}  # fmt: skip


def with_limits(results: list[CellResult]) -> list[CellResult]:
    """What the limits stage records on every timed cell: its work at the reference
    shape (FLOPs, int8 share, bytes) and its profile there, summing to its fastest pass."""
    out = copy.deepcopy(results)
    for c in out:
        if c.status != "ok" or not c.latency:
            continue
        size = REF[c.family]
        ref = next(p for p in c.latency if (p.batch_size, p.input_size) == (1, size))
        int8 = c.recipe != "fp32"
        low = (c.int8_param_fraction or 0.0) if int8 else 0.0
        c.details["roofline"] = {
            "batch_size": 1, "input_size": size, "flops": GFLOP[c.model] * 1e9,
            "low_flops": GFLOP[c.model] * 1e9 * low, "precision": "int8" if int8 else "fp32",
            "weight_bytes": c.size_bytes or 0, "activation_bytes": 8 * MiB,
            "activations_from": "variant",
        }  # fmt: skip
        if c.model == "bert":
            kinds = BERT_INT8 if int8 else BERT_FP32
        else:
            kinds = {k: 0.0 for k in KINDS} | {"matmul": 0.8 * ref.min, "other": 0.15 * ref.min}
        c.details["profile"] = [{
            "profiler": "torch.profiler", "batch_size": 1, "input_size": size,
            "kinds": kinds, "wall_ms": sum(kinds.values()) * 1.02, "runs": 10,
            "top": [["aten::linear", "matmul", kinds["matmul"]]],
        }]  # fmt: skip
    return out


def _bert_fastest_passes(results: list[CellResult]) -> None:
    """bert's fastest passes at 1 x 128 equal to its profile (180 and 72 ms)."""
    for c in results:
        if c.model == "bert" and c.status == "ok":
            p = next(p for p in c.latency if (p.batch_size, p.input_size) == (1, 128))
            p.stats.min = sum((BERT_INT8 if c.recipe != "fp32" else BERT_FP32).values())


def test_roofline_rows_against_hand_arithmetic():
    results = with_limits(make_results())
    found = limits(LIMITS_RUN, results, REF)
    rows = {(r.cell.model, r.cell.recipe): r for r in found.rows}
    # resnet18 fp32 at 1 x 224: 1.82 GFLOP in 30 ms = 60.7 GFLOP/s; bytes 46.8 MB + 8 MiB,
    # intensity 1.82e9 / 55.19e6 = 33.0 FLOP/B; bandwidth x intensity = 824 G > 150 G
    r = rows[("resnet18", "fp32")]
    assert r.roof.achieved == pytest.approx(1.82e9 / 0.030)
    assert r.work.intensity == pytest.approx(1.82e9 / (46_800_000 + 8 * MiB))
    assert r.roof.attainable == pytest.approx(150e9) and r.roof.bound == "compute"
    assert r.roof.share == pytest.approx(1.82e9 / 0.030 / 150e9)
    # bert dynamic-int8: 78% of 22 GFLOP at int8 (450 G), the rest at fp32 (150 G)
    r = rows[("bert", "dynamic-int8")]
    mixed = 22e9 / (0.78 * 22e9 / 450e9 + 0.22 * 22e9 / 150e9)
    assert r.roof.compute_ceiling == pytest.approx(mixed)
    # mobilenet_v2: 0.03 GFLOP over 14.2 MB + 8 MiB: memory-bound
    r = rows[("mobilenet_v2", "fp32")]
    assert r.roof.bound == "memory"
    assert r.roof.memory_ceiling == pytest.approx(25e9 * r.work.intensity)
    assert not found.above
    # the dynamic-int8 resnet18 cell has no latency: no row
    assert ("resnet18", "dynamic-int8") not in rows


def test_no_measured_variant_is_above_its_ceiling_and_one_that_is_is_flagged():
    results = with_limits(make_results(text=False))
    cell = next(c for c in results if (c.model, c.recipe) == ("resnet18", "fp32"))
    # 1.82 GFLOP in 30 ms is 40% of 150 G; claim 10x the work: 4x the ceiling
    cell.details["roofline"]["flops"] *= 10
    found = limits(LIMITS_RUN, results, REF)
    assert [(r.cell.model, r.cell.recipe) for r in found.above] == [("resnet18", "fp32")]
    assert found.above[0].roof.share > 1 + CEILING_NOISE
    text = render_markdown(LIMITS_RUN, results)
    assert "⚠️ Above the ceiling by more than 10%: resnet18 · fp32 (404%)" in text


def test_section_figures_and_findings(tmp_path: Path):
    results = with_limits(make_results())
    _bert_fastest_passes(results)
    write_json(tmp_path / "results.json", LIMITS_RUN, results)
    run, results = read_json(tmp_path / "results.json")  # what the store holds
    text = render_report(tmp_path, run, results).read_text(encoding="utf-8")
    _tables_valid(text)
    sec = text.split("### How close to the limit")[1].split("## 5. Discussion")[0]
    assert (
        "| fp32 | 150 GFLOP/s | torch matmul (MKL/oneDNN), 2048×2048×2048 | 160 GFLOP/s "
        "| AVX2 FMA, 2 x 256-bit units; 2 core(s) × 2.50 GHz |"
    ) in sec
    assert "| bf16 |" not in sec  # neither measured nor native
    assert "- **Memory bandwidth:** triad 25.0 GB/s, copy 20.0 GB/s" in sec
    assert (
        "| resnet18 | fp32 | 1 × 224 px | 1.82 | — | 52.6 | 33.0 | 60.7 | 150 | 40% | compute |"
        in sec
    )
    assert "| bert | dynamic-int8 | 1 × 128 tokens | 22.0 | 78% int8 |" in sec
    assert "- No variant is above its ceiling (by more than 10%)." in sec
    # bert dynamic-int8's 72 ms: 14% reorders, 56% matmul; its fastest pass agrees
    assert (
        "| bert | dynamic-int8 | 1 × 128 tokens | 56% | 0% | 14% | 8% | 17% | 6% | 72.0 "
        "| 1.44 | 1.00 |"
    ) in sec
    for name in ("roofline.png", "time_breakdown.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:4] == PNG_MAGIC
        assert f"](plots/{name})" in sec
    # the old one-Linear figure and block are for runs from before the ceilings
    assert not (tmp_path / "plots" / "gflops.png").exists()
    assert "**Achieved compute" not in text
    env = text.split("## Environment")[1]
    assert "- **Machine limits:** fp32 150 GFLOP/s, int8 450 GOP/s, memory 25.0 GB/s" in env
    assert "ceilings" not in env.replace("Machine limits", "")  # not dumped as a raw dict


def test_why_slower_cites_the_profile():
    results = with_limits(make_results())
    _bert_fastest_passes(results)
    bert = next(c for c in results if (c.model, c.recipe) == ("bert", "dynamic-int8"))
    for p in bert.latency:  # slower than fp32 everywhere
        p.speedup.median, p.speedup.ci_low, p.speedup.ci_high = 0.8, 0.7, 0.9
    disc = render_markdown(LIMITS_RUN, results).split("## 5. Discussion")[1]
    slow = disc.split("**bert · dynamic-int8** is slower")[1].split("\n")[0]
    assert (
        "Where the time goes: profiled at 1 × 128 tokens (torch.profiler): 14% of "
        "dynamic-int8's operator time in quantize/dequantize and layout reorders, its "
        "matmuls/convolutions 3.75x faster than fp32's, it reaches"
    ) in slow
    assert "(compute-bound), fp32" in slow
    # the machine's rates are its measured peaks now
    assert "of the machine's int8 matmul peak, 450 GOP/s" in slow
    assert machine_rates(LIMITS_RUN)["int8_fp32_ratio"] == pytest.approx(3.0)


def test_a_busy_measurement_and_a_disagreeing_profile_are_said():
    run = {**LIMITS_RUN, "host": {**LIMITS_RUN["host"],
                                  "ceilings": {**CEILINGS, "load_avg": 3.5}}}  # fmt: skip
    results = with_limits(make_results(text=False))  # profiles are 95% of the fastest pass
    cell = next(c for c in results if (c.model, c.recipe) == ("resnet18", "static-int8"))
    cell.details["profile"][0]["kinds"]["other"] += 10.0  # far above its fastest pass
    text = render_markdown(run, results)
    assert "⚠️ The ceilings were measured under load (load average 3.5 on 2 cores)" in text
    assert "`quantbench doctor --refresh`" in text
    assert "disagree by more than 30% for resnet18 · static-int8:" in text


def test_a_run_whose_ceilings_failed_says_why():
    run = {**RUN, "host": {**RUN["host"], "ceilings": {"error": "no quantized engine"}}}
    text = render_markdown(run, with_limits(make_results(text=False)))
    sec = text.split("### How close to the limit")[1].split("## 5. Discussion")[0]
    assert "The machine's ceilings were not measured with this run: no quantized engine" in sec
    assert "| resnet18 | fp32 | 1 × 224 px | 1.82 | — |" in sec and "| — | — | — |" in sec


def test_runs_from_before_the_ceilings_keep_their_compute_block():
    text = render_markdown(RUN, make_results())  # microbench, no work recorded
    assert "### How close to the limit" not in text
    assert "**Achieved compute vs the machine's matmul rates:**" in text
    assert _sweep  # the helpers the other report tests build runs with
