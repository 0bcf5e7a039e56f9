"""The runs ``quantbench compare`` is given, and how they differ besides the code.

A run may be named by its id, by an unambiguous prefix of it, by its run directory or by
its ``results.json`` (a run never stored: CI artifacts, a colleague's file). Two runs that
were measured on different machines, or with different settings, can differ for that
reason alone: :func:`differences` says so in one line per pair, and compare shows it at
the top (and in ``--format json``).

Example::

    runs = resolve(["20261205-1034", "ci/results.json"], store="q.db")
    for line in differences(runs):
        print("warning:", line)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from quantbench.errors import QuantbenchError, clip

Run = tuple[dict[str, Any], list[Any]]  # (run record, cells)

# Settings that change which cells/points exist, where files go or how workers start,
# not what a shared point measures: differing in them is no reason to warn.
_NOT_COMPARED_SECTIONS = {"output", "launch", "sweep"}
_NOT_COMPARED = {"models", "recipes", "compile", "fallback", "measure", "timeout_s", "eval_fn"}
# The machine, as the run's fingerprint records it (host keys, then the run's own)
_MACHINE_HOST = ("hostname", "cpu", "cores", "gpu", "gpus")
_MACHINE_RUN = ("node", "device")


def _looks_like_path(ref: str) -> bool:
    return Path(ref).exists() or "/" in ref or "\\" in ref or ref.endswith(".json")


def _from_file(ref: str) -> Run:
    from quantbench.results import read_json

    path = Path(ref)
    if not path.exists():
        raise QuantbenchError(
            f"'{clip(ref)}' does not exist (compare takes run ids, id prefixes, run "
            "directories and results.json files)"
        )
    if path.is_dir():
        path = path / "results.json"
        if not path.is_file():
            raise QuantbenchError(f"'{clip(ref)}' is a directory without results.json")
    meta, cells = read_json(path)
    if not isinstance(meta.get("id"), str) or not meta["id"]:
        raise QuantbenchError(f"'{clip(str(path))}' records no run id")
    return meta, cells


def _match(ref: str, ids: list[str], label: str) -> str | None:
    """The one stored id ``ref`` names (itself, or the only id it is a prefix of); None
    when none matches (the store's own error then lists recent runs)."""
    if ref in ids:
        return ref
    found = sorted(i for i in ids if i.startswith(ref))
    if len(found) > 1:
        shown = ", ".join(found[:8]) + (f" and {len(found) - 8} more" if len(found) > 8 else "")
        raise QuantbenchError(
            f"run id prefix '{clip(ref)}' is ambiguous in store {label}: it matches {shown}"
        )
    return found[0] if found else None


def resolve(refs: list[Any], store: str | None = None) -> list[Run]:
    """Each ref's run, in order: files and directories (a ``Path`` too) read as they are,
    the rest looked up in the store (only read, only opened when some ref needs it)."""
    refs = [os.fspath(r) if isinstance(r, os.PathLike) else r for r in refs]
    if not refs:
        raise QuantbenchError("compare needs runs: run ids, id prefixes, run directories or "
                              "results.json files")  # fmt: skip
    for ref in refs:
        if not isinstance(ref, str) or not ref.strip():
            raise QuantbenchError(f"compare got an empty run reference: {ref!r}")
    out: dict[int, Run] = {i: _from_file(r) for i, r in enumerate(refs) if _looks_like_path(r)}
    stored = [i for i in range(len(refs)) if i not in out]
    if stored:
        from quantbench.store import open_store
        from quantbench.storefaults import reading

        st = open_store(store, create=False)
        try:
            with reading(st, "the list of runs"):  # a damaged store: one line
                ids = [str(r["id"]) for r in st.runs()]
            for i in stored:
                out[i] = st.load_run(_match(refs[i], ids, st.label) or refs[i])
        finally:
            st.close()
    return [out[i] for i in range(len(refs))]


def _show(value: Any) -> str:
    if isinstance(value, dict) and "name" in value:
        value = value["name"]
    if isinstance(value, list):
        value = ", ".join(_show(v) for v in value)
    return clip(str(value), 40)


def _changed(base: dict[str, Any], other: dict[str, Any], keys: list[str]) -> list[str]:
    return [
        f"{k} {_show(base.get(k))} → {_show(other.get(k))}"
        for k in keys
        if k in base and k in other and base[k] != other[k]
    ]


def _setting_keys() -> list[str]:
    from quantbench.settings import SECTION_OF

    return [
        k for k, section in SECTION_OF.items()
        if section not in _NOT_COMPARED_SECTIONS and k not in _NOT_COMPARED
        and k != "threads"  # the run's resolved thread count is compared instead
    ]  # fmt: skip


def differences(runs: list[Run]) -> list[str]:
    """One line per later run whose machine or settings differ from the baseline's."""
    if len(runs) < 2:
        return []
    base = runs[0][0]
    keys = _setting_keys()
    out = []
    for meta, _ in runs[1:]:
        if meta.get("id") == base.get("id"):
            out.append(f"run {base.get('id')} is compared with itself: every change is 0")
            continue
        pair = f"{base.get('id')} and {meta.get('id')}"
        host_b, host = base.get("host") or {}, meta.get("host") or {}
        machine = _changed(host_b, host, list(_MACHINE_HOST))
        machine += _changed(base, meta, list(_MACHINE_RUN))
        if machine:
            out.append(f"runs {pair} ran on different machines ({'; '.join(machine)}): a "
                       "change may come from the machine, not the code")  # fmt: skip
        settings = _changed(base, meta, ["threads"])
        settings += _changed(base.get("spec") or {}, meta.get("spec") or {}, keys)
        if settings:
            out.append(f"runs {pair} differ in settings ({'; '.join(settings)}): a change "
                       "may come from them, not the code")  # fmt: skip
    return out
