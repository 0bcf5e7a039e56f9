"""Report rendering from synthetic result records (no torch, no measuring)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from quantbench.report import render_report
from quantbench.report.data import batch_sweep_points, input_sweep_points, reference_point
from quantbench.report.plots import FIGURES
from quantbench.report.render import md_escape, md_table, render_markdown
from quantbench.results import CellResult, Fidelity, LatencyPoint, Speedup, read_json, write_json

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

RUN = {
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


def _pt(
    batch: int,
    size: int,
    sweep: str,
    median: float,
    speedup: float | None = None,
    verdict: str = "stable",
) -> LatencyPoint:
    sp = None
    if speedup is not None:
        sp = Speedup(median=speedup, ci_low=speedup * 0.95, ci_high=speedup * 1.04, n=10)
    return LatencyPoint(
        batch_size=batch, input_size=size, sweep=sweep, unit="ms",
        mean=median * 1.01, std=median * 0.03, median=median, p90=median * 1.05,
        p99=median * 1.1, min=median * 0.97, n=20, ci_low=median * 0.97,
        ci_high=median * 1.03, verdict=verdict, samples=[median] * 20, speedup=sp,
    )  # fmt: skip


def _sweep(
    fp32_ms: float, sizes: list[int], batches: list[int], ref: int, speedup: float | None
) -> list[LatencyPoint]:
    """Input sweep at batch 1, batch sweep at ``ref`` (batch 1 recorded once, in the first).

    ``fp32_ms`` is the fp32 time at batch 1 and the reference size; a variant's speedup
    grows a little with the shape, as int8 usually does.
    """

    def pt(b: int, s: int, sweep: str) -> LatencyPoint:
        ms = fp32_ms * b * (s / ref) ** 2
        if speedup is None:
            return _pt(b, s, sweep, ms)
        sp = speedup * (0.85 + 0.15 * s / ref) * (1 + 0.02 * (b - 1))
        return _pt(b, s, sweep, ms / sp, sp)

    return [pt(1, s, "input_size") for s in sizes] + [
        pt(b, ref, "batch_size") for b in batches if b != 1
    ]


def _cell(model: str, recipe: str, family: str, **kw) -> CellResult:
    return CellResult(
        model=model, recipe=recipe, family=family, weights=RUN["weights"][model], **kw
    )


def make_results(with_latency: bool = True, text: bool = True) -> list[CellResult]:
    """Two vision models, one text model, three recipes, with the awkward cases."""
    img, img_b = [64, 128, 224], [1, 2, 4, 8]
    seq, seq_b = [16, 64, 128], [1, 4, 16]

    def lat(base_ms, sizes, batches, ref, speedup=None):
        return _sweep(base_ms, sizes, batches, ref, speedup) if with_latency else []

    res = [
        _cell("resnet18", "fp32", "vision", size_bytes=46_800_000, params=11_689_512,
              int8_param_fraction=0.0, latency=lat(30.0, img, img_b, 224)),
        # Latency omitted for this cell.
        _cell("resnet18", "dynamic-int8", "vision", size_bytes=45_300_000, params=11_689_512,
              int8_param_fraction=0.044, quantized_modules={"DynamicQuantizedLinear": 1},
              float_modules={"Conv2d": 20, "BatchNorm2d": 20}, latency=[]),
        _cell("resnet18", "static-int8", "vision", size_bytes=11_800_000, params=11_689_512,
              int8_param_fraction=0.99, quantized_modules={"QuantizedConvReLU2d": 12,
              "QuantizedConv2d": 8, "QuantizedLinear": 1}, float_modules={},
              fidelity=Fidelity(cosine=0.998, max_abs_err=0.05, top1_agreement=1.0),
              latency=lat(30.0, img, img_b, 224, 4.5)),
        _cell("mobilenet_v2", "fp32", "vision", size_bytes=14_200_000, params=3_504_872,
              int8_param_fraction=0.0, latency=lat(1.5, img, img_b, 224)),
        # Slower than fp32: only the classifier's Linear is quantized.
        _cell("mobilenet_v2", "dynamic-int8", "vision", size_bytes=10_400_000,
              params=3_504_872, int8_param_fraction=0.27,
              quantized_modules={"DynamicQuantizedLinear": 1},
              float_modules={"Conv2d": 52, "BatchNorm2d": 52},
              fidelity=Fidelity(cosine=0.9999, max_abs_err=0.001, top1_agreement=1.0),
              latency=lat(1.5, img, img_b, 224, 0.8)),
        _cell("mobilenet_v2", "static-int8", "vision", size_bytes=3_600_000, params=3_504_872,
              int8_param_fraction=0.98, quantized_modules={"QuantizedConvReLU2d": 35},
              float_modules={}, fidelity=Fidelity(cosine=0.993, max_abs_err=0.4,
              top1_agreement=0.96), latency=lat(1.5, img, img_b, 224, 2.6)),
    ]  # fmt: skip
    if text:
        res += [
            _cell("bert", "fp32", "text", size_bytes=438_000_000, params=109_482_240,
                  int8_param_fraction=0.0, latency=lat(180.0, seq, seq_b, 128)),
            _cell("bert", "dynamic-int8", "text", size_bytes=181_500_000, params=109_482_240,
                  int8_param_fraction=0.78, quantized_modules={"DynamicQuantizedLinear": 73},
                  float_modules={"Embedding": 3, "LayerNorm": 25},
                  fidelity=Fidelity(cosine=0.95, max_abs_err=0.8),
                  latency=lat(180.0, seq, seq_b, 128, 2.5)),
            _cell("bert", "static-int8", "text", status="unsupported", error=UNSUPPORTED_REASON),
        ]  # fmt: skip
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
    path, text = full_report
    assert path.name == "report.md" and path.is_file()
    for name in FIGURES.values():
        png = path.parent / "plots" / name
        assert png.is_file(), name
        assert png.read_bytes()[:4] == PNG_MAGIC, name
        assert f"](plots/{name})" in text, name


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
    # Without a batch sweep the reference is the largest input size.
    cell.latency = [p for p in cell.latency if p.sweep == "input_size"][:2]
    ref = reference_point(cell)
    assert ref is not None and ref.input_size == 128
    assert batch_sweep_points(cell) == []


def test_md_table_escapes_pipes() -> None:
    lines = md_table(["a", "b"], [["x|y", "multi\nline"], ["already \\| escaped", None]])
    assert lines[2] == "| x\\|y | multi line |"
    assert lines[3] == "| already \\| escaped |   |"
    _tables_valid("\n".join(lines))


def test_import_is_cheap() -> None:
    code = "import sys, quantbench.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
