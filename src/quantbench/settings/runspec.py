"""Every setting of a run: :class:`RunSpec`, nested sections outside in, flat outside.

Inside, code reads a setting through its section (``spec.timing.min_runs``); outside,
every setting has one flat key, the same everywhere: a YAML key, a Python keyword, a CLI
flag (``--`` + the key with ``_`` as ``-``), a key of ``quantbench schema`` and of the
``spec`` a run stores. :data:`SECTIONS` lists the sections; adding a setting is a field in
one of their modules.

Example::

    >>> spec = RunSpec(min_runs=3, models="resnet18")
    >>> spec.timing.min_runs, spec.to_dict()["min_runs"], SECTION_OF["min_runs"]
    (3, 3, 'timing')
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, create_model, field_validator, model_validator
from pydantic.fields import FieldInfo

from quantbench.errors import QuantbenchError, unknown_name
from quantbench.redact import strip_url
from quantbench.settings.base import Settings
from quantbench.settings.data import Data
from quantbench.settings.judge import Judge
from quantbench.settings.launch import Launch
from quantbench.settings.model_ref import REF_FIELDS
from quantbench.settings.output import Output
from quantbench.settings.presets import PRESETS
from quantbench.settings.quant import Quant
from quantbench.settings.sweep import BATCH_SIZES_ALIAS, BATCH_SIZES_HELP, Sweep
from quantbench.settings.target import Target
from quantbench.settings.timing import Timing, as_they_ran
from quantbench.settings.values import Text

# The sections, in the order their flags and stored keys come.
SECTIONS: dict[str, type[Settings]] = {
    "target": Target,
    "quant": Quant,
    "sweep": Sweep,
    "judge": Judge,
    "data": Data,
    "timing": Timing,
    "output": Output,
    "launch": Launch,
}


def _section_of() -> dict[str, str]:
    """Flat key -> its section; a key in two sections, or named as a section, is a bug."""
    out: dict[str, str] = {}
    for name, section in SECTIONS.items():
        for key in section.model_fields:
            if key in out or key in SECTIONS:
                raise TypeError(f"setting '{key}' is declared twice ({out.get(key, key)}, {name})")
            out[key] = name
    return out


SECTION_OF = _section_of()


def expand_batch_sizes(data: dict[str, Any]) -> dict[str, Any]:
    """``batch_sizes`` set into both families' batch sweeps (a family's own key in the same
    mapping wins)."""
    if BATCH_SIZES_ALIAS in data:
        data = dict(data)
        bs = data.pop(BATCH_SIZES_ALIAS)
        data.setdefault("vision_batch_sizes", bs)
        data.setdefault("text_batch_sizes", bs)
    return data


def flatten(data: dict[str, Any]) -> dict[str, Any]:
    """Settings given flat, or some under their section (``timing: {min_runs: 3}``, a
    :class:`Timing`), as flat keys. A key given both ways is refused."""
    out = {k: v for k, v in data.items() if k not in SECTIONS}
    for name in SECTIONS:
        given = data.get(name)
        if given is None:
            continue
        if isinstance(given, Settings):
            given = {k: getattr(given, k) for k in given.model_fields_set}
        if not isinstance(given, dict):
            raise QuantbenchError(
                f"section '{name}' must be a mapping of its settings, got {type(given).__name__}"
            )
        if name == "launch" and True in given and "on" not in given:
            given = {("on" if k is True else k): v for k, v in given.items()}  # YAML 1.1 `on:`
        for key, value in given.items():
            if key == BATCH_SIZES_ALIAS and name == "sweep":
                pass
            elif SECTION_OF.get(key) != name:
                valid = [k for k, s in SECTION_OF.items() if s == name]
                raise QuantbenchError(f"section '{name}': {unknown_name('setting', key, valid)}")
            if key in out:
                raise QuantbenchError(f"setting '{key}' is given twice: flat and under '{name}'")
            out[key] = value
    return out


class RunSpec(Settings):
    """Every setting of a run, in sections. Built from flat keys (and sections);
    ``to_dict`` is flat; ``quantbench schema`` (:func:`json_schema`) lists the keys."""

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, title="quantbench run settings"
    )

    target: Target = Field(default_factory=Target, description=Target.__doc__)
    quant: Quant = Field(default_factory=Quant, description=Quant.__doc__)
    sweep: Sweep = Field(default_factory=Sweep, description=Sweep.__doc__)
    judge: Judge = Field(default_factory=Judge, description=Judge.__doc__)
    data: Data = Field(default_factory=Data, description=Data.__doc__)
    timing: Timing = Field(default_factory=Timing, description=Timing.__doc__)
    output: Output = Field(default_factory=Output, description=Output.__doc__)
    launch: Launch = Field(default_factory=Launch, description=Launch.__doc__)
    preset: Text = Field(
        "lab", description="the preset the file's and the flags' settings apply over: "
        + ", ".join(PRESETS),
    )  # fmt: skip

    @model_validator(mode="before")
    @classmethod
    def _nest(cls, data: Any) -> Any:
        """Flat keys into their sections (what pydantic validates)."""
        if not isinstance(data, dict):
            return data
        try:
            flat = expand_batch_sizes(flatten(data))
        except QuantbenchError as e:
            raise ValueError(str(e)) from None
        nested: dict[str, Any] = {}
        for key, value in flat.items():
            section = SECTION_OF.get(key)
            if section is None:
                nested[key] = value  # preset, or unknown: pydantic says which
            else:
                nested.setdefault(section, {})[key] = value
        return nested

    @classmethod
    def valid_keys(cls) -> list[str]:
        return [*FIELDS, BATCH_SIZES_ALIAS]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        """The RunSpec a stored run was made with (:meth:`to_dict`). Keys an older or newer
        quantbench stored that this one lacks are dropped; bounds it did not check yet are
        read as its timing loop used them."""
        known = {k: v for k, v in d.items() if k in FIELDS}
        known["models"] = [
            {k: v for k, v in m.items() if k in REF_FIELDS} if isinstance(m, dict) else m
            for m in known.get("models") or []
        ]
        as_they_ran(known)
        return cls(**known)

    def flat(self) -> dict[str, Any]:
        """Every setting by its flat key (the values themselves: models as ModelRefs)."""
        out: dict[str, Any] = {}
        for name in SECTIONS:
            out.update(getattr(self, name).__dict__)
        out["preset"] = self.preset
        return out

    def to_dict(self) -> dict[str, Any]:
        """What a run stores, flat: addresses without their passwords
        (``quantbench.redact``); a resumed run is given its store again, never reads it
        from here."""
        d: dict[str, Any] = {}
        for name in SECTIONS:
            d.update(getattr(self, name).model_dump())
        d["preset"] = self.preset
        d["store"], d["ray_address"] = strip_url(d["store"]), strip_url(d["ray_address"])
        return d

    def replace(self, **changes: Any) -> RunSpec:
        """A copy with ``changes`` (flat keys), each checked as on assignment."""
        new = self.model_copy()
        for key, value in changes.items():
            section = SECTION_OF.get(key)
            if section is None and key != "preset":
                raise unknown_name("setting", key, FIELDS)
            setattr(getattr(new, section) if section else new, key, value)
        return new

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> RunSpec:
        """A copy whose sections are its own (changing one changes no other spec);
        ``update`` may name flat keys."""
        copied = super().model_copy(deep=deep)
        if not deep:
            for name in SECTIONS:
                copied.__dict__[name] = getattr(self, name).model_copy()
        return copied.replace(**update) if update else copied

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value not in PRESETS:
            raise ValueError(str(unknown_name("preset", value, PRESETS)))
        return value


# Every flat key and its field: the sections' fields, then the run's own (preset).
FIELDS: dict[str, FieldInfo] = {
    **{k: SECTIONS[s].model_fields[k] for k, s in SECTION_OF.items()},
    "preset": RunSpec.model_fields["preset"],
}


def _schema_extra(schema: dict[str, Any]) -> None:
    """The JSON Schema also lists ``batch_sizes`` (sets both families' batch sweeps)."""
    schema["properties"][BATCH_SIZES_ALIAS] = {
        "title": "Batch Sizes",
        "description": BATCH_SIZES_HELP,
        "type": "array",
        "items": {"type": "integer", "exclusiveMinimum": 0},
    }


_SCHEMA_DOC = """Every setting of a run. The same names are YAML keys, Python overrides and CLI
flags (``--`` + the key with ``_`` as ``-``); ``quantbench schema`` prints them."""


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the settings as written: flat keys (what ``quantbench schema``
    prints, what a YAML file and the Python API take)."""
    flat = create_model(  # type: ignore[call-overload]
        "RunSpec",
        __doc__=_SCHEMA_DOC,
        __config__=ConfigDict(
            extra="forbid", title="quantbench run settings", json_schema_extra=_schema_extra
        ),
        **{key: (field.annotation, field) for key, field in FIELDS.items()},
    )
    return flat.model_json_schema()
