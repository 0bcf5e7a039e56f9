"""The metrics table (``quantbench.measure.metrics``): results.csv's columns, and a metric
added to the table alone reaching the CSV, compare.md, the machines tables and report.md
(synthetic records, no torch)."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import pytest

from quantbench.compare import Comparison, compare, gate_report
from quantbench.machines import build
from quantbench.measure import metrics
from quantbench.measure.latency import summarize
from quantbench.measure.metrics import METRICS, Metric, csv_columns, csv_text, metric, shown
from quantbench.report import figures, render_compare
from quantbench.report.render import COMPARE_SECTIONS, SENSITIVITY_SECTIONS, render_markdown
from quantbench.report.sections.machines import entry_text
from quantbench.results import Accuracy, CellResult, Fidelity, LatencyPoint, Speedup
from test_report import RUN, make_results

# results.csv's header since it was first written: a column may be added, never moved.
CSV_HEADER = [
    "model", "family", "recipe", "status", "error", "weights", "size_bytes", "params",
    "int8_param_fraction", "cosine", "max_abs_err", "top1_agreement", "sweep",
    "batch_size", "input_size", "unit", "median", "mean", "std", "p90", "p99", "min", "n",
    "ci_low", "ci_high", "verdict", "speedup", "speedup_ci_low", "speedup_ci_high",
    "metric", "metric_value", "metric_relative", "meets_accuracy_bar",
    "run_id", "machine", "device", "recipe_settings",
    "contention", "run_wait_share", "cpu_share",
    "runtime_baseline", "runtime_speedup",
]  # fmt: skip
PLACES = {"compare", "machines", "latency", "memory"}


def _cell(recipe: str, median: float, size: int, acc: float | None = 0.9) -> CellResult:
    samples = [median * (1 + 0.001 * i) for i in range(8)]
    point = LatencyPoint(batch_size=2, input_size=32, sweep="input_size", unit="ms",
                         stats=summarize(samples), samples=samples,
                         speedup=Speedup(1.5, 1.4, 1.6, 8) if recipe != "fp32" else None)  # fmt: skip
    return CellResult(model="m", recipe=recipe, family="vision", size_bytes=size,
                      fidelity=Fidelity(0.99, 0.1), latency=[point],
                      accuracy=Accuracy(metric="top1", value=acc) if acc is not None else None)  # fmt: skip


def test_csv_header_is_the_table_and_unchanged() -> None:
    assert csv_columns() == CSV_HEADER
    rows = list(csv.reader(io.StringIO(csv_text([_cell("int8", 2.0, 100), CellResult("m", "x")]))))
    assert rows[0] == CSV_HEADER
    row = dict(zip(CSV_HEADER, rows[1], strict=True))
    assert (row["median"], row["speedup"], row["metric_value"]) == (
        str(_cell("int8", 2.0, 100).latency[0].median), "1.5", "0.9")  # fmt: skip
    assert rows[2][:4] == ["m", "", "x", "ok"] and set(rows[2][4:]) == {""}  # no latency: one row


def test_every_metric_is_well_formed() -> None:
    names = [m.name for m in METRICS]
    assert len(names) == len(set(names))
    for m in METRICS:
        assert m.level in ("cell", "point", "run") and m.better in (None, "lower", "higher"), m.name
        assert set(m.shown) <= PLACES and set(m.formats) <= PLACES, m.name
        assert m.get(CellResult("m", "r")) is None or m.level == "cell", m.name
    for place in PLACES:  # positions within a place are distinct: the order is meant
        positions = [m.shown[place] for m in shown(place)]
        assert len(positions) == len(set(positions)), place
    assert metric("size_bytes").better == "lower" and metric("speedup").better == "higher"


THROUGHPUT = Metric(
    "throughput", "Items/s", lambda c, p: None if p is None else p.batch_size / (p.median / 1e3),
    "items/s", "point", fmt=lambda v: "—" if v is None else f"{v:,.0f}", better="higher",
    shown={"compare": 4, "machines": 3, "latency": 5},
)  # fmt: skip


def test_a_metric_added_to_the_table_shows_everywhere(monkeypatch, tmp_path) -> None:
    """One entry in METRICS: a CSV column, a compare.md column, a part of each machine's
    cell and a column of report.md's latency table, with nothing else changed."""
    monkeypatch.setattr(metrics, "METRICS", (*METRICS, THROUGHPUT))
    assert csv_columns() == [*CSV_HEADER, "throughput"]
    header, row = list(csv.reader(io.StringIO(csv_text([_cell("fp32", 4.0, 400)]))))
    assert float(dict(zip(header, row, strict=True))["throughput"]) == pytest.approx(
        2 / (_cell("fp32", 4.0, 400).latency[0].median / 1e3)
    )

    runs = [({"id": "a"}, [_cell("fp32", 4.0, 400)]), ({"id": "b"}, [_cell("fp32", 2.0, 400)])]
    points = compare(runs)
    base, new = points[0].pair("throughput")
    assert new > base  # twice as fast, twice the items per second
    cmp = Comparison([m for m, _ in runs], points, gate_report(points))
    text = render_compare(tmp_path, cmp)
    assert "| Metric (base → new) | Items/s (base → new) |" in text
    assert f"| {THROUGHPUT.fmt(base)} → {THROUGHPUT.fmt(new)} |" in text

    table = build(runs).tables[0]
    assert entry_text(table.entries[("fp32", "b")]).endswith(f"· {THROUGHPUT.fmt(new)}")

    report = render_markdown(RUN, make_results())
    latency = report.split("## 4. Latency")[1].split("### Memory")[0]
    assert "| GFLOP/s | Items/s | n |" in latency


def test_compare_page_says_a_figure_it_could_not_draw(monkeypatch, tmp_path, capsys) -> None:
    runs = [({"id": "a"}, [_cell("fp32", 4.0, 400)]), ({"id": "b"}, [_cell("fp32", 4.4, 400)])]
    points = compare(runs)

    def broken(path: Path, cmp: Comparison) -> bool:
        raise ValueError("planted")

    first, second = figures.COMPARE_FIGURES
    monkeypatch.setattr(figures, "COMPARE_FIGURES", (dataclasses.replace(first, draw=broken),
                                                     second))  # fmt: skip
    text = render_compare(tmp_path, Comparison([m for m, _ in runs], points))
    assert "⚠️ Figure *latency change* (`compare_latency.png`) could not be drawn: " \
           "ValueError: planted" in text  # fmt: skip
    assert "![speedups](compare_speedup.png)" in text
    assert (tmp_path / "compare_speedup.png").is_file()
    assert not (tmp_path / "compare_latency.png").exists()
    assert (tmp_path / "compare.md").read_text() == text + "\n"
    assert "compare_latency.png could not be drawn" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("registry", "sections"),
    [
        (figures.COMPARE_FIGURES, COMPARE_SECTIONS),
        (figures.SENSITIVITY_FIGURES, SENSITIVITY_SECTIONS),
    ],
)
def test_page_registries_are_consistent(registry, sections) -> None:
    keys = [f.key for f in registry]
    assert len(set(keys)) == len(keys) and len({f.filename for f in registry}) == len(keys)
    assert all(f.slot in {s.key for s in sections} for f in registry)
