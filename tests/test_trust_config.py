"""Bad settings are input errors (exit 2, one line), found before anything runs, and
nothing a user writes can hang quantbench: YAML alias bombs under every key, deep or
recursive structures, huge values, files that are not UTF-8 text, bounds that disagree."""

from __future__ import annotations

import os
import time

import pytest

from quantbench.cli import main
from quantbench.errors import MAX_MESSAGE, QuantbenchError, shown
from quantbench.runner.checks import build_spec
from quantbench.settings import BATCH_SIZES_ALIAS, FIELDS, RunSpec

# What a refused input may print: one line, this long at most.
MAX_LINE = MAX_MESSAGE + 100


def _refused(capsys, argv: list[str], says: str, limit_s: float = 1.0) -> str:
    t = time.perf_counter()
    rc = main(argv)
    took = time.perf_counter() - t
    err = capsys.readouterr().err.strip()
    assert rc == 2, (argv, err)
    assert says in err, err
    assert "\n" not in err and len(err) <= MAX_LINE, err[:300]
    assert took < limit_s, f"{argv[:3]}: {took:.2f} s"
    return err


def laughs(levels: int = 9) -> str:
    """A flow-style 'billion laughs': 9**levels strings from about 40 * levels bytes."""
    s = "[&a0 [lol,lol,lol,lol,lol,lol,lol,lol,lol]"
    for i in range(1, levels):
        s += f", &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]"
    return s + "]"


TOP_KEYS = [*FIELDS, BATCH_SIZES_ALIAS]
NESTED = {
    "model entry": "models: [{{name: resnet18, options: {{x: {b}}}}}]",
    "model name": "models: [{{name: {b}}}]",
    "model dataset": "models: [{{name: resnet18, dataset: {{path: {b}}}}}]",
    "model sweep": "models: [{{name: resnet18, image_sizes: {b}}}]",
    "model source": "models: [{{name: m, source: {b}}}]",
    "recipe option": "recipe_options: {{static-int8: {{per_channel: {b}}}}}",
    "recipe name": "recipe_options: {{{b}: {{x: 1}}}}",  # a list as a key: not YAML
    "dataset path": "dataset: {{path: {b}}}",
}


@pytest.mark.parametrize("key", TOP_KEYS)
def test_alias_bomb_under_every_key_is_refused_fast(key, tmp_path, capsys):
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(f"{key}: {laughs()}\n")
    _refused(capsys, ["run", "--config", str(cfg)], "a 'billion laughs'?")


@pytest.mark.parametrize("where", NESTED)
def test_alias_bomb_nested_is_refused_fast(where, tmp_path, capsys):
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(NESTED[where].format(b=laughs()) + "\n")
    says = "found unhashable key" if where == "recipe name" else "a 'billion laughs'?"
    _refused(capsys, ["run", "--config", str(cfg)], says)


def test_inline_flags_and_python_settings_are_bounded_too(capsys):
    bomb = laughs()
    _refused(capsys, ["run", "--recipe-options", f"{{static-int8: {{x: {bomb}}}}}"], "laughs")
    _refused(capsys, ["run", "--dataset", f"{{path: {bomb}}}"], "laughs")
    _refused(capsys, ["run", "--recipe-options", "{a: " * 40 + "}" * 40], "more than 32 levels")
    looped: list = []
    looped.append(looped)
    with pytest.raises(QuantbenchError, match="recursive structure"):
        build_spec(overrides={"recipes": looped})
    deep: dict = {}
    for _ in range(100):
        deep = {"x": deep}
    with pytest.raises(QuantbenchError, match="nested more than 32 levels"):
        build_spec(overrides={"recipe_options": {"static-int8": deep}})


@pytest.mark.parametrize("key", TOP_KEYS)
def test_big_values_are_checked_fast_and_quoted_short(key, tmp_path):
    """Half a million values (a bomb the size bound lets through) or a 200 KB string
    under any key: the settings are valid or refused in one short line, fast; never a
    traceback, never the value printed whole."""
    build_spec(overrides={"models": "resnet18"})  # imports done: only the value is timed
    cfg = tmp_path / "big.yaml"
    for value in (laughs(6), "x" * 200_000):
        prefix = "" if key == "models" else "models: [resnet18]\n"
        cfg.write_text(f"{prefix}{key}: {value}\n")
        t = time.perf_counter()
        try:
            build_spec(config=cfg)  # every check a run makes before it measures
        except QuantbenchError as e:
            assert "\n" not in str(e) and len(str(e)) <= MAX_LINE, (key, str(e)[:300])
        assert time.perf_counter() - t < 2.0, key


@pytest.mark.parametrize(
    "text, says",
    [
        ("", "holds no settings (it is empty, only comments, or {})"),
        ("# a comment\n\n# another\n", "holds no settings"),
        ("{}\n", "holds no settings"),
        ("- resnet18\n- bert\n", "must be a mapping of settings (key: value lines), got a list"),
        ("just text\n", "must be a mapping of settings (key: value lines), got a str"),
        ("models: [resnet18\n", "is not valid YAML"),
        ("a: &a [1, *a]\nrecipes: *a\n", "holds a recursive structure"),
        ("x: " + "[" * 200 + "]" * 200 + "\n", "nested more than 32 levels deep"),
        ("seed: " + "9" * 5000 + "\n", "holds a value YAML cannot read"),
        ("models: [" + ", ".join(["resnet18"] * 150_000) + "]\n", "is larger than 1024 KiB"),
    ],
)
def test_config_files_that_say_nothing_or_too_much(text, says, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    _refused(capsys, ["run", "--config", str(cfg)], says)


def test_config_files_that_are_not_yaml_text(tmp_path, capsys):
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"preset: quick\nmodels: [r\xe9snet18]\n")
    _refused(capsys, ["run", "--config", str(latin1)], "is not UTF-8 text (byte 0xe9 on line 2)")
    _refused(capsys, ["run", "--config", str(tmp_path)], "is a directory, not a YAML file")
    _refused(capsys, ["run", "--config", "/dev/zero"], "is not a regular file")
    _refused(capsys, ["run", "--config", str(tmp_path / "nope.yaml")], "No such file")
    _refused(capsys, ["run", "--config", str(latin1 / "x.yaml")], "Not a directory")
    _refused(capsys, ["quantize", "resnet18", "--recipe", "dynamic-int8", "-o",
                      str(tmp_path / "m.pt"), "--config", str(latin1)], "is not UTF-8")  # fmt: skip
    bom = tmp_path / "bom.yaml"  # a byte-order mark (Windows editors) is still UTF-8
    bom.write_bytes(b"\xef\xbb\xbfpreset: quick\nmin_time_s: -1\n")
    _refused(capsys, ["run", "--config", str(bom)], "setting 'min_time_s' must be", 10)
    if os.geteuid() != 0:  # root reads any file
        locked = tmp_path / "locked.yaml"
        locked.write_text("preset: quick\n")
        locked.chmod(0)
        _refused(capsys, ["run", "--config", str(locked)], "Permission denied")


BOUNDS = [
    ({"min_time_s": 5.0, "max_time_s": 1.0},
     "min_time_s (5 s) must not exceed max_time_s (1 s), the cap on timing a point"),
    ({"warmup": 30}, "warmup (30) must not exceed max_warmup (20), the cap on warm-up passes"),
    ({"warmup": 3, "max_warmup": 2}, "warmup (3) must not exceed max_warmup (2)"),
    ({"timeout_s": 0.5, "min_time_s": 1.0}, "timeout_s (0.5 s per model) must be longer than"),
    ({"min_time_s": float("inf")}, "setting 'min_time_s' must be a finite number >= 0, got inf"),
    ({"max_time_s": float("inf")}, "setting 'max_time_s' must be a finite number > 0, got inf"),
    ({"timeout_s": float("inf")}, "setting 'timeout_s' must be a finite number > 0, got inf"),
    ({"qat_lr": float("nan")}, "setting 'qat_lr' must be a finite number > 0, got nan"),
    ({"min_cosine": float("nan")}, "setting 'min_cosine' must be a finite number between 0 and 1"),
    ({"min_top1": 1.5}, "setting 'min_top1' must be a finite number between 0 and 1, got 1.5"),
    ({"max_accuracy_drop": 1.0}, "setting 'max_accuracy_drop' must be a fraction in [0, 1)"),
    ({"limit": 5}, "limit (5 examples) selects evaluation data, and there is none"),
]  # fmt: skip


def _flags(settings: dict) -> list[str]:
    out = []
    for k, v in settings.items():
        out += [f"--{k.replace('_', '-')}", str(v)]
    return out


@pytest.mark.parametrize("settings, says", BOUNDS)
def test_bounds_agree_from_flags_files_and_python(settings, says, tmp_path, capsys):
    """The same check, the same line, wherever the settings come from."""
    base = ["run", "--models", "resnet18"]
    _refused(capsys, [*base, *_flags(settings)], says, limit_s=10)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("".join(f"{k}: {v if v == v else '.nan'}\n".replace("inf", ".inf")
                           for k, v in settings.items()))  # fmt: skip
    _refused(capsys, [*base, "--config", str(cfg)], says, limit_s=10)
    with pytest.raises(QuantbenchError) as e:
        build_spec(overrides={"models": "resnet18", **settings})
    assert says in str(e.value)


def test_bounds_hold_on_assignment_too():
    spec = RunSpec(min_time_s=1.0, max_time_s=2.0)
    with pytest.raises(QuantbenchError, match="must not exceed max_time_s"):
        spec.timing.min_time_s = 3.0
    spec.timing.max_time_s = 5.0  # raising the cap first is fine
    spec.timing.min_time_s = 3.0
    with pytest.raises(QuantbenchError, match="must not exceed max_warmup"):
        RunSpec(warmup=21)
    assert RunSpec(warmup=21, max_warmup=21).timing.warmup == 21


def test_values_quoted_in_errors_are_bounded():
    assert len(shown("x" * 1_000_000)) < 300
    loop: list = []
    loop.append(loop)
    assert shown(loop) == "[[[[...]]]]"  # bounded depth, no recursion
    assert len(str(QuantbenchError("a" * 10_000 + " Valid: x, y"))) <= MAX_MESSAGE + 40
    assert str(QuantbenchError("a" * 10_000 + " Valid: x, y")).endswith(" Valid: x, y")
    with pytest.raises(QuantbenchError) as e:
        build_spec(overrides={"models": ["x" * 100_000]})
    assert len(str(e.value)) < 600 and "(100000 characters)" in str(e.value)


def test_settings_files_still_load(tmp_path):
    """Anchors that share a value between models stay fine (well inside the bound)."""
    cfg = tmp_path / "ok.yaml"
    cfg.write_text(
        "models:\n"
        "  - {name: a, source: tv:resnet18, options: &o {num_classes: 10}}\n"
        "  - {name: b, source: tv:resnet18, options: *o}\n"
        "measure: [size]\n"
    )
    spec = build_spec(config=cfg)
    assert [m.options for m in spec.target.models] == [{"num_classes": 10}] * 2


def test_runs_stored_before_the_bounds_resume_as_they_ran():
    """A stored spec that the new checks would refuse resumes with what its timing loop
    did (a minimum above its cap was the cap), so --resume of an old run still works."""
    from quantbench.runner.checks import spec_from_dict

    d = build_spec(overrides={"models": "resnet18", "measure": ["size"]}).to_dict()
    d.update(warmup=25, max_warmup=20, min_time_s=40.0, max_time_s=30.0)
    spec = spec_from_dict(d)
    assert (
        spec.timing.warmup,
        spec.timing.max_warmup,
        spec.timing.min_time_s,
        spec.timing.max_time_s,
    ) == (25, 25, 30, 30)
