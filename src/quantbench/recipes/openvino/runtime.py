"""Running an OpenVINO IR: :class:`OvModule`, a model compiled for the CPU plugin that
takes and returns torch tensors like a torch module; saving and reading the IR's two files."""

from __future__ import annotations

import os
import shutil
import weakref
from pathlib import Path
from typing import Any

from quantbench.errors import QuantbenchError, UnsupportedError

RUNTIME = "openvino"
EXTRA = "openvino"
INSTALL = f"pip install 'quantbench[{EXTRA}]'"
DEVICE = "CPU"


def require() -> None:
    """UnsupportedError naming the extra when OpenVINO or NNCF is not installed."""
    import importlib.util

    missing = []
    for name in ("openvino", "nncf"):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    if missing:
        raise UnsupportedError(f"{' and '.join(missing)} not installed: {INSTALL}")


def bin_path(xml: str | os.PathLike) -> Path:
    """The weights file that goes with an IR's ``.xml``: same name, ``.bin``."""
    return Path(xml).with_suffix(".bin")


def save_ir(model: Any, xml: str | os.PathLike) -> int:
    """Write ``model`` as an IR (``.xml`` + ``.bin``); return the bytes of both files.

    Weights stay as they are: ``ov.save_model`` compresses fp32 weights to fp16 unless
    told not to, which would halve an fp32 baseline behind its name's back.
    """
    import openvino as ov

    ov.save_model(model, str(xml), compress_to_fp16=False)
    return ir_bytes(xml)


def ir_bytes(xml: str | os.PathLike) -> int:
    """Bytes of an IR: its ``.xml`` and its ``.bin`` (what ships)."""
    b = bin_path(xml)
    return Path(xml).stat().st_size + (b.stat().st_size if b.is_file() else 0)


def compile_config(threads: int) -> dict[str, Any]:
    """The CPU plugin's settings: the run's threads, and fp32 inference precision (on CPUs
    with bf16 or AMX the plugin's default is bf16: the baseline would not be fp32)."""
    return {"INFERENCE_NUM_THREADS": int(threads), "INFERENCE_PRECISION_HINT": "f32"}


class OvModule:
    """An OpenVINO model compiled for the CPU plugin, run like a torch module.

    ``module(*tensors)`` feeds the tensors in the IR's input order and returns the first
    output (``infer`` copies it out) as a torch tensor. Threads: ``INFERENCE_NUM_THREADS``
    = ``threads`` (default ``torch.get_num_threads()``); precision: f32. ``settings``
    holds what the compiled model reports back (threads, precision, streams, hint).

    Example::

        >>> m = OvModule("resnet18-int8.xml")                           # doctest: +SKIP
        >>> m(torch.randn(1, 3, 224, 224)).shape                        # doctest: +SKIP
        torch.Size([1, 1000])
    """

    def __init__(
        self,
        xml: str | os.PathLike,
        threads: int | None = None,
        cleanup_dir: str | None = None,
    ) -> None:
        import openvino as ov
        import torch

        self.path = str(xml)
        core = ov.Core()
        self.compiled = core.compile_model(
            core.read_model(self.path), DEVICE, compile_config(threads or torch.get_num_threads())
        )
        self.request = self.compiled.create_infer_request()
        self.output = self.compiled.output(0)  # BERT's first output is named '322': by index
        self.n_inputs = len(self.compiled.inputs)
        # the names convert_model took from the source forward (input_ids, attention_mask, x)
        self.input_names = tuple(
            i.get_any_name() if i.get_names() else f"input_{n}"
            for n, i in enumerate(self.compiled.inputs)
        )
        self.settings = {
            k: _text(self.compiled.get_property(k))
            for k in ("INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT", "NUM_STREAMS",
                      "PERFORMANCE_HINT", "DYNAMIC_QUANTIZATION_GROUP_SIZE")
        }  # fmt: skip
        self.threads = int(self.settings["INFERENCE_NUM_THREADS"])
        if cleanup_dir is not None:
            # the artifact's temporary directory lives exactly as long as its module
            weakref.finalize(self, shutil.rmtree, cleanup_dir, True)

    def __call__(self, *tensors: Any) -> Any:
        import numpy as np
        import torch

        if len(tensors) != self.n_inputs:
            raise QuantbenchError(f"the model takes {self.n_inputs} inputs, got {len(tensors)}")
        feeds = [t.detach().cpu().contiguous().numpy() for t in tensors]
        out = torch.from_numpy(np.asarray(self.request.infer(feeds)[self.output]))
        device = tensors[0].device if tensors else None
        return out if device is None or device.type == "cpu" else out.to(device)

    def eval(self) -> OvModule:
        return self

    def state_dict(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        return f"OvModule({self.path!r}, threads={self.threads})"


def _text(value: Any) -> str:
    """A property's value as text (an element type as ``f32``, not ``<Type: 'float32'>``)."""
    to_string = getattr(value, "to_string", None)
    return str(to_string() if callable(to_string) else value)


def load_ir(xml: str | os.PathLike, threads: int | None = None) -> OvModule:
    """An IR's ``.xml`` (its ``.bin`` beside it) as an :class:`OvModule`; QuantbenchError
    in one line when OpenVINO is missing or the files are not an IR."""
    from quantbench import fileformat

    p = Path(xml)
    try:
        require()
    except UnsupportedError as e:
        raise QuantbenchError(f"loading OpenVINO IR artifacts needs OpenVINO: {e}") from None
    expected = "an OpenVINO IR (.xml)"
    with p.open("rb") as f:
        head = f.read(512).lstrip()
    if not head.startswith(b"<?xml") and not head.startswith(b"<net"):
        raise fileformat.not_a(p, expected)
    if b"<net" not in head:
        raise QuantbenchError(f"'{p}' is not {expected}: an XML file without a <net> in it")
    if not bin_path(p).is_file():
        raise QuantbenchError(f"'{p}' has no weights file beside it: {bin_path(p).name} is missing")
    try:
        return OvModule(p, threads)
    except (
        RuntimeError
    ) as e:  # OpenVINO's: "Exception from src/...:84:\nCheck ... failed at ...\nWHY"
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        why = next((ln for ln in reversed(lines) if not ln.startswith(("Exception from", "Check "))),
                   "unreadable")  # fmt: skip
        raise QuantbenchError(f"'{p}' does not load in OpenVINO: {why.rstrip('.!')}") from None
