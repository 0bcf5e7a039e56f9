"""The targets benchmark's verdicts, on hand-made results (the run itself is a benchmark)."""

from __future__ import annotations

from conftest import load_script
from test_report import RUN, make_results


def test_targets_verdicts():
    t = load_script("benchmarks/targets.py", "targets_bench")
    lines, ok = t.evaluate(RUN, make_results())
    text = "\n".join(lines)
    assert not ok
    # resnet18 static-int8 is 4.5x: passes; bert's best int8 is 2.5x: fails 3.0x
    assert "- PASS  resnet18: best int8 >= 3.5x: 4.50x (static-int8)" in text
    assert "- FAIL  bert: best int8 >= 3.0x: 2.50x (dynamic-int8)" in text
    # mobilenet_v2 keeps fidelity only as dynamic-int8 / fallback: too big for 28%
    assert "- FAIL  every model: smallest keeping fidelity <= 28% of fp32" in text
    assert "| resnet18 | static-int8 4.50x (yes) |" in text
    assert t.is_int8("static-int8+fallback") and not t.is_int8("ort-fp32")
    assert not t.is_int8("bf16+compile")


def test_every_benchmark_and_example_imports():
    """A renamed or removed function must not leave a benchmark or example broken."""
    from pathlib import Path

    root = Path(__file__).parent.parent
    for path in [*root.glob("benchmarks/*.py"), *root.glob("examples/*.py")]:
        load_script(str(path.relative_to(root)), f"import_check_{path.stem}")


def test_sentence_table_from_cells():
    from quantbench.results import Accuracy, CellResult

    t = load_script("benchmarks/sentence_fidelity.py", "sentence_bench")
    cells = [
        CellResult("m", "fp32", size_bytes=100, accuracy=Accuracy(mean_cosine=1.0, spearman=1.0)),
        CellResult("m", "ort-int4-weight-only", size_bytes=16,
                   accuracy=Accuracy(mean_cosine=0.97, min_cosine=0.9, spearman=0.96, passes=False)),
        CellResult("m", "bf16", status="unsupported", error="no native bf16"),
    ]  # fmt: skip
    text = "\n".join(t.table(cells))
    assert "| ort-int4-weight-only | 0.0 (0.16) | 0.9700 | 0.9000 | 0.9600 | fail | 1.00x |" in text
    assert "| bf16 | unsupported: no native bf16 |" in text


def test_int4_target_verdicts():
    from quantbench.results import Accuracy, CellResult

    t = load_script("benchmarks/int4_target.py", "int4_target_bench")
    sizes = [CellResult(m, r, size_bytes=b) for m, r, b in [
        ("bert", "fp32", 1000), ("bert", "ort-int4-weight-only", 144),
        ("distilbert", "fp32", 1000), ("distilbert", "ort-int4-weight-only", 150),
        ("bert", "torchao-intx-weight-only", 290), ("distilbert", "torchao-intx-weight-only", 300),
    ]]  # fmt: skip
    sentences = [
        CellResult("m", "ort-int4-weight-only", accuracy=Accuracy(mean_cosine=0.985, spearman=0.97)),
        CellResult("m", "torchao-intx-weight-only", accuracy=Accuracy(mean_cosine=0.975, spearman=0.971)),
    ]  # fmt: skip
    lines, ok = t.evaluate(sizes, sentences)
    text = "\n".join(lines)
    assert ok  # the bounds are inclusive: 0.150 of fp32 and Spearman 0.97 meet them
    assert (
        "| ort-int4-weight-only | 0.144 (0.0 MiB) | 0.150 (0.0 MiB) | 0.9850 | 0.9700 |  | met |"
        in text
    )
    assert "missed: bert size 0.290, distilbert size 0.300, cosine |" in text
    assert "| torchao-int8-dynamic-intx | not run | not run | — | — |  | missed:" in text
    sentences[0] = CellResult("m", "ort-int4-weight-only", status="error", error="boom")
    assert not t.evaluate(sizes, sentences)[1]
