"""What runs where: each recipe x device, whether it runs on this machine and why not.

- :func:`device_support` is the per-cell decision a run makes before applying a recipe:
  a device the recipe does not run on ("CPU-only recipe: runs on cpu"), no GPU, or ONNX
  Runtime without its CUDA provider.
- :func:`availability` adds what only this machine can answer: the packages of the
  recipe's library, and the recipe's own ``probe`` (a quantized engine, a kernel, native
  half precision). ``quantbench list recipes --check`` shows it (a plain ``list recipes``
  imports none of the libraries); :func:`matrix_markdown` is the README's table.
- :func:`place` puts a built artifact on the run's device.

Example::

    >>> from quantbench.recipes import get_recipe
    >>> device_support(get_recipe("dynamic-int8"), "cuda")
    'CPU-only recipe: runs on cpu'
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from quantbench.errors import UnsupportedError, first_line

DEVICE_COLUMNS = ("cpu", "cuda")
FAMILIES = ("vision", "text")
NO_GPU = "no GPU here (torch.cuda.is_available() is False)"
# The importable packages each recipe library needs.
PACKAGES = {
    "onnxruntime": ("onnx", "onnxruntime"),
    "torchao": ("torchao",),
    "executorch": ("executorch",),
    "openvino": ("openvino", "nncf"),
}
# The libraries installed by one of quantbench's extras: the hint names the extra.
EXTRAS = {"executorch": "executorch", "openvino": "openvino"}


def _importable(package: str) -> bool:
    if package in sys.modules:
        return sys.modules[package] is not None  # None: import blocked (tests do this)
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def missing_packages(recipe: Any) -> list[str]:
    """The packages ``recipe``'s library needs that do not import here."""
    return [p for p in PACKAGES.get(recipe.library, ()) if not _importable(p)]


def _ort_cuda_reason() -> str | None:
    from quantbench.recipes.onnx.runtime import CUDA_PROVIDER, cuda_provider_missing

    try:
        import onnxruntime
    except ImportError:
        return "onnxruntime is not installed: pip install onnxruntime-gpu"
    have = list(onnxruntime.get_available_providers())
    return None if CUDA_PROVIDER in have else cuda_provider_missing(have)


def device_support(recipe: Any, device: str) -> str | None:
    """Why ``recipe`` (a :class:`~quantbench.recipes.Recipe`) cannot run on ``device``
    here, or None: the device is not one it runs on, there is no GPU, or (ONNX Runtime)
    no CUDA execution provider. A run records the reason as an ``unsupported`` cell."""
    if device not in recipe.devices:
        if recipe.devices == ("cpu",):
            return "CPU-only recipe: runs on cpu"
        return f"runs on {', '.join(recipe.devices)} only, not {device}"
    if device == "cuda":
        from quantbench.device import cuda_available

        ort = _ort_cuda_reason() if recipe.library == "onnxruntime" else None
        if not cuda_available():
            return NO_GPU + (f"; also {ort}" if ort else "")
        return ort
    return None


def availability(recipe: Any, device: str) -> str | None:
    """Why ``recipe`` cannot run on ``device`` on this machine, or None when it can:
    :func:`device_support`, then missing packages, then the recipe's own probe."""
    reason = device_support(recipe, device)
    if reason is not None:
        return reason
    missing = missing_packages(recipe)
    if missing:
        extra = EXTRAS.get(recipe.library)
        how = f"'quantbench[{extra}]'" if extra else " ".join(missing)
        return f"missing package: {', '.join(missing)} (pip install {how})"
    if recipe.probe is None:
        return None
    try:
        return recipe.probe(recipe.config, device)
    except UnsupportedError as e:
        return str(e)
    except Exception as e:  # a probe that breaks says so, it does not hide the recipe
        return f"availability check failed: {first_line(e)}"


def place(art: Any, device: str) -> Any:
    """``art`` on ``device``: an ONNX Runtime session moves to the CUDA provider (torch
    artifacts are built from the model, which is on the device already)."""
    if device == "cpu":
        return art
    to_device = getattr(art.module, "to_device", None)
    if callable(to_device):
        art.module = to_device(device)
        art.details["provider"] = art.module.provider
        art.details["io"] = "host numpy buffers: ORT copies inputs and outputs to/from the GPU"
    return art


def matrix(recipes: list[Any]) -> list[dict[str, Any]]:
    """One row per recipe of ``recipes`` (``quantbench.recipes.list_recipes()``: the
    registry imports this module, never the other way round): ``name``, ``runtime``,
    ``families``, ``devices`` (declared) and ``here`` (device -> None when it runs on this
    machine, else the reason)."""
    rows = []
    for r in recipes:
        rows.append({
            "name": r.name, "runtime": r.runtime, "families": tuple(r.families),
            "devices": tuple(r.devices),
            "here": {d: availability(r, d) for d in DEVICE_COLUMNS},
        })  # fmt: skip
    return rows


def _cell(reason: str | None) -> str:
    return "yes" if reason is None else f"no: {reason}"


def matrix_markdown(rows: list[dict[str, Any]]) -> str:
    """The support matrix as a markdown table: recipe x family x device, with whether each
    device runs the recipe on this machine (and why not)."""
    from quantbench.inert import md_text

    lines = [
        "| recipe | runtime | vision | text | runs on | cpu here | cuda here |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        fam = ["yes" if f in row["families"] else "no" for f in FAMILIES]
        cells = [md_text(_cell(row["here"][d])) for d in DEVICE_COLUMNS]
        lines.append(
            f"| `{row['name']}` | {row['runtime']} | {fam[0]} | {fam[1]} | "
            f"{', '.join(row['devices'])} | {cells[0]} | {cells[1]} |"
        )
    return "\n".join(lines)
