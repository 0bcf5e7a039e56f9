"""Running an ``.onnx`` file: :class:`OrtModule`, an ``onnxruntime.InferenceSession``
that takes and returns torch tensors like a torch module."""

from __future__ import annotations

import os
import shutil
import weakref
from typing import Any

from quantbench.errors import UnsupportedError

RUNTIME = "onnxruntime"
PROVIDER = "CPUExecutionProvider"


def require() -> Any:
    """(onnx, onnxruntime), or UnsupportedError when they are not installed."""
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise UnsupportedError("onnxruntime is not installed: pip install onnxruntime") from None
    return onnx, onnxruntime


class OrtModule:
    """An ``onnxruntime.InferenceSession`` that runs like a torch module.

    ``module(*tensors)`` feeds the tensors (zero-copy ``.numpy()`` views for contiguous
    CPU tensors) in the graph's input order and returns the first output as a torch
    tensor (zero-copy too). Threads follow torch's: ``intra_op_num_threads =
    torch.get_num_threads()``, one inter-op thread, all graph optimizations.

    Example::

        >>> m = OrtModule("resnet18-int8.onnx")                          # doctest: +SKIP
        >>> m(torch.randn(1, 3, 224, 224)).shape                         # doctest: +SKIP
        torch.Size([1, 1000])
    """

    def __init__(
        self, path: str | os.PathLike, threads: int | None = None, cleanup_dir: str | None = None
    ) -> None:
        import onnxruntime as ort  # ImportError here is the caller's "not installed"
        import torch

        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads or torch.get_num_threads())
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3  # errors only: QDQ graphs log harmless fusion warnings
        # Idle ORT worker threads busy-wait by default; with several sessions alive and
        # variants timed in interleaved rounds they would steal the cores from whatever
        # runs next (torch eager ran 20x slower beside three spinning sessions).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = str(path)
        self.threads = so.intra_op_num_threads
        self.session = ort.InferenceSession(self.path, so, providers=[PROVIDER])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [self.session.get_outputs()[0].name]
        if cleanup_dir is not None:
            # the artifact's temporary directory lives exactly as long as its module
            weakref.finalize(self, shutil.rmtree, cleanup_dir, True)

    def __call__(self, *tensors: Any) -> Any:
        import torch

        feeds = {n: t.detach().numpy() for n, t in zip(self.input_names, tensors, strict=True)}
        return torch.from_numpy(self.session.run(self.output_names, feeds)[0])

    def eval(self) -> OrtModule:
        return self

    def state_dict(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        return f"OrtModule({self.path!r}, threads={self.threads})"
