"""Settings from users, bounded: a config file, an inline YAML flag, Python overrides.

YAML aliases let a few hundred bytes stand for billions of values (the "billion laughs"
bomb); PyYAML builds them as shared references, so loading is fast and the blow-up comes
later, in whatever walks or prints the value (a validator, an error message). Here every
document is measured once as it will be seen, expanded, before anything else reads it:
too big, too deep or recursive is an input error, found in milliseconds.

Example::

    >>> load_yaml_text("models: [resnet18]", "flag --x")
    {'models': ['resnet18']}
    >>> load_yaml_text("a: &a [1, *a]", "flag --x")
    Traceback (most recent call last):
    ...
    quantbench.errors.QuantbenchError: flag --x holds a recursive structure (a value inside itself: a YAML alias in its own anchor)
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from quantbench.errors import QuantbenchError, clip, first_line

# A config file is a few KiB; a megabyte is already far more than any real one.
MAX_FILE_BYTES = 1 << 20
# The size of a document as seen expanded (values + characters of its strings): four
# times what the largest file could hold without aliases, so anchors used to share a
# dataset or options between models stay well inside it, and a bomb does not.
MAX_EXPANDED = 4 * MAX_FILE_BYTES
# Nesting: a real config is under 8 levels deep (models -> entry -> dataset -> ...).
MAX_DEPTH = 32


def _bounded_loader() -> type:
    """A SafeLoader that refuses nesting deeper than :data:`MAX_DEPTH` while composing
    (PyYAML composes recursively: a 10 000-deep list would overflow Python's stack)."""
    import yaml

    class Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    mark = self.peek_event().start_mark
                    raise _TooDeep(f"line {mark.line + 1}")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return Loader


class _TooDeep(Exception):
    pass


def load_yaml_text(text: str, what: str, invalid: str = "is not valid YAML") -> Any:
    """``text`` parsed as YAML (safe types only) and checked by :func:`check_bounded`;
    ``what`` names it in errors ("config 'lab.yaml'", "--recipe-options"), ``invalid``
    says what a syntax error makes it."""
    import yaml

    try:
        data = yaml.load(text, Loader=_bounded_loader())  # noqa: S506 - a SafeLoader
    except _TooDeep as e:
        raise QuantbenchError(
            f"{what} is nested more than {MAX_DEPTH} levels deep (at {e}); refused"
        ) from None
    except yaml.YAMLError as e:
        raise QuantbenchError(f"{what} {invalid}: {_yaml_problem(e)}") from None
    except (ValueError, TypeError, RecursionError) as e:  # e.g. an int of 10 000 digits
        raise QuantbenchError(f"{what} holds a value YAML cannot read: {first_line(e)}") from None
    check_bounded(data, what)
    return data


def _yaml_problem(e: Any) -> str:
    """A YAML error in one line: the problem and where ("found unhashable key (line 3,
    column 5), while constructing a mapping"); PyYAML's own text spans several lines."""
    problem = getattr(e, "problem", None)
    if not problem:
        return first_line(e, with_type=False)
    mark = getattr(e, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    context = getattr(e, "context", None)
    return f"{problem}{where}" + (f", {context}" if context else "")


def check_bounded(value: Any, what: str) -> None:
    """Refuse a structure that is recursive, nested deeper than :data:`MAX_DEPTH`, or
    larger than :data:`MAX_EXPANDED` once its shared parts are counted each time they are
    used. Each distinct object is visited once, so a bomb is measured, never expanded."""
    sizes: dict[int, int] = {}  # id -> expanded size of a container already measured
    on_path: set[int] = set()
    # (object, depth, children still to measure or None before the first visit)
    stack: list[tuple[Any, int, list[Any] | None]] = [(value, 1, None)]
    keep = [value]  # the ids above stay valid while the objects are held
    while stack:
        obj, depth, kids = stack.pop()
        if kids is None:
            if not isinstance(obj, (dict, list, tuple, set, frozenset)):
                continue
            if id(obj) in on_path:
                raise QuantbenchError(
                    f"{what} holds a recursive structure (a value inside itself: a YAML "
                    "alias in its own anchor)"
                )
            if id(obj) in sizes:
                continue
            if depth > MAX_DEPTH:
                raise QuantbenchError(f"{what} is nested more than {MAX_DEPTH} levels deep")
            kids = [*obj.keys(), *obj.values()] if isinstance(obj, dict) else list(obj)
            keep.append(obj)
            on_path.add(id(obj))
            stack.append((obj, depth, kids))
            stack.extend((k, depth + 1, None) for k in kids)
            continue
        on_path.discard(id(obj))
        total = 1 + sum(sizes.get(id(k), _scalar_size(k)) for k in kids)
        if total > MAX_EXPANDED:
            raise QuantbenchError(
                f"{what} expands to more than {MAX_EXPANDED} values and characters (YAML "
                "aliases repeating an anchor, a 'billion laughs'?); refused"
            )
        sizes[id(obj)] = total


def _scalar_size(value: Any) -> int:
    return 1 + len(value) if isinstance(value, (str, bytes)) else 1


def read_config_text(path: str | os.PathLike[str]) -> str:
    """The text of config file ``path``: a readable regular file (or a pipe such as
    ``<(...)``) of UTF-8 text, at most :data:`MAX_FILE_BYTES`; anything else is one line."""
    name = f"config '{clip(os.fspath(path))}'"
    p = Path(path)
    try:
        st = p.stat()
        if stat.S_ISDIR(st.st_mode):
            raise QuantbenchError(f"{name} is a directory, not a YAML file")
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
            raise QuantbenchError(f"{name} is not a regular file")
        with p.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise QuantbenchError(f"cannot read {name}: {e.strerror or first_line(e)}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise QuantbenchError(
            f"{name} is larger than {MAX_FILE_BYTES // 1024} KiB: not an experiment file"
        )
    try:
        return raw.decode("utf-8-sig")  # a BOM from a Windows editor is fine
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise QuantbenchError(
            f"{name} is not UTF-8 text (byte 0x{raw[e.start]:02x} on line {line}); save it as UTF-8"
        ) from None
