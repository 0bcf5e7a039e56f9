"""Write constraints.txt: the exact releases installed here of quantbench's dependencies
(and theirs), for the extras given, so that ``make`` installs the set the tests ran on.

Run it in the environment the tests passed in, after changing a range or adding an
extra in pyproject.toml::

    .venv/bin/python tools/constraints.py             # every extra pyproject.toml declares
    .venv/bin/python tools/constraints.py test ray    # only these extras

Only what the declared requirements reach is written (other packages installed by hand
in the same environment are not), so the file cannot pin something quantbench does not
ask for.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
HEADER = """\
# The exact set the tests ran on (Python 3.11, x86-64 Linux): `make` installs with
# `pip install -c constraints.txt -e '.[test]'`. pyproject.toml declares the ranges a user
# installs within. Regenerate: .venv/bin/python tools/constraints.py (in a venv where the
# tests passed). torch and torchvision are pip-only here (the machine's local wheel files).
"""


def declared(extras: set[str]) -> list[Requirement]:
    """quantbench's requirements with ``extras``, as pyproject.toml declares them now (the
    installed metadata may predate an edit)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project.get("optional-dependencies", {})
    unknown = extras - set(optional)
    if unknown:
        raise SystemExit(f"constraints: no extra {', '.join(sorted(unknown))} (have: "
                         f"{', '.join(optional)})")  # fmt: skip
    lines = project["dependencies"] + [r for e in sorted(extras) for r in optional[e]]
    return [Requirement(line) for line in lines]


def closure(extras: set[str], roots: list[str] | None = None) -> dict[str, str]:
    """``{name: version}`` of every installed distribution quantbench[extras] reaches
    (or, given ``roots``, those distributions reach, themselves included)."""
    dists = {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions()}
    seen: dict[str, set[str]] = {}
    reqs = [Requirement(r) for r in roots] if roots is not None else declared(extras)
    todo = [(r.name, set(r.extras)) for r in reqs if r.marker is None or r.marker.evaluate()]
    while todo:
        name, wanted = todo.pop()
        key = canonicalize_name(name)
        if key not in dists:
            raise SystemExit(f"constraints: {name} is required but not installed here")
        if key in seen and wanted <= seen[key]:
            continue
        seen[key] = seen.get(key, set()) | wanted
        for line in dists[key].requires or []:
            req = Requirement(line)
            envs = [{"extra": e} for e in (wanted or {""})]
            if req.marker is None or any(req.marker.evaluate(e) for e in envs):
                todo.append((req.name, set(req.extras)))
    seen.pop("quantbench", None)
    return {dists[k].metadata["Name"]: dists[k].version for k in sorted(seen)}


def main(argv: list[str]) -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = set(argv) or set(project.get("optional-dependencies", {}))
    pins = closure(extras)
    lines = [HEADER, f"# extras: {', '.join(sorted(extras))}\n"]
    lines += [f"{name}=={version}\n" for name, version in pins.items()]
    (ROOT / "constraints.txt").write_text("".join(lines))
    print(f"constraints.txt: {len(pins)} releases")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
