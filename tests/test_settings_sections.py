"""The settings inside: sections, one module each, pure; outside: flat keys everywhere,
the run's flags generated from the fields (groups = sections, help = descriptions)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from quantbench.cli import build_parser, main, run_overrides
from quantbench.errors import QuantbenchError
from quantbench.settings import FIELDS, SECTION_OF, SECTIONS, RunSpec, load_spec


def _run_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["run"]


def test_the_settings_import_no_model_recipe_runner_or_torch():
    code = (
        "import sys, quantbench.settings\n"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'torch' or m.startswith(("
        "'quantbench.runner', 'quantbench.recipes', 'quantbench.models', "
        "'quantbench.datasets', 'quantbench.api'))]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_flat_key_has_one_section_and_keeps_its_name():
    assert set(SECTION_OF) == set(FIELDS) - {"preset"}
    assert not set(SECTIONS) & set(FIELDS)  # a section's name is never a setting's
    spec = RunSpec(min_runs=3, recipes="fp32", out="o", on="gpu", executor="ray")
    assert spec.timing.min_runs == 3 and spec.quant.recipes == ["fp32"]
    assert (spec.output.out, spec.launch.on) == ("o", ["gpu"])
    assert list(spec.to_dict()) == [*SECTION_OF, "preset"]  # flat, section by section


def test_settings_are_read_through_their_sections_and_copies_are_their_own():
    spec = RunSpec(min_runs=3)
    with pytest.raises(AttributeError):
        spec.min_runs  # noqa: B018  (no flat read-through: one way to read a setting)
    with pytest.raises((AttributeError, QuantbenchError)):
        spec.min_runs = 4
    spec.timing.min_runs = 4
    with pytest.raises(QuantbenchError, match="^setting 'min_runs' must be an integer > 0"):
        spec.timing.min_runs = 0
    copy = spec.replace(min_runs=7, out="x")
    assert (copy.timing.min_runs, copy.output.out, spec.timing.min_runs) == (7, "x", 4)
    copy.timing.warmup = 1  # a copy's sections are its own
    assert spec.timing.warmup == 2
    assert spec.model_copy(update={"recipes": ["fp32"]}).quant.recipes == ["fp32"]
    with pytest.raises(QuantbenchError, match="unknown setting 'min_rns'. Did you mean"):
        spec.replace(min_rns=1)


def test_sections_may_be_given_nested(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("models: [resnet18]\ntiming: {min_runs: 3, warmup: 1}\nlaunch: {on: [gpu]}\n")
    spec = load_spec(config=cfg, overrides={"warmup": 0})
    assert (spec.timing.min_runs, spec.timing.warmup) == (3, 0)  # a flag beats the file
    assert spec.launch.on == ["gpu"]  # YAML 1.1's `on:` is the key, there too
    assert RunSpec(timing={"min_runs": 5}, warmup=1).timing.min_runs == 5
    cfg.write_text("timing: {min_rns: 3}\n")
    with pytest.raises(QuantbenchError, match="section 'timing': unknown setting 'min_rns'"):
        load_spec(config=cfg)
    cfg.write_text("min_runs: 2\ntiming: {min_runs: 3}\n")
    with pytest.raises(QuantbenchError, match="'min_runs' is given twice: flat and under"):
        load_spec(config=cfg)
    with pytest.raises(QuantbenchError, match="section 'quant' must be a mapping"):
        RunSpec(quant=[1])


def test_errors_inside_sections_name_the_flat_key():
    with pytest.raises(QuantbenchError, match="^setting 'qat_lr' must be a finite number > 0"):
        RunSpec(qat_lr=0)
    with pytest.raises(QuantbenchError, match=r"^setting 'max_accuracy_drop' must be a fract"):
        RunSpec(judge={"max_accuracy_drop": 1.5})
    with pytest.raises(QuantbenchError, match="^model 'a': setting 'seq_lens' must be positive"):
        RunSpec(models=[{"name": "a", "seq_lens": "8,x"}])
    with pytest.raises(QuantbenchError, match="dataset must be a path or a mapping"):
        RunSpec(dataset=5)


def test_run_flags_are_generated_from_the_fields(capsys):
    p = _run_parser()
    groups = {g.title: [a.dest for a in g._group_actions] for g in p._action_groups}
    for name, section in SECTIONS.items():
        keys = [k for k in section.model_fields if k != "eval_fn"]
        assert [d for d in groups[section.title] if d != "batch_sizes"] == keys, name
    helps = {a.dest: a.help for a in p._actions}
    for key, field in FIELDS.items():
        if key != "eval_fn":
            assert helps[key].startswith(field.description.replace("%", "%%")), key
    assert (
        "(default: 10)" in helps["min_runs"] and "implies --fallback" in helps["max_accuracy_drop"]
    )
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "(MLPerf: 99%)" in capsys.readouterr().out  # a % in a description prints


def test_a_flag_implies_what_its_field_says():
    p = build_parser()
    assert run_overrides(p.parse_args(["run", "--max-accuracy-drop", "0.02"]))["fallback"]
    given = run_overrides(p.parse_args(["run", "--max-accuracy-drop", "0.02", "--no-fallback"]))
    assert given["fallback"] is False


def test_version_is_a_module_of_its_own():
    import quantbench
    from quantbench.version import __version__

    assert quantbench.__version__ == __version__
    code = "import sys, quantbench.cli; print('quantbench.api' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # the CLI reads it without loading the API


def test_an_executor_added_in_one_file_is_a_valid_setting(tmp_path, monkeypatch):
    """The settings name no executors: the run's checks ask the registry, so a module
    added to quantbench.runner.executors is a valid ``executor`` with no other change."""
    import quantbench.runner.executors as executors
    from quantbench.runner.checks import build_spec

    more = tmp_path / "more"
    more.mkdir()
    (more / "mine.py").write_text("def make(spec):\n    raise NotImplementedError\n")
    monkeypatch.setattr(executors, "__path__", [*executors.__path__, str(more)])
    spec = build_spec(overrides={"models": "resnet18", "measure": "size", "executor": "mine"})
    assert spec.launch.executor == "mine"
    with pytest.raises(QuantbenchError, match="unknown executor 'mien'. Did you mean 'mine'"):
        build_spec(overrides={"models": "resnet18", "measure": "size", "executor": "mien"})
