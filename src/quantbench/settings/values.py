"""The kinds of value a setting holds: constrained numbers, comma-separated lists, data.

Strict: no bools for numbers, no strings for numbers. What each expects, in words, is
what a bad value's one-line error says (:func:`quantbench.settings.base.expects`).

Example::

    >>> parse_int_list("8,1,2,2", "image_sizes")
    [1, 2, 8]
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationInfo

from quantbench.errors import QuantbenchError, clip, shown

INLINE = "is not a valid inline mapping"


def parse_int_list(text: str | list[Any], what: str) -> list[int]:
    """'1,2,4' or [1, 2, 4] -> [1, 2, 4]; non-integers and values <= 0 are rejected."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for raw in items:
        if isinstance(raw, (dict, list, tuple, set)):
            raise QuantbenchError(f"{what} must be positive integers, got {shown(raw)}")
        s = clip(str(raw).strip())
        if isinstance(raw, bool) or not s.lstrip("+").isdigit() or int(s) <= 0:
            raise QuantbenchError(f"{what} must be positive integers, got '{s}'")
        out.append(int(s))
    if not out:
        raise QuantbenchError(f"{what} must not be empty")
    return sorted(dict.fromkeys(out))


def parse_name_list(text: str | list[Any], what: str) -> list[str]:
    """'a, b,a' or ['a', 'b'] -> ['a', 'b'] (order kept, duplicates dropped)."""
    if not isinstance(text, str):
        for x in text:
            if isinstance(x, (dict, list, tuple, set)):
                raise QuantbenchError(f"{what} must be names, got {shown(x)}")
    items = text.split(",") if isinstance(text, str) else [str(x) for x in text]
    out = [s.strip() for s in items if s.strip()]
    if not out:
        raise QuantbenchError(f"{what} must not be empty")
    return list(dict.fromkeys(out))


def _predicate(e: QuantbenchError, what: str) -> str:
    """'<what> must be ...' -> 'must be ...' (the model adds the setting's name)."""
    text = str(e)
    return text[len(what) + 1 :] if text.startswith(what + " ") else text


def as_int_list(value: Any) -> Any:
    """A sweep as given (a number, '1,2', a list) as sorted positive integers."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]  # a sweep of one
    if value is None or not isinstance(value, (str, list, tuple)):
        return value  # the type check reports it
    try:
        return parse_int_list(value if isinstance(value, str) else list(value), "_")
    except QuantbenchError as e:
        raise ValueError(_predicate(e, "_")) from None


def as_name_list(value: Any) -> Any:
    """Names as given ('a,b' or a list) as a list, order kept, duplicates dropped."""
    if not isinstance(value, (str, list, tuple)):
        return value
    try:
        return parse_name_list(value if isinstance(value, str) else list(value), "_")
    except QuantbenchError as e:
        raise ValueError(_predicate(e, "_")) from None


def inline_mapping(value: str, what: str) -> Any:
    """An inline YAML/JSON mapping typed on the command line, bounded as a file is."""
    from quantbench.userdata import load_yaml_text

    return load_yaml_text(value, f"{what} '{clip(value)}'", INLINE)


def _data(value: Any, info: ValidationInfo) -> Any:
    """Data given as a path, an inline mapping (``'{path: val/, crop: 16}'``) or a mapping,
    as a mapping. Only its form is checked here; what it names (the path, the kind, its
    keys) is read when the run is checked (:func:`quantbench.runner.checks.validate`)."""
    what = str(info.field_name).replace("_", " ")
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = inline_mapping(value, what)
        except QuantbenchError as e:
            raise ValueError(str(e)) from None
    if isinstance(value, (str, os.PathLike)):
        return {"path": os.fspath(value)}
    if value is not None and not isinstance(value, dict):
        raise ValueError(
            f"{what} must be a path or a mapping with a 'path', got {type(value).__name__}"
        )
    return value


PosInt = Annotated[int, Field(strict=True, gt=0)]
NonNegInt = Annotated[int, Field(strict=True, ge=0)]
# Floats are finite: an infinite time budget or threshold is never what was meant (an
# infinite min_time_s would time one point forever).
PosFloat = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
UnitFloat = Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]
Fraction = Annotated[float, Field(strict=True, ge=0, lt=1, allow_inf_nan=False)]
Flag = Annotated[bool, Field(strict=True)]
Text = Annotated[str, Field(strict=True)]
IntList = Annotated[list[PosInt], BeforeValidator(as_int_list)]
NameList = Annotated[list[Text], BeforeValidator(as_name_list)]
AnyMap = dict[str, Any]
# Evaluation, calibration or training data: a path or a mapping {path, kind, ...}.
DataSource = Annotated[AnyMap | None, BeforeValidator(_data)]
