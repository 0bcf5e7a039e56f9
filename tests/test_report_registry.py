"""The report's registries (sections, figures), its one reference shape, and figures that
fail to draw (synthetic results, no torch)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from quantbench.best import recommend
from quantbench.report import figures, render_report
from quantbench.report.render import SECTIONS, render_markdown
from quantbench.report.sections.method import GENERIC_DESCRIPTION, recipe_text
from test_report import RUN, _sweep, make_results
from test_report_limits import LIMITS_RUN, with_limits

ALL_FIGURES = {f.key: Path("plots") / f.filename for f in figures.FIGURES}


def _headings(text: str) -> list[str]:
    return [line for line in text.splitlines()
            if line.startswith(("## ", "### Memory", "### How close"))]  # fmt: skip


@pytest.mark.parametrize("new_fields", [True, False])
def test_section_registry_order_is_the_report_order(new_fields: bool) -> None:
    drawn = {k: v for k, v in ALL_FIGURES.items() if new_fields or k != "gflops"}
    if new_fields:  # what newer runs record: the ceilings, each cell's work and profile
        text = render_markdown(LIMITS_RUN, with_limits(make_results()), drawn)
    else:
        text = render_markdown(RUN, make_results(new_fields=False), drawn)
    titles = [s.title for s in SECTIONS if s.title]
    assert text.startswith("# quantbench report: ")
    found = _headings(text)
    # every section heading in the report is a registry title, in registry order
    assert found == [t for t in titles if t in found]
    expected = [t for t in titles if "## 6." not in t and not t.startswith("### ")]
    if new_fields:  # accuracy on data, memory and times are recorded
        expected = [t for t in titles if t != "## 6. Accuracy-aware fallback"]
    assert found == expected


def test_section_registry_without_data_to_score() -> None:
    """No evaluation data: section 6 is about fallback alone (the other registry entry)."""
    results = make_results()
    for c in results:
        c.accuracy = None
    text = render_markdown(RUN, results, ALL_FIGURES)
    assert "## 6. Accuracy-aware fallback" in _headings(text)
    assert "## 6. Accuracy on real data" not in text


def test_figure_registry_is_consistent() -> None:
    keys = [f.key for f in figures.FIGURES]
    assert len(set(keys)) == len(keys)
    assert len({f.filename for f in figures.FIGURES}) == len(keys)
    sections = {s.key for s in SECTIONS}
    assert all(f.slot in sections for f in figures.FIGURES)
    # each written figure shows once, with its caption, in the report
    text = render_markdown(LIMITS_RUN, with_limits(make_results()), ALL_FIGURES)
    for f in figures.FIGURES:
        assert text.count(f"](plots/{f.filename})") == 1, f.key
        assert f"![{f.caption}](plots/{f.filename})" in text


def test_recommendation_and_speedup_table_quote_one_shape() -> None:
    """A spec whose reference image size (160) is measured but is not the batch sweep's
    size (224): the recommendation and every table quote 1 × 160."""
    run = {**RUN, "spec": {**RUN["spec"], "ref_image_size": 160}}
    results = make_results(text=False)
    speedups = {"fp32": None, "dynamic-int8": 0.8, "static-int8": 2.6}
    for c in results:
        if c.latency:
            sp = 4.5 if (c.model, c.recipe) == ("resnet18", "static-int8") else speedups[c.recipe]
            c.latency = _sweep(30.0, [64, 128, 160, 224], [1, 2, 4, 8], 224, sp, 1.0)
    assert {r.reference for r in recommend(results, {"vision": 160}).values()} == {(1, 160)}
    text = render_markdown(run, results)
    rec = text.split("## Recommendation")[1].split("## 1.")[0]
    rec_rows = [line for line in rec.splitlines() if line.startswith(("| resnet18", "| mobile"))]
    assert rec_rows and all(row.split(" | ")[1] == "1 × 160" for row in rec_rows)
    disc = text.split("**Speedup vs fp32** at each model's reference shape:")[1]
    table = disc.split("\n\n")[1].splitlines()[2:]
    assert len(table) == 3 and all(row.split(" | ")[2] == "1 × 160 px" for row in table)
    assert "224 px" not in text.split("**Achieved compute")[1].split("**Fidelity**")[0]


def test_failed_figure_is_warned_and_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(path: Path, results: list, ctx: object) -> bool:
        raise ValueError("no speedup today\nsecond line")

    patched = tuple(
        dataclasses.replace(f, draw=boom) if f.key == "speedup" else f for f in figures.FIGURES
    )
    monkeypatch.setattr(figures, "FIGURES", patched)
    path = render_report(tmp_path, RUN, make_results(text=False))
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "quantbench: warning: figure speedup.png could not be drawn: ValueError: no speedup today"
    ]
    text = path.read_text(encoding="utf-8")
    latency = text.split("## 4. Latency")[1].split("## 5. Discussion")[0]
    assert (
        "⚠️ Figure *Paired speedup vs fp32 at the reference shape* (`speedup.png`) could not "
        "be drawn: ValueError: no speedup today" in latency
    )
    assert "](plots/speedup.png)" not in text and not (tmp_path / "plots/speedup.png").exists()
    # the rest of the report is still written
    assert "](plots/size.png)" in text and (tmp_path / "plots/size.png").is_file()
    assert "## Environment" in text and (tmp_path / "report.html").is_file()


def test_failed_figure_of_an_absent_section_is_still_said() -> None:
    text = render_markdown(RUN, make_results(new_fields=False), failed={"accuracy": "OSError"})
    assert "## 6." not in text
    assert text.rstrip().endswith(
        "⚠️ Figure *Accuracy vs latency, with the Pareto front* (`accuracy_vs_latency.png`) "
        "could not be drawn: OSError"
    )


def test_recipe_text_from_the_registry_and_variants() -> None:
    assert recipe_text("dynamic-int8+compile").endswith(
        "; run through torch.compile (compile time reported apart from latency)."
    )
    assert "(the layers are listed in section 6)." in recipe_text("static-int8+fallback")
    # a stored name with an unknown transform reads as its base recipe alone
    weird = recipe_text("ort-static-int8+weird")
    assert weird == recipe_text("ort-static-int8") and "fallback" not in weird
    assert recipe_text("no-such-recipe") == GENERIC_DESCRIPTION
    assert "{calib}" in recipe_text("static-int8")
