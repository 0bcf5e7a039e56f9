"""The output directory of a run (or of ``quantbench sensitivity``)."""

from __future__ import annotations

from pathlib import Path

from quantbench.errors import QuantbenchError
from quantbench.spec import default_out_dir


def prepare_out_dir(out: str | Path | None) -> Path:
    """Create the output directory, or raise one clear error if it cannot be used."""
    path = Path(out) if out else default_out_dir()
    if (path / "results.json").exists():
        raise QuantbenchError(
            f"output directory '{path}' already holds a run; choose another --out"
        )
    try:
        (path / "plots").mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise QuantbenchError(
            f"cannot write to output directory '{path}': {e.strerror or e}"
        ) from None
    return path


def reopen_out_dir(out: str | Path | None) -> Path:
    """The directory of a run being resumed: kept as it is, ``plots/`` made if missing."""
    path = Path(out) if out else default_out_dir()
    try:
        (path / "plots").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise QuantbenchError(f"cannot write to '{path}': {e.strerror or e}") from None
    return path
