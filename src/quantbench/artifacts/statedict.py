"""The ``state_dict`` format: a weights-only torch checkpoint of a quantized module.

It holds the module's state_dict (the tensors ``run`` sized) and what rebuilds its
structure: the model, the recipe and its settings, the engine, the layers left in float
(and a ``py:`` model's source). It is read with ``torch.load(weights_only=True)``: no
pickled code. :mod:`quantbench.artifacts.rebuild` turns it back into a module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantbench import fileformat
from quantbench.artifacts.formats import get_format
from quantbench.errors import QuantbenchError
from quantbench.version import __version__

FORMAT = "quantbench-artifact"
FORMAT_VERSION = 1


def write(art: Any, path: Path, meta: dict[str, Any]) -> None:
    """``meta`` and ``art``'s state_dict, written atomically to ``path``."""
    import torch

    from quantbench.files import atomic_write

    module = getattr(art.module, "_orig_mod", art.module)  # torch.compile wrapper
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "quantbench_version": __version__,
        **meta,
        "runtime": art.runtime,
        "state_dict": module.state_dict(),
    }

    def save(tmp: Path) -> None:
        # Through a Python file: a full disk is an OSError (ENOSPC), not torch's
        # "unexpected pos", and the archive's name is "archive", not the temp file's.
        with open(tmp, "wb") as f:
            torch.save(payload, f)

    atomic_write(path, save)


def read(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path``, read with ``weights_only=True``; one line when it is not
    a complete quantbench checkpoint this version can read."""
    obj = fileformat.torch_load(path, get_format("state_dict").what)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise QuantbenchError(
            f"'{path}' is not a quantbench artifact: a torch checkpoint without quantbench's "
            "metadata (a plain state_dict is given to a run as --weights PATH)"
        )
    version = obj.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise QuantbenchError(f"'{path}' was written by a newer quantbench (format {version!r})")
    for key, kind in (("model", str), ("recipe", str), ("engine", str), ("state_dict", dict)):
        if not isinstance(obj.get(key), kind):
            raise QuantbenchError(
                f"'{path}' is not a complete quantbench artifact: '{key}' is missing or not a "
                f"{kind.__name__}"
            )
    return obj


def load(path: Path, trust_code: bool) -> Any:
    """The checkpoint rebuilt into a callable module (a ``py:`` model's only with
    ``trust_code``: its stored source runs)."""
    from quantbench.artifacts.rebuild import rebuild

    return rebuild(read(path), path, trust_code)
