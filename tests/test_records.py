"""Typed, versioned records: what results.json and the store hold, read back safely."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from quantbench.errors import QuantbenchError
from quantbench.measure.latency import summarize
from quantbench.measure.significance import compare_samples
from quantbench.results import (
    SCHEMA_VERSION,
    Accuracy,
    CellResult,
    Family,
    LatencyPoint,
    RunMeta,
    Status,
    read_json,
    write_json,
)
from quantbench.runner.checks import build_spec


def _point() -> LatencyPoint:
    samples = [10.0, 10.5, 9.8, 10.1, 10.2]
    return LatencyPoint(1, 224, "input_size", "ms", summarize(samples), samples)


def test_latency_point_holds_stats_and_is_stored_flat() -> None:
    p = _point()
    d = p.to_dict()
    assert d["median"] == p.stats.median == p.median and d["n"] == 5 and "stats" not in d
    back = LatencyPoint.from_dict(d)
    assert back == p and back.verdict == p.stats.verdict


def test_cell_round_trip_and_unknown_keys_from_a_newer_file() -> None:
    cell = CellResult("m", "static-int8", status="ok", family="vision",
                      accuracy=Accuracy(metric="top1", value=0.9, passes=True),
                      latency=[_point()])  # fmt: skip
    assert cell.status is Status.OK and cell.family is Family.VISION
    d = cell.to_dict()
    assert d["status"] == "ok" and type(d["status"]) is str and json.dumps(d)
    d["a_field_from_the_future"] = {"x": 1}
    d["accuracy"]["new_metric"] = 0.5
    back = CellResult.from_dict(d)
    assert back.accuracy.value == 0.9 and back.latency[0].median == cell.latency[0].median
    assert back.to_dict() == cell.to_dict()


def test_unknown_status_stays_a_string() -> None:
    assert CellResult.from_dict({"model": "m", "recipe": "r", "status": "skipped"}).status == (
        "skipped"
    )


def test_statuses_print_as_their_values() -> None:
    assert f"{Status.TIMEOUT}" == str(Status.TIMEOUT) == "timeout"
    assert f"{Status.OK:5s}|" == "ok   |" and Status.OK == "ok"


def test_run_meta_keeps_keys_it_does_not_know() -> None:
    d = {"id": "r1", "status": "finished", "spec": {"models": []}, "future_key": "s9"}
    meta = RunMeta.from_dict(d)
    assert meta.id == "r1" and meta.extra == {"future_key": "s9"}
    out = meta.to_dict()
    assert out["future_key"] == "s9" and "resumed" not in out and "extra" not in out


def test_read_json_checks_the_schema(tmp_path) -> None:
    path = tmp_path / "results.json"
    write_json(path, RunMeta(id="r1"), [CellResult("m", "fp32")])
    run, cells = read_json(path)
    assert run["id"] == "r1" and cells[0].recipe == "fp32"
    doc = json.loads(path.read_text())
    doc["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(doc))
    with pytest.raises(QuantbenchError, match="upgrade quantbench"):
        read_json(path)
    path.write_text('{"something": "else"}')
    with pytest.raises(QuantbenchError, match="not a quantbench results.json"):
        read_json(path)
    path.write_text("{broken")
    with pytest.raises(QuantbenchError, match="is not a quantbench results.json"):
        read_json(path)


@pytest.mark.parametrize(
    "options, needle",
    [
        ({"nope-int8": {}}, "unknown recipe 'nope-int8'"),
        ({"static-int8": {"per_chanel": False}}, "Did you mean 'per_channel'"),
        ({"static-int8": {"per_channel": "yes"}}, "must be bool"),
        ({"static-int8": True}, "must be a mapping"),
    ],
)
def test_recipe_options_are_validated(options, needle) -> None:
    with pytest.raises(QuantbenchError, match=needle):
        build_spec(overrides={"models": ["resnet18"], "recipe_options": options})


def test_recipe_options_reach_the_recipe() -> None:
    from quantbench.recipes import get_recipe

    spec = build_spec(overrides={"models": ["resnet18"],
                                 "recipe_options": {"static-int8": {"per_channel": False}}})  # fmt: skip
    r = get_recipe("static-int8", spec.quant.recipe_options["static-int8"])
    assert r.config.per_channel is False
    assert r.config_record() == {"version": r.config_version, "per_channel": False}
    assert get_recipe("static-int8").config.per_channel is True  # the registry is untouched


def test_fallback_without_a_bar_is_refused() -> None:
    with pytest.raises(QuantbenchError, match="needs a bar to meet"):
        build_spec(overrides={"models": ["resnet18"], "fallback": True, "measure": ["size"]})
    build_spec(overrides={"models": ["resnet18"], "fallback": True})  # fidelity measured


def test_significance_on_raw_samples() -> None:
    base = [10.0 + 0.1 * (i % 5) for i in range(20)]
    assert compare_samples(base, [x * 1.2 for x in base]).significant
    same = compare_samples(base, list(reversed(base)))
    assert not same.significant and same.verdict == "not significant"
    assert compare_samples(base[:3], base[:3]).verdict == "too few samples"


def test_python_dash_m_quantbench() -> None:
    out = subprocess.run([sys.executable, "-m", "quantbench", "--help"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0 and "quantbench" in out.stdout
