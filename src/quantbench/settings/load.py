"""Settings from where users write them: the defaults, a preset, a YAML file, flags or
Python overrides, later winning (:func:`load_spec`); a stored run's (``RunSpec.from_dict``).

Only the settings' own checks run here (each value, the bounds between them, unknown
keys); what needs the world (the models, recipes, files and engines they name) is checked
with the run: :func:`quantbench.runner.checks.build_spec` is this plus those checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantbench.errors import QuantbenchError, clip, shown, unknown_name
from quantbench.settings.model_ref import model_entry
from quantbench.settings.presets import PRESETS
from quantbench.settings.runspec import (
    FIELDS,
    SECTIONS,
    RunSpec,
    expand_batch_sizes,
    flatten,
)
from quantbench.settings.sweep import BATCH_SIZES_ALIAS
from quantbench.settings.values import parse_name_list

# What a file or an override may name at its top: a setting, batch_sizes, or a section.
KEYS = sorted([*FIELDS, BATCH_SIZES_ALIAS])


def check_keys(data: dict[str, Any], where: str = "") -> None:
    """Refuse an unknown setting, naming the closest valid one."""
    for key in data:
        if key not in FIELDS and key != BATCH_SIZES_ALIAS and key not in SECTIONS:
            e = unknown_name("setting", str(key), KEYS)
            raise QuantbenchError(f"{where}{e}") if where else e


def load_yaml(path: str | Path) -> dict[str, Any]:
    """An experiment file's settings, flat (unknown keys refused; values checked later).
    A file that is empty, only comments, not a mapping, not UTF-8, too big, or whose
    aliases expand beyond bounds (:mod:`quantbench.userdata`) is an input error. Settings
    may be written flat or under their section (``timing: {min_runs: 3}``)."""
    from quantbench.userdata import load_yaml_text, read_config_text

    name = f"config '{clip(str(path))}'"
    data = load_yaml_text(read_config_text(path), name)
    if data is None or data == {}:
        raise QuantbenchError(
            f"{name} holds no settings (it is empty, only comments, or {{}}); give at least one, "
            "e.g. 'preset: quick' (without --config, quantbench runs the full lab)"
        )
    if not isinstance(data, dict):
        raise QuantbenchError(
            f"{name} must be a mapping of settings (key: value lines), got a {type(data).__name__}"
        )
    if True in data and "on" not in data:  # YAML 1.1 reads the key `on:` as true
        data["on"] = data.pop(True)
    check_keys(data, f"{name}: ")
    try:
        return flatten(data)
    except QuantbenchError as e:
        raise QuantbenchError(f"{name}: {e}") from None


def inline_models(text: str) -> list[Any]:
    """``--models`` given as inline YAML: one entry (``'{name: m.py:Net, options: {...}}'``)
    or a list of names and entries, each then read as a file's entry is."""
    from quantbench.userdata import load_yaml_text

    value = load_yaml_text(text, f"models '{clip(text)}'", "is not valid inline YAML")
    value = [value] if isinstance(value, dict) else value
    if not isinstance(value, list):
        raise QuantbenchError(f"models must be names or entries, got {shown(value)}")
    return value


def load_spec(
    preset: str | None = None,
    config: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunSpec:
    """Settings from, later winning: the defaults, the preset (``preset``, else the
    overrides' or the file's ``preset``), the YAML ``config``, the ``overrides`` (CLI
    flags or Python; None values are unset). Unknown keys are refused; each value and
    the bounds between them are checked."""
    from quantbench.userdata import check_bounded

    given = dict(overrides or {})
    check_bounded(given, "a setting given")  # Python values may nest or recurse too
    check_keys(given)
    given = {k: v for k, v in flatten(given).items() if v is not None}
    file = load_yaml(config) if config is not None else {}
    name = preset or given.pop("preset", None) or file.get("preset") or "lab"
    if not isinstance(name, str) or name not in PRESETS:
        raise unknown_name("preset", name if isinstance(name, str) else shown(name), PRESETS)
    merged: dict[str, Any] = {}
    for layer in (PRESETS[name], file, given):
        merged.update(expand_batch_sizes(layer))
    merged["preset"] = name
    if "models" in merged:
        models = merged["models"]
        if isinstance(models, str) and models.lstrip()[:1] in ("[", "{"):
            models = inline_models(models)  # entries typed on the command line
        elif isinstance(models, str):
            models = parse_name_list(models, "models")
        if isinstance(models, (list, tuple)):
            if not models:
                raise QuantbenchError("models must not be empty")
            merged["models"] = [model_entry(m) for m in models]
    return RunSpec(**merged)
