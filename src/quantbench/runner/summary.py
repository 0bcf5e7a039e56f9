"""The lines a run ends with: its cells, per model the recommendation (as sure as the
timings allow) and its caveats, where everything went. ``quantbench run`` prints them and
``RunResult.summary()`` returns them: one function for both.

Example::

    result = quantbench.run(models=["resnet18"], recipes=["fp32", "dynamic-int8"])
    print(result.summary())
"""

from __future__ import annotations

from typing import Any


def counts(results: list[Any]) -> dict[str, int]:
    """Cells per status."""
    out: dict[str, int] = {}
    for c in results:
        out[str(c.status)] = out.get(str(c.status), 0) + 1
    return out


def recommendation_lines(result: Any) -> list[str]:
    """Per model, its recommendation line; the run's caveats (a busy machine, ...) right
    after them, where they cannot be missed."""
    return [f"  {x}" for x in closing_lines(result.run.to_dict(), result.results)]


def closing_lines(run: dict[str, Any], cells: list[Any]) -> list[str]:
    """A run's recommendation lines and caveats from its record, unindented (``show``
    prints them so; :func:`recommendation_lines` indents them under the cell count)."""
    from quantbench.best import summary_lines
    from quantbench.caveats import run_caveats

    lines = summary_lines(run.get("spec") or {}, run.get("recommendations"), cells)
    return lines + [f"warning: {c}" for c in run_caveats(run, cells)]


def summary_lines(result: Any) -> list[str]:
    """What ``quantbench run`` prints on stdout when a run ends (``result``: a
    :class:`~quantbench.runner.RunResult`)."""
    found = counts(result.results)
    text = ", ".join(f"{n} {s}" for s, n in sorted(found.items()))
    lines = [f"{len(result.results)} cells: {text}", *recommendation_lines(result)]
    meta = result.run
    if store_gap(result):
        lines.append(
            f"stored:  INCOMPLETE: {len(meta.unstored)} of {len(result.results)} cells of run "
            f"{meta.id} are only in results.json, not in {meta.store}"
        )
    else:
        lines.append(f"stored:  run {meta.id} in {meta.store}")
    lines.append(f"results: {result.out_dir / 'results.json'}")
    lines.append(f"report:  {result.report} (and report.html)")
    return lines + artifact_lines(result)


def store_gap(result: Any) -> str | None:
    """One line when the store lacks what results.json holds (it failed during the run):
    how much, and the command that puts it in; None when the store has everything."""
    from quantbench.importer import import_command

    meta = result.run
    if not meta.unstored and not meta.record_unstored:
        return None
    why = meta.store_errors[-1] if meta.store_errors else "it failed"
    if meta.unstored:
        what = f"{len(meta.unstored)} of {len(result.results)} cell(s) of run {meta.id} are only"
    else:
        what = f"run {meta.id}'s final record (status, recommendations) is only"
    command = import_command(result.out_dir / "results.json", (meta.spec or {}).get("store"))
    return (
        f"the store failed during the run ({why}): {what} in results.json; put them into "
        f"the store with: {command}"
    )


def artifact_lines(result: Any) -> list[str]:
    """Where ``--save-artifacts`` wrote the variants' files (nothing when it was off)."""
    cells = [c for c in result.results if c.details.get("artifact")]
    missed = [c for c in result.results if any("artifact not saved" in n for n in c.notes)]
    if not cells and not missed:
        return []
    files = {c.details["artifact"]["path"]: c.details["artifact"]["bytes"] for c in cells}
    total = sum(files.values()) / 2**20
    return [
        f"artifacts: {result.out_dir / 'artifacts'} ({len(files)} files, {total:.1f} MiB"
        f"{f'; {len(missed)} not saved, see their notes' if missed else ''})"
    ]
