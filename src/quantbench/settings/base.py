"""What every settings model shares: one-line errors, and the words a value's type expects.

A pydantic error is several lines naming internals; a user sees one line naming the
setting, what it expects and what it got (``setting 'min_runs' must be an integer > 0,
got -1``). :class:`Settings` is the base of the run's sections, of :class:`ModelRef` and
of :class:`RunSpec`; :class:`Cli` is how a field says how its ``quantbench run`` flag
differs from the plain ``--key`` (read by :mod:`quantbench.cli.settings_flags`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo

from quantbench.errors import QuantbenchError, clip, shown, unknown_name


@dataclass(frozen=True)
class Cli:
    """How a setting's ``quantbench run`` flag differs from ``--<key with dashes>`` taking
    the field's type, with its description as help. Put in the field's ``Annotated``
    metadata: ``Annotated[NonNegFloat, Cli(aliases=("--min-time",))]``."""

    aliases: tuple[str, ...] = ()  # older spellings, the same option
    metavar: str | None = None
    flag: bool = True  # False: no flag (a Python object cannot be typed)
    # On the command line, giving this flag sets these settings too, unless they are
    # given: ``(("fallback", True),)`` (a bar implies trying to meet it).
    implies: tuple[tuple[str, Any], ...] = ()


def expects(annotation: Any, metadata: Sequence[Any] = ()) -> str | None:
    """What a field of this annotation (and constraints) expects, in words; None for
    types of no constrained kind (mappings, models)."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is Annotated:
        base, *extra = get_args(annotation)
        meta = list(metadata)
        for m in extra:
            meta += m.metadata if isinstance(m, FieldInfo) else [m]
        return expects(base, meta)
    if get_origin(annotation) is list:
        item = expects(args[0]) if args else None
        return "positive integers" if item == "an integer > 0" else "a list"
    if args and get_origin(annotation) is not dict:  # Optional[X]
        return expects(args[0], metadata)
    kind = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if annotation not in kind:
        return None
    if any(getattr(m, "allow_inf_nan", True) is False for m in metadata):
        kind[float] = "a finite number"
    bounds = {type(m).__name__: getattr(m, type(m).__name__.lower(), None) for m in metadata}
    if bounds.get("Ge") == 0 and bounds.get("Le") == 1:
        return f"{kind[annotation]} between 0 and 1"
    if bounds.get("Ge") == 0 and bounds.get("Lt") == 1:
        return "a fraction in [0, 1)"
    for name, op in (("Gt", ">"), ("Ge", ">=")):
        if name in bounds:
            return f"{kind[annotation]} {op} {bounds[name]}"
    return kind[annotation]


def _entry_prefix(loc: list[Any], data: Any) -> str:
    """``model 'NAME': `` for an error inside entry ``loc[1]`` of ``models``."""
    entries = data.get("models") if isinstance(data, dict) else None
    name: Any = None
    if isinstance(entries, list) and loc[1] < len(entries):
        entry = entries[loc[1]]
        name = entry.get("name") if isinstance(entry, dict) else getattr(entry, "name", entry)
    return f"model '{clip(str(name))}': " if name is not None else f"models[{loc[1]}]: "


def settings_error(e: ValidationError, model: type[BaseModel], data: Any = None) -> QuantbenchError:
    """Pydantic's (multi-line) error as one line, e.g. ``setting 'min_runs' must be an
    integer > 0, got -1``; an unknown key is named with the closest valid one. ``data``
    is what was given (flat keys), to name the model entry an error is in."""
    err = e.errors(include_url=False)[0]
    loc = list(err["loc"])
    prefix = ""
    while loc and isinstance(loc[0], str) and model.model_fields.get(loc[0]) is not None:
        inner = model.model_fields[loc[0]].annotation
        if not (isinstance(inner, type) and issubclass(inner, Settings)):
            break
        model, loc = inner, loc[1:]  # a section: its own field names the setting
    if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
        prefix = _entry_prefix(loc, data)
        model, loc = get_args(model.model_fields["models"].annotation)[0], loc[2:]
    elif model.__name__ == "ModelRef" and isinstance(data, dict) and "name" in data:
        prefix = f"model '{clip(str(data['name']))}': "
    key = str(loc[0]) if loc else "name"
    if err["type"] == "extra_forbidden":
        return QuantbenchError(prefix + str(unknown_name("setting", key, model.valid_keys())))
    if err["type"] == "missing":
        return QuantbenchError(f"{prefix}setting '{key}' is required")
    if err["type"] == "value_error":
        text = str(err["ctx"]["error"])
        return QuantbenchError(
            prefix + (f"setting '{key}' {text}" if text.startswith("must") else text)
        )
    field = model.model_fields.get(key)
    words = expects(field.annotation, field.metadata) if field is not None else None
    if words is None:
        words = err["msg"].removeprefix("Input should be ")
    return QuantbenchError(f"{prefix}setting '{key}' must be {words}, got {shown(err['input'])}")


class Settings(BaseModel):
    """A pydantic model whose validation errors are one-line QuantbenchErrors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # The heading of a section's flags in ``quantbench run --help``.
    title: ClassVar[str] = ""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise settings_error(e, type(self), data) from None

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as e:
            raise settings_error(e, type(self)) from None

    @classmethod
    def valid_keys(cls) -> list[str]:
        """The keys an unknown one is compared with."""
        return list(cls.model_fields)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-friendly dict."""
        return self.model_dump()
