"""Running an ``.onnx`` file: :class:`OrtModule`, an ``onnxruntime.InferenceSession``
that takes and returns torch tensors like a torch module."""

from __future__ import annotations

import os
import shutil
import weakref
from typing import Any

from quantbench import waitpolicy
from quantbench.errors import UnsupportedError

RUNTIME = "onnxruntime"
PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


def require() -> Any:
    """(onnx, onnxruntime), or UnsupportedError when they are not installed."""
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise UnsupportedError("onnxruntime is not installed: pip install onnxruntime") from None
    return onnx, onnxruntime


def cuda_provider_missing(have: list[str]) -> str:
    """The reason ONNX Runtime recipes cannot run on cuda with these providers."""
    return f"onnxruntime has no {CUDA_PROVIDER} (it has {', '.join(have) or 'none'}): install onnxruntime-gpu"


class OrtModule:
    """An ``onnxruntime.InferenceSession`` that runs like a torch module.

    ``module(*tensors)`` feeds the tensors (zero-copy ``.numpy()`` views for contiguous
    CPU tensors) in the graph's input order and returns the first output as a torch
    tensor (zero-copy too). Threads follow torch's: ``intra_op_num_threads =
    torch.get_num_threads()``, one inter-op thread, all graph optimizations.
    :meth:`to_device` ("cuda") runs it on the CUDA execution provider instead; tensors on
    a GPU go in and out through host memory (ORT copies them to the GPU and back inside
    each call), and the output comes back on the inputs' device.

    Example::

        >>> m = OrtModule("resnet18-int8.onnx")                          # doctest: +SKIP
        >>> m(torch.randn(1, 3, 224, 224)).shape                         # doctest: +SKIP
        torch.Size([1, 1000])
    """

    def __init__(
        self,
        path: str | os.PathLike,
        threads: int | None = None,
        cleanup_dir: str | None = None,
        log_level: int = 3,
    ) -> None:
        import onnxruntime as ort  # ImportError here is the caller's "not installed"
        import torch

        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads or torch.get_num_threads())
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # errors only: QDQ graphs log harmless fusion warnings (4: not even errors)
        so.log_severity_level = log_level
        # Idle ORT worker threads busy-wait by default; with several sessions alive and
        # variants timed in interleaved rounds they would steal the cores from whatever
        # runs next (torch eager ran 20x slower beside three spinning sessions): the
        # run's wait policy decides (quantbench.waitpolicy; passive unless set).
        for key, value in waitpolicy.ort_entries().items():
            so.add_session_config_entry(key, value)
        self.path = str(path)
        self.threads = so.intra_op_num_threads
        self.options = so
        self.session = ort.InferenceSession(self.path, so, providers=[PROVIDER])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [self.session.get_outputs()[0].name]
        if cleanup_dir is not None:
            # the artifact's temporary directory lives exactly as long as its module
            weakref.finalize(self, shutil.rmtree, cleanup_dir, True)

    def __call__(self, *tensors: Any) -> Any:
        import torch

        feeds = {
            n: t.detach().cpu().numpy() for n, t in zip(self.input_names, tensors, strict=True)
        }
        out = torch.from_numpy(self.session.run(self.output_names, feeds)[0])
        device = tensors[0].device if tensors else None
        return out if device is None or device.type == "cpu" else out.to(device)

    @property
    def provider(self) -> str:
        """The execution provider the session runs on (the first of its list)."""
        return self.session.get_providers()[0]

    def to_device(self, device: str) -> OrtModule:
        """Run on ``device``: "cuda" re-creates the session with the CUDA execution
        provider first; UnsupportedError when onnxruntime has none or it fails to load
        (ORT would silently fall back to the CPU)."""
        import onnxruntime as ort

        if device == "cpu":
            return self
        if device != "cuda":
            raise UnsupportedError(f"ONNX Runtime recipes run on cpu or cuda, not {device}")
        have = ort.get_available_providers()
        if CUDA_PROVIDER not in have:
            raise UnsupportedError(cuda_provider_missing(have))
        import torch

        dev = torch.cuda.current_device()
        providers = [(CUDA_PROVIDER, {"device_id": dev}), PROVIDER]
        session = ort.InferenceSession(self.path, self.options, providers=providers)
        if session.get_providers()[0] != CUDA_PROVIDER:
            raise UnsupportedError(
                f"onnxruntime lists {CUDA_PROVIDER} but the session did not load it "
                f"(providers: {', '.join(session.get_providers())}): check CUDA/cuDNN libraries"
            )
        self.session = session
        return self

    def eval(self) -> OrtModule:
        return self

    def state_dict(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        return f"OrtModule({self.path!r}, threads={self.threads}, provider={self.provider!r})"
