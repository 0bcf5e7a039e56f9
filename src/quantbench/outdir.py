"""Output directories: one owner each (a run, a report, a comparison, a sensitivity
analysis), locked while a command writes them.

A directory's owner is read from what it holds: ``results.json`` names its run; a
directory that a command other than ``run`` wrote holds ``.quantbench-owner`` (kind and
id); an older directory without one is known by its ``report.md`` heading, else it is
"another quantbench output". A command writes only into a directory that is free or
already its own (re-rendering a run's report into the run's directory is fine), holding
the directory's lock (:func:`quantbench.locks.lock_dir`) meanwhile.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from quantbench.errors import QuantbenchError
from quantbench.settings import default_out_dir

OWNER_FILE = ".quantbench-owner"
_OUTPUTS = ("report.md", "report.html", "compare.md", "sensitivity.json")
_KINDS = {"run": "run {}", "sweep": "the report of sweep {}", "compare": "the comparison {}",
          "sensitivity": "a sensitivity analysis ({})", "unknown": "another quantbench output ({})"}  # fmt: skip


def owner(path: str | Path) -> tuple[str, str] | None:
    """(kind, id) of what directory ``path`` holds; None when it holds no quantbench output."""
    path = Path(path)
    results = path / "results.json"
    if results.exists():
        try:
            return "run", str(json.loads(results.read_text(encoding="utf-8"))["run"]["id"])
        except (OSError, ValueError, KeyError, TypeError):
            return "run", ""  # a run's file, whichever run it was
    marker = path / OWNER_FILE
    if marker.exists():
        try:
            found = json.loads(marker.read_text(encoding="utf-8"))
            return str(found["kind"]), str(found["id"])
        except (OSError, ValueError, KeyError, TypeError):
            return "unknown", OWNER_FILE
    if (path / "sensitivity.json").exists():
        return "sensitivity", "sensitivity.json"
    report = path / "report.md"
    if report.exists():  # written before owner files existed: its heading names the run
        try:
            with report.open(encoding="utf-8") as f:
                first = f.readline().strip()
        except (OSError, UnicodeDecodeError):
            first = ""
        run_id = first.removeprefix("# quantbench report: ")
        if run_id != first and run_id and " " not in run_id:
            return "run", run_id.replace("\\", "")
    for name in _OUTPUTS:
        if (path / name).exists():
            return "unknown", name
    return None


def describe(found: tuple[str, str]) -> str:
    kind, ident = found
    if kind == "run" and not ident:
        return "a run (its results.json does not decode)"
    return _KINDS.get(kind, _KINDS["unknown"]).format(ident)


def _writable(path: Path) -> None:
    from quantbench.files import writing

    try:
        with writing(path / ".write-test"):
            (path / "plots").mkdir(parents=True, exist_ok=True)
            probe = path / ".write-test"
            probe.write_text("")
            probe.unlink()
    except OSError as e:
        raise QuantbenchError(
            f"cannot write to output directory '{path}': {e.strerror or e}"
        ) from None


class _Taken(QuantbenchError):
    """The directory already holds an output."""


def _remove_if_unused(path: Path) -> None:
    """Remove the directory a refused or failed command made, while it holds nothing."""
    if owner(path) is None:
        for d in (path / "plots", path):
            try:
                d.rmdir()  # only when empty
            except OSError:
                return


def _prepare(path: Path, held: ExitStack | None, what: str) -> Path:
    with ExitStack() as mine:
        if held is not None and not path.exists():  # made here: removed if left unused
            mine.callback(_remove_if_unused, path)
        if held is not None:
            from quantbench.locks import lock_dir

            mine.enter_context(lock_dir(path, what))
        found = owner(path)
        if found is not None:
            held_ = describe(found)
            if found[0] == "run":  # "a run" first: what scripts have matched for long
                held_ = f"a run ({held_})" if found[1] else "a run"
            raise _Taken(f"output directory '{path}' already holds {held_}; choose another --out")
        _writable(path)
        if held is not None:
            held.enter_context(mine.pop_all())
    return path


def prepare_out_dir(
    out: str | Path | None, held: ExitStack | None = None, what: str = "quantbench run"
) -> Path:
    """Create the output directory of a new run (or analysis), or raise one clear error if
    it cannot be used: one that already holds an output is refused. ``held``: the stack
    that keeps the directory locked for ``what`` until it closes. The default directory
    (a timestamp) gets a suffix when another run took it in the same second."""
    if out:
        return _prepare(Path(out), held, what)
    from quantbench.locks import Locked

    base = default_out_dir()
    for i in range(1, 100):
        try:
            return _prepare(base if i == 1 else base.with_name(f"{base.name}-{i}"), held, what)
        except (_Taken, Locked):
            continue
    raise QuantbenchError(f"no free output directory next to '{base}'; give --out")


def reopen_out_dir(
    out: str | Path | None, run_id: str | None = None, held: ExitStack | None = None
) -> Path:
    """The directory of run ``run_id`` being resumed: kept as it is, ``plots/`` made if
    missing; refused when it now holds something else (another run took the path)."""
    path = Path(out) if out else default_out_dir()
    if held is not None:
        from quantbench.locks import lock_dir

        held.enter_context(lock_dir(path, f"quantbench run --resume {run_id}"))
    found = owner(path)
    if run_id is not None and found is not None and found != ("run", run_id):
        raise QuantbenchError(
            f"run {run_id}'s output directory '{path}' now holds {describe(found)}: not "
            "resumed there; move that away first"
        )
    try:
        (path / "plots").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        from quantbench.files import disk_fault

        raise disk_fault(e, path) or QuantbenchError(
            f"cannot write to '{path}': {e.strerror or e}"
        ) from None
    return path


@contextmanager
def claim_out_dir(path: str | Path, kind: str, ident: str) -> Iterator[Path]:
    """Hold directory ``path`` for an output that may be written again (the report of run
    or sweep ``ident``, a comparison) while the block writes it: locked meanwhile, refused
    when it holds another output, marked as ``(kind, ident)``'s once written. A directory
    made here and left empty by a failure is removed."""
    from quantbench.files import atomic_write_text
    from quantbench.locks import lock_dir

    path = Path(path)
    verb = "compare" if kind == "compare" else "report"
    with ExitStack() as held:
        if not path.exists():
            held.callback(_remove_if_unused, path)
        held.enter_context(lock_dir(path, f"quantbench {verb} {ident}"))
        found = owner(path)
        if found is not None and found != (kind, ident):
            raise QuantbenchError(
                f"output directory '{path}' holds {describe(found)}; it is not overwritten: "
                "choose another --out"
            )
        yield path
        if found is None:
            atomic_write_text(path / OWNER_FILE, json.dumps({"kind": kind, "id": ident}) + "\n")
