"""Report rendering from synthetic result records (no torch, no measuring)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from quantbench.report import render_report
from quantbench.report.data import batch_sweep_points, input_sweep_points
from quantbench.report.figures import FIGURES
from quantbench.report.fmt import md_escape, md_table
from quantbench.report.render import render_markdown
from quantbench.results import (
    Accuracy,
    CellResult,
    Fidelity,
    LatencyPoint,
    Speedup,
    Stats,
    read_json,
    write_json,
)
from quantbench.shapes import ref_sizes, reference_point

PNG_MAGIC = b"\x89PNG"
LATENCY_FIGURES = [
    "vision_latency_vs_image_size.png",
    "vision_latency_vs_batch_size.png",
    "text_latency_vs_seq_len.png",
    "text_latency_vs_batch_size.png",
    "speedup.png",
]
SECTIONS = [
    "## 1. Models and model size",
    "## 2. How quantization was done",
    "## 3. Model size",
    "## 4. Latency",
    "## 5. Discussion",
    "## Environment",
]
UNSUPPORTED_REASON = "FX symbolic tracing failed | data-dependent control flow"

OLD_RUN = {
    "id": "test-run-001",
    "started_at": "2025-01-02T03:04:05Z",
    "finished_at": "2025-01-02T03:14:05Z",
    "quantbench_version": "0.1.0",
    "host": {
        "cpu": "AMD EPYC 9R14",
        "cores": 2,
        "isa_flags": ["avx2", "avx512f", "avx512_vnni"],
        "os": "Linux 6.1",
    },
    "versions": {"torch": "2.14.1", "python": "3.12.3"},
    "engine": "x86",
    "threads": 2,
    "weights": {
        "resnet18": "random (seed 0)",
        "mobilenet_v2": "pretrained",
        "bert": "random (seed 0)",
    },
    "spec": {"calib_batches": 8},
}
# What newer runs record on top: micro-benchmark, load, affinity, pinning, timing policy.
BENCH = {
    "shape": [128, 768, 3072],
    "threads": 2,
    "fp32_gflops": 150.0,
    "int8_gops": 300.0,
    "int8_fp32_ratio": 2.0,
}
RUN = {
    **OLD_RUN,
    "host": {**OLD_RUN["host"], "load_avg": 0.25, "microbench": BENCH},
    "affinity": [0, 1],
    "pinned": True,
    "spec": {
        "calib_batches": 8, "fidelity_batch_size": 4, "ref_image_size": 224, "ref_seq_len": 128,
        "warmup": 2, "max_warmup": 20, "min_runs": 10, "min_time_s": 0.5, "max_time_s": 30.0,
        "timeout_s": None,
    },
}  # fmt: skip


def _pt(
    batch: int,
    size: int,
    sweep: str,
    median: float,
    speedup: float | None = None,
    verdict: str = "stable",
    flops: float | None = None,
) -> LatencyPoint:
    sp = None
    if speedup is not None:
        sp = Speedup(median=speedup, ci_low=speedup * 0.95, ci_high=speedup * 1.04, n=10)
    return LatencyPoint(
        batch_size=batch, input_size=size, sweep=sweep, unit="ms",
        stats=Stats(mean=median * 1.01, std=median * 0.03, median=median, p90=median * 1.05,
                    p99=median * 1.1, min=median * 0.97, n=20, ci_low=median * 0.97,
                    ci_high=median * 1.03, verdict=verdict),
        samples=[median] * 20, speedup=sp,
        flops=flops, gflops_per_s=flops / (median / 1e3) / 1e9 if flops else None,
    )  # fmt: skip


def _sweep(
    fp32_ms: float,
    sizes: list[int],
    batches: list[int],
    ref: int,
    speedup: float | None,
    gflop: float | None = None,
    noisy_below: int = 0,
) -> list[LatencyPoint]:
    """Input sweep at batch 1, batch sweep at ``ref`` (batch 1 recorded once, in the first).

    ``fp32_ms`` is the fp32 time at batch 1 and the reference size; a variant's speedup
    grows a little with the shape, as int8 usually does. ``gflop`` is the work of batch 1
    at the reference size (None: FLOPs not recorded); input sizes under ``noisy_below``
    are marked noisy.
    """

    def pt(b: int, s: int, sweep: str) -> LatencyPoint:
        ms = fp32_ms * b * (s / ref) ** 2
        flops = gflop * 1e9 * b * (s / ref) ** 2 if gflop else None
        verdict = "noisy" if s < noisy_below else "stable"
        if speedup is None:
            return _pt(b, s, sweep, ms, verdict=verdict, flops=flops)
        sp = speedup * (0.85 + 0.15 * s / ref) * (1 + 0.02 * (b - 1))
        return _pt(b, s, sweep, ms / sp, sp, verdict=verdict, flops=flops)

    return [pt(1, s, "input_size") for s in sizes] + [
        pt(b, ref, "batch_size") for b in batches if b != 1
    ]


def _cell(model: str, recipe: str, family: str, **kw) -> CellResult:
    return CellResult(
        model=model, recipe=recipe, family=family, weights=RUN["weights"][model], **kw
    )


GFLOP = {"resnet18": 1.82, "mobilenet_v2": 0.03, "bert": 22.0}  # batch 1, reference size
MiB = 2**20


def make_results(
    with_latency: bool = True, text: bool = True, new_fields: bool = True
) -> list[CellResult]:
    """Two vision models, one text model, three recipes, with the awkward cases.

    ``new_fields`` adds what newer runs record: FLOPs, memory, load and quantize times.
    """
    img, img_b = [64, 128, 224], [1, 2, 4, 8]
    seq, seq_b = [16, 64, 128], [1, 4, 16]
    gflop = GFLOP if new_fields else {}

    def lat(base_ms, sizes, batches, ref, speedup=None, model="", noisy_below=0):
        if not with_latency:
            return []
        return _sweep(base_ms, sizes, batches, ref, speedup, gflop.get(model), noisy_below)

    res = [
        _cell("resnet18", "fp32", "vision", size_bytes=46_800_000, params=11_689_512,
              int8_param_fraction=0.0, latency=lat(30.0, img, img_b, 224, model="resnet18")),
        # Latency omitted for this cell.
        _cell("resnet18", "dynamic-int8", "vision", size_bytes=45_300_000, params=11_689_512,
              int8_param_fraction=0.044, quantized_modules={"DynamicQuantizedLinear": 1},
              float_modules={"Conv2d": 20, "BatchNorm2d": 20}, latency=[]),
        _cell("resnet18", "static-int8", "vision", size_bytes=11_800_000, params=11_689_512,
              int8_param_fraction=0.99, quantized_modules={"QuantizedConvReLU2d": 12,
              "QuantizedConv2d": 8, "QuantizedLinear": 1}, float_modules={},
              fidelity=Fidelity(cosine=0.998, max_abs_err=0.05, top1_agreement=1.0),
              latency=lat(30.0, img, img_b, 224, 4.5, "resnet18")),
        _cell("mobilenet_v2", "fp32", "vision", size_bytes=14_200_000, params=3_504_872,
              int8_param_fraction=0.0, latency=lat(1.5, img, img_b, 224, model="mobilenet_v2")),
        # Slower than fp32: only the classifier's Linear is quantized.
        _cell("mobilenet_v2", "dynamic-int8", "vision", size_bytes=10_400_000,
              params=3_504_872, int8_param_fraction=0.27,
              quantized_modules={"DynamicQuantizedLinear": 1},
              float_modules={"Conv2d": 52, "BatchNorm2d": 52},
              fidelity=Fidelity(cosine=0.9999, max_abs_err=0.001, top1_agreement=1.0),
              latency=lat(1.5, img, img_b, 224, 0.8, "mobilenet_v2", 128)),
        _cell("mobilenet_v2", "static-int8", "vision", size_bytes=3_600_000, params=3_504_872,
              int8_param_fraction=0.98, quantized_modules={"QuantizedConvReLU2d": 35},
              float_modules={}, fidelity=Fidelity(cosine=0.993, max_abs_err=0.4,
              top1_agreement=0.96), latency=lat(1.5, img, img_b, 224, 2.6, "mobilenet_v2")),
    ]  # fmt: skip
    if text:
        res += [
            _cell("bert", "fp32", "text", size_bytes=438_000_000, params=109_482_240,
                  int8_param_fraction=0.0, latency=lat(180.0, seq, seq_b, 128, model="bert")),
            _cell("bert", "dynamic-int8", "text", size_bytes=181_500_000, params=109_482_240,
                  int8_param_fraction=0.78, quantized_modules={"DynamicQuantizedLinear": 73},
                  float_modules={"Embedding": 3, "LayerNorm": 25},
                  fidelity=Fidelity(cosine=0.95, max_abs_err=0.8),
                  latency=lat(180.0, seq, seq_b, 128, 2.5, "bert")),
            _cell("bert", "static-int8", "text", status="unsupported", error=UNSUPPORTED_REASON),
        ]  # fmt: skip
    if new_fields:  # task metrics on real data, and an accuracy-aware fallback variant

        def acc(value, rel, passes):
            return Accuracy(dataset="data/val|imgs", metric="top1", value=value,
                            relative=rel, passes=passes, max_drop=0.01, top5=0.9,
                            macro_f1=value - 0.01, n=500)  # fmt: skip

        for c in res:
            if c.model == "mobilenet_v2" and c.status == "ok":
                c.accuracy = {"fp32": acc(0.72, 1.0, True), "dynamic-int8": acc(0.719, 0.9986, True),
                              "static-int8": acc(0.61, 0.847, False)}[c.recipe]  # fmt: skip
        res.append(_cell(
            "mobilenet_v2", "static-int8+fallback", "vision", size_bytes=4_100_000,
            params=3_504_872, int8_param_fraction=0.9, accuracy=acc(0.716, 0.9944, True),
            details={"float_layers": ["features.0.0", "features|1"],
                     "fallback_steps": [["features.0.0", 0.70], ["features|1", 0.716]],
                     "sensitivity": [["features.0.0", "Conv2d", 0.004], ["features|1", "Conv2d", 0.002]]},
        ))  # fmt: skip
        load = {"resnet18": 1.13, "mobilenet_v2": 0.41, "bert": 2.9}
        peak = {"resnet18": 1100 * MiB, "mobilenet_v2": 700 * MiB, "bert": 1600 * MiB}
        for c in res:
            if c.status != "ok":
                continue
            c.load_s, c.peak_rss_bytes = load[c.model], peak[c.model]
            c.quantize_s = 0.0021 if c.recipe == "fp32" else 1.4
            c.memory = {
                "rss_bytes": (c.size_bytes or 0) + 3 * MiB,
                "inference_peak_bytes": 24 * MiB,
            }  # no process_peak_bytes: its column is skipped
    return res


def _tables_valid(text: str) -> None:
    """Every markdown table has a separator row and the same column count on each row."""
    block: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append(line)
            continue
        if block:
            counts = {len(re.findall(r"(?<!\\)\|", row)) for row in block}
            assert len(counts) == 1, block
            assert re.fullmatch(r"\|(---\|)+", block[1]), block[1]
            block = []


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("full")
    # Round-trip through results.json: the report must work from what the store holds.
    write_json(out / "results.json", RUN, make_results())
    run, results = read_json(out / "results.json")
    path = render_report(out, run, results)
    return path, path.read_text(encoding="utf-8")


def test_files_and_pngs_written(full_report: tuple[Path, str]) -> None:
    from quantbench.results import file_mode

    path, text = full_report
    assert path.name == "report.md" and path.is_file()
    # written atomically, yet with the mode any new file gets (not mkstemp's 0600)
    for f in ("report.md", "report.html", "results.json"):
        assert (path.parent / f).stat().st_mode & 0o777 == file_mode(), f
    # the limit figures need the ceilings and work newer runs record (test_report_limits)
    for name in (f.filename for f in FIGURES if f.slot != "limits"):
        png = path.parent / "plots" / name
        assert png.is_file(), name
        assert png.read_bytes()[:4] == PNG_MAGIC, name
        assert f"](plots/{name})" in text, name


def test_accuracy_section(full_report: tuple[Path, str]) -> None:
    _, text = full_report
    sec = text[text.index("## 6. Accuracy on real data") : text.index("## Environment")]
    assert "| mobilenet_v2 | static-int8 | top1 61.00% (84.7% of fp32) |" in sec
    assert "**fail**" in sec and "| pass |" in sec
    # the fallback: which layers stayed float, what it cost, with user strings escaped
    assert "kept 2 layer(s) in float (`features.0.0`, features\\|1)" in sec
    assert "size 3.4 → 3.9 MiB" in sec and "meets the bar" in sec
    assert "data/val\\|imgs" in sec
    assert "](plots/accuracy_vs_latency.png)" in sec
    # bert was not scored on data: it is judged on fidelity, the others on the bar
    rec = text[text.index("## Recommendation") : text.index("## 1.")]
    assert "static-int8: top1 84.7% of fp32 < 99%" in rec


def test_sections_and_tables(full_report: tuple[Path, str]) -> None:
    _, text = full_report
    positions = [text.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    assert "test-run-001" in text and "2025-01-02T03:04:05Z" in text
    _tables_valid(text)
    # Size table numbers: MiB with one decimal, ratio and "x smaller".
    assert "44.6" in text  # resnet18 fp32: 46.8e6 B
    assert "0.25x (4.0x smaller)" in text  # resnet18 static
    assert "73 × DynamicQuantizedLinear" in text
    assert "LayerNorm 25, Embedding 3" in text
    assert "calibrated on 8 batches" in text
    assert "avx512_vnni" in text and "2.14.1" in text


def test_weights_warning(full_report: tuple[Path, str]) -> None:
    _, text = full_report
    head = text.split(SECTIONS[0])[0]
    assert "Weights: random for resnet18, bert" in head
    assert "do **not** reflect a trained model" in head
    assert "mobilenet_v2` : pretrained" not in head and "`mobilenet_v2`: pretrained" in head


def test_unsupported_reason_listed(full_report: tuple[Path, str]) -> None:
    _, text = full_report
    method = text.split(SECTIONS[1])[1].split(SECTIONS[2])[0]
    assert "unsupported" in method
    assert md_escape(UNSUPPORTED_REASON) in method
    assert "FX symbolic tracing failed \\| data-dependent" in method


def test_slow_case_discussed(full_report: tuple[Path, str]) -> None:
    _, text = full_report
    disc = text.split(SECTIONS[4])[1].split(SECTIONS[5])[0]
    assert "**mobilenet_v2 · dynamic-int8** is slower than fp32" in disc
    assert "few modules were quantized" in disc
    assert "small shapes" in disc  # its passes take < 5 ms
    assert "no VNNI" not in disc  # the host has avx512_vnni
    # ... and it says what to use instead: static-int8 wins at the slowest shape
    assert (
        "At 1 × 64 px **static-int8** is the fastest variant (2.32x fp32 [2.21, 2.41]): use it"
        in disc
    )
    assert "resnet18 · static-int8" in disc and "4.50x" in disc
    # Fidelity warnings: bert cosine 0.95 (random weights), mobilenet top-1 96%.
    assert "⚠️ **bert · dynamic-int8** (random weights): cosine 0.9500 < 0.99" in disc
    assert "Fidelity for resnet18, bert was measured on random weights" in disc
    assert "⚠️ **mobilenet_v2 · static-int8**: top-1 agreement 96.0%" in disc
    assert "resnet18 · static-int8**:" not in disc  # good fidelity: no warning


def test_latency_tables(full_report: tuple[Path, str]) -> None:
    _, text = full_report
    lat = text.split(SECTIONS[3])[1].split(SECTIONS[4])[0]
    assert "### bert (text)" in lat and "### resnet18 (vision)" in lat
    assert "Latency not measured for: dynamic-int8." in lat
    assert "| static-int8 | 1 × 224 px | 6.67 [6.47, 6.87] |" in lat
    assert "4.50x [4.27, 4.68]" in lat


def test_no_vnni_reason(tmp_path: Path) -> None:
    run = {**RUN, "host": {**RUN["host"], "isa_flags": ["avx2", "fma"]}}
    text = render_markdown(run, make_results(text=False))
    assert "no VNNI/AMX int8 instructions" in text


def test_absent_family_has_no_figure(tmp_path: Path, full_report: tuple[Path, str]) -> None:
    # Rendering into a directory that already holds text figures removes them.
    out = tmp_path / "vision_only"
    (out / "plots").mkdir(parents=True)
    src = full_report[0].parent / "plots"
    for name in ("text_latency_vs_seq_len.png", "text_latency_vs_batch_size.png"):
        (out / "plots" / name).write_bytes((src / name).read_bytes())
    text = render_report(out, RUN, make_results(text=False)).read_text(encoding="utf-8")
    assert not (out / "plots" / "text_latency_vs_seq_len.png").exists()
    assert not (out / "plots" / "text_latency_vs_batch_size.png").exists()
    assert (out / "plots" / "vision_latency_vs_image_size.png").read_bytes()[:4] == PNG_MAGIC
    assert "text_latency" not in text
    _tables_valid(text)


def test_size_only_run(tmp_path: Path) -> None:
    path = render_report(tmp_path, RUN, make_results(with_latency=False))
    text = path.read_text(encoding="utf-8")
    plots = tmp_path / "plots"
    assert (plots / "size.png").read_bytes()[:4] == PNG_MAGIC
    for name in LATENCY_FIGURES:
        assert not (plots / name).exists(), name
    assert "Latency was not measured in this run." in text
    assert "no speedup vs fp32 was measured" in text
    for s in SECTIONS:
        assert s in text
    _tables_valid(text)


def test_empty_run(tmp_path: Path) -> None:
    text = render_report(tmp_path, {}, []).read_text(encoding="utf-8")
    assert all(s in text for s in SECTIONS)
    assert not list((tmp_path / "plots").glob("*.png"))


def test_sweep_selection() -> None:
    cell = make_results()[0]  # resnet18 fp32
    assert [p.input_size for p in input_sweep_points(cell)] == [64, 128, 224]
    batch = batch_sweep_points(cell)
    assert [p.batch_size for p in batch] == [1, 2, 4, 8]  # batch 1 borrowed from input sweep
    assert {p.input_size for p in batch} == {224}
    ref = reference_point(cell)
    assert ref is not None and (ref.batch_size, ref.input_size) == (1, 224)
    # Without a spec's size or a batch sweep, the reference is the largest input size.
    cell.latency = [p for p in cell.latency if p.sweep == "input_size"][:2]
    ref = reference_point(cell)
    assert ref is not None and ref.input_size == 128
    # ... and with one, the spec's size wherever it was measured.
    ref = reference_point(cell, ref_sizes({"ref_image_size": 64}))
    assert ref is not None and ref.input_size == 64
    assert batch_sweep_points(cell) == []


def test_md_table_escapes_pipes() -> None:
    lines = md_table(["a", "b"], [["x|y", "multi\nline"], ["a \\| is text", None]])
    assert lines[2] == "| x\\|y | multi line |"
    assert lines[3] == "| a \\\\\\| is text |   |"  # shown as typed: backslash, pipe
    _tables_valid("\n".join(lines))


def test_import_is_cheap() -> None:
    code = "import sys, quantbench.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _section(text: str, i: int) -> str:
    """The body of section ``SECTIONS[i]`` (up to the next section)."""
    body = text.split(SECTIONS[i])[1]
    return body.split(SECTIONS[i + 1])[0] if i + 1 < len(SECTIONS) else body


def test_latency_work_columns_and_policy(full_report: tuple[Path, str]) -> None:
    _, text = full_report
    lat = _section(text, 3)
    header = (
        "| Recipe | Shape (batch × input) | Median ms [CI] | p90 ms | p99 ms | GFLOP | GFLOP/s | n "
        "| Verdict | Speedup vs fp32 [CI] |"
    )
    assert lat.count(header) == 3
    # resnet18 fp32 at 1 × 224: 1.82 GFLOP in 30 ms.
    assert "| fp32 | 1 × 224 px | 30.0 [29.1, 30.9] | 31.5 | 33.0 | 1.82 | 60.7 | 20 |" in lat
    policy = lat.split("**Timing policy.**")[1].split("\n")[0]
    for part in ("at least 2 passes", "agree within 10%", "at most 20", "at least 10 passes",
                 "0.5 s of timed passes", "capped at 30 s", "interleaved rounds",
                 "No per-model timeout"):  # fmt: skip
        assert part in policy, part
    # mobilenet_v2 dynamic-int8 at 64 px (batch 1) is the one noisy point of 40.
    assert "**1 of 40 points is noisy** (std ≥ 10% of the mean or median CI wider" in lat


def test_memory_section(full_report: tuple[Path, str]) -> None:
    _, text = full_report
    lat = _section(text, 3)
    mem = lat.split("### Memory and time to prepare")[1]
    assert (
        "| Model | Recipe | Load s | Quantize s | Added by artifact (MiB) | Inference peak (MiB) "
        "| Worker peak RSS (MiB) |" in mem
    )
    assert "RSS peak in that pass" not in mem  # no cell records process_peak_bytes
    assert "| resnet18 | fp32 | 1.13 | 0.00210 | 47.6 | 24.0 | 1100.0 |" in mem
    assert "| resnet18 | static-int8 | — | 1.40 | 14.3 | 24.0 | — |" in mem  # per-model: once
    assert "batch 4 × the reference input size (224 px for vision, 128 tokens for text)" in mem
    assert "](plots/gflops.png)" in mem
    assert "fp32 Linear 150 GFLOP/s, dynamic int8 Linear 300 GOP/s" in mem


def test_discussion_compute_evidence(full_report: tuple[Path, str]) -> None:
    _, text = full_report
    disc = _section(text, 4)
    slow = disc.split("**mobilenet_v2 · dynamic-int8** is slower")[1].split("\n")[0]
    # 0.03 GFLOP at 224 px -> 2.45 MFLOP at 64 px in 0.122 ms: 20 GFLOP/s, 13% of 150.
    assert (
        "Evidence: fp32 reaches 20.0 GFLOP/s at 1 × 64 px, 13% of the machine's measured fp32 "
        "matmul rate (150 GFLOP/s), so this pass is limited by something other than "
        "matrix-multiply throughput" in slow
    )
    assert "dynamic-int8 reaches 14.3 GFLOP/s fp32-equivalent (5% of the machine's int8" in slow
    assert "int8 Linear runs 2.00x faster than fp32 at most" in disc
    assert "fused conv+relu" in disc
    assert "Above that 2.00x ceiling at the reference shape: resnet18 · static-int8 (4.50x" in disc
    assert "| bert | fp32 | 1 × 128 tokens | 22.0 | 122 | 81% of fp32 Linear |" in disc
    assert "barely faster" not in disc


def test_environment_new_fields(full_report: tuple[Path, str]) -> None:
    _, text = full_report
    env = _section(text, 5)
    assert "- **Load average at start:** 0.25 (1-minute average, 2 cores)" in env
    assert "busy" not in env
    assert (
        "- **Matmul micro-benchmark:** fp32 150 GFLOP/s, int8 300 GOP/s (dynamic int8 Linear "
        "vs fp32 Linear, M×K×N = 128×768×3072, 2 threads): int8:fp32 = 2.00x" in env
    )
    assert "- **CPU affinity at start:** CPUs 0–1 (2)" in env
    assert "- **Pinned:** yes (each model's worker pinned to 2 CPUs)" in env
    assert "- **Timing policy:** Warm-up: at least 2 passes" in env
    assert "- **Threads:** 2" in env


def test_barely_faster_slow_int8_and_busy_machine() -> None:
    run = {
        **RUN,
        "host": {**RUN["host"], "load_avg": 3.0,
                 "microbench": {**BENCH, "int8_gops": 120.0, "int8_fp32_ratio": 0.8}},
        "affinity": None, "pinned": False,
    }  # fmt: skip
    results = make_results(text=False)
    # mobilenet_v2 static-int8, now only 1.15x at the reference shape
    static = next(c for c in results if (c.model, c.recipe) == ("mobilenet_v2", "static-int8"))
    static.latency = _sweep(1.5, [64, 128, 224], [1, 2, 4, 8], 224, 1.15, 0.03)
    text = render_markdown(run, results)
    disc = _section(text, 4)
    barely = disc.split("**Where a quantized variant is barely faster** (under 1.2x")[1]
    assert "- **mobilenet_v2 · static-int8**: 1.15x [1.09, 1.20] at 1 × 224 px." in barely
    assert "this machine's int8 Linear runs only 0.80x as fast as fp32" in barely
    assert "int8 Linear is slower than fp32 on this machine (0.80x)" in disc
    env = _section(text, 5)
    assert "3.00 (1-minute average, 2 cores) ⚠️ the machine was busy" in env
    assert "not available on this platform" in env
    assert "- **Pinned:** no" in env
    _tables_valid(text)


def _strip_new_fields(path: Path) -> None:
    """Make ``path`` look like a results.json written before the new fields existed."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    for cell in doc["results"]:
        for key in ("memory", "load_s", "quantize_s", "peak_rss_bytes"):
            cell.pop(key, None)
        for p in cell["latency"]:
            p.pop("flops", None)
            p.pop("gflops_per_s", None)
    path.write_text(json.dumps(doc), encoding="utf-8")


def test_old_results_file_renders(tmp_path: Path) -> None:
    write_json(tmp_path / "results.json", OLD_RUN, make_results(new_fields=False))
    _strip_new_fields(tmp_path / "results.json")
    run, results = read_json(tmp_path / "results.json")
    text = render_report(tmp_path, run, results).read_text(encoding="utf-8")
    assert all(s in text for s in SECTIONS)
    assert "GFLOP" not in text
    assert "### Memory and time to prepare" not in text
    assert "Timing policy" not in text and "Matmul micro-benchmark" not in text
    assert "Load average" not in text and "affinity" not in text and "Pinned" not in text
    assert "Achieved compute" not in text
    assert "**1 of 40 points is noisy**" in text
    assert not (tmp_path / "plots" / "gflops.png").exists()
    assert (tmp_path / "plots" / "speedup.png").is_file()
    _tables_valid(text)


def test_partial_new_fields() -> None:
    """Load/quantize times and peak RSS without memory or FLOPs: only those columns."""
    results = make_results(text=False, new_fields=False)
    for c in results:
        c.load_s, c.quantize_s, c.peak_rss_bytes = 1.5, 0.25, 900 * MiB
    text = render_markdown({**OLD_RUN, "spec": {"warmup": 3, "min_runs": 5}}, results)
    mem = text.split("### Memory and time to prepare")[1].split(SECTIONS[4])[0]
    assert "| Model | Recipe | Load s | Quantize s | Worker peak RSS (MiB) |" in mem
    assert "| resnet18 | fp32 | 1.50 | 0.250 | 900.0 |" in mem
    assert "Warm-up: 3 passes per variant, excluded from the statistics. Timed: at least 5 " in text
    assert "gflops.png" not in text and "GFLOP" not in text
    _tables_valid(text)


def test_flops_without_microbench(tmp_path: Path) -> None:
    path = render_report(tmp_path, OLD_RUN, make_results(text=False))
    text = path.read_text(encoding="utf-8")
    assert (tmp_path / "plots" / "gflops.png").read_bytes()[:4] == PNG_MAGIC
    disc = _section(text, 4)
    assert "**Achieved compute:**" in disc and "Share of the machine's rate" not in disc
    assert "No micro-benchmark was recorded with this run" in disc
    assert "| mobilenet_v2 | fp32 | 1 × 224 px | 0.0300 | 20.0 |" in disc
    assert "Evidence: fp32 reaches 20.0 GFLOP/s at 1 × 64 px; dynamic-int8 reaches" in disc
    _tables_valid(text)


def test_the_discussion_names_no_winner_the_timings_cannot_tell():
    from quantbench.report.findings import winner_at

    def cell(recipe: str, speedup: float, lo: float, hi: float) -> CellResult:
        p = _pt(1, 64, "input_size", 10.0 / speedup, speedup)
        p.speedup = Speedup(median=speedup, ci_low=lo, ci_high=hi, n=10)
        return CellResult(model="m", recipe=recipe, family="vision", latency=[p])

    fp32 = CellResult(
        model="m", recipe="fp32", family="vision", latency=[_pt(1, 64, "input_size", 10.0)]
    )
    noisy = [fp32, cell("dynamic-int8", 15.76, 0.35, 46.98), cell("static-int8", 0.8, 0.7, 0.9)]
    assert winner_at(noisy, "m", noisy[2].latency[0]) is None  # a median of 15.76x is not a win
    clear = [fp32, cell("dynamic-int8", 2.0, 1.9, 2.1), cell("static-int8", 0.8, 0.7, 0.9)]
    won = winner_at(clear, "m", clear[2].latency[0])
    assert won is not None and (won.recipe, won.verdict) == ("dynamic-int8", "faster")
