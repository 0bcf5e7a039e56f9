"""``quantbench run``'s setting flags, generated from the settings' fields.

Every setting is a flag ``--`` + its key with ``_`` as ``-`` (dest: the key), in a group
per section: its type from the field's annotation (int, float; lists, mappings and models
as text the settings parse: ``1,2,4``, inline YAML), true/false as ``--x/--no-x``, help
from the field's description (and its default). What differs for a flag (an older
spelling, a metavar, no flag at all, settings it implies) is the field's
:class:`~quantbench.settings.Cli` metadata. Adding a setting adds its flag.

Example::

    >>> p = argparse.ArgumentParser()
    >>> add_settings_flags(p)
    >>> add_setting_flag(p, "preset")
    >>> run_overrides(p.parse_args(["--min-time", "0.1", "--no-isolate"]))
    {'min_time_s': 0.1, 'isolate': False}
"""

from __future__ import annotations

import argparse
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from quantbench.settings import BATCH_SIZES_ALIAS, FIELDS, SECTION_OF, SECTIONS, Cli
from quantbench.settings.sweep import BATCH_SIZES_HELP


def cli_of(field: FieldInfo) -> Cli:
    """The field's CLI metadata (the defaults when it has none)."""
    return next((m for m in field.metadata if isinstance(m, Cli)), Cli())


def _scalar(annotation: Any) -> Any:
    """int, float, bool or str for a flag's value: Optional and Annotated unwrapped;
    anything else (lists, mappings, models) is text the settings parse."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return _scalar(args[0]) if len(args) == 1 else str
    return annotation if annotation in (int, float, bool) else str


def _default(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return None if field.default is PydanticUndefined else field.default


def _help(key: str, field: FieldInfo) -> str:
    """The description, with the default where the description does not say it, and
    what the flag implies."""
    text = field.description or ""
    default = _default(field)
    if "default" not in text.lower() and default not in (None, {}, []):
        flag = key.replace("_", "-")
        if isinstance(default, bool):
            shown = f"--{flag}" if default else f"--no-{flag}"
        elif isinstance(default, list):
            shown = ",".join(str(x) for x in default)
        else:
            shown = str(default)
        text += f" (default: {shown})"
    for implied, value in cli_of(field).implies:
        flag = implied.replace("_", "-")
        text += f"; implies --{flag}" if value is True else f"; implies --{flag} {value}"
    return text.replace("%", "%%")  # argparse formats help with %


def add_setting_flag(group: Any, key: str) -> None:
    """Setting ``key``'s flag on a parser or an argument group (none for a field whose
    :class:`Cli` says so)."""
    field = FIELDS[key]
    cli = cli_of(field)
    if not cli.flag:
        return
    names = ["--" + key.replace("_", "-"), *cli.aliases]
    kind = _scalar(field.annotation)
    if kind is bool:
        group.add_argument(
            *names, dest=key, action=argparse.BooleanOptionalAction, default=None,
            help=_help(key, field),
        )  # fmt: skip
    else:
        group.add_argument(
            *names, dest=key, type=None if kind is str else kind, metavar=cli.metavar,
            help=_help(key, field),
        )  # fmt: skip


def add_settings_flags(p: argparse.ArgumentParser) -> None:
    """The sections' settings as flags: a group per section (``--batch-sizes`` with the
    sweeps). The run's own settings (``preset``) are added with :func:`add_setting_flag`."""
    for name, section in SECTIONS.items():
        group = p.add_argument_group(section.title or name)
        if BATCH_SIZES_ALIAS not in FIELDS and name == SECTION_OF["vision_batch_sizes"]:
            group.add_argument(
                "--" + BATCH_SIZES_ALIAS.replace("_", "-"), dest=BATCH_SIZES_ALIAS,
                help=BATCH_SIZES_HELP + " (e.g. 1,2,4,8)",
            )  # fmt: skip
        for key in section.model_fields:
            add_setting_flag(group, key)


def run_overrides(args: argparse.Namespace, skip: tuple[str, ...] = ("preset",)) -> dict[str, Any]:
    """The setting flags given, as settings (None: not given), with what they imply
    (unless given too)."""
    keys = [k for k in [*FIELDS, BATCH_SIZES_ALIAS] if k not in skip]
    overrides = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    for key in list(overrides):
        for implied, value in cli_of(FIELDS[key]).implies if key in FIELDS else ():
            if getattr(args, implied, None) is None:
                overrides[implied] = value
    return overrides
