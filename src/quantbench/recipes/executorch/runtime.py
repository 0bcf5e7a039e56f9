"""Running a ``.pte`` file: :class:`EtModule`, an ExecuTorch program that takes and returns
torch tensors like a torch module, timed in ExecuTorch's own runtime."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from quantbench.errors import QuantbenchError, UnsupportedError

RUNTIME = "executorch"
EXTRA = "executorch"
INSTALL = f"pip install 'quantbench[{EXTRA}]'"
# The file identifier of an ExecuTorch program (a flatbuffer): bytes 4..8 read "ET" and a
# two-digit schema version.
MAGIC_AT = slice(4, 6)
MAGIC = b"ET"


def require() -> None:
    """UnsupportedError naming the extra when ExecuTorch is not installed."""
    import importlib.util

    try:
        found = importlib.util.find_spec("executorch") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UnsupportedError(f"executorch is not installed: {INSTALL}")


@contextlib.contextmanager
def _native_log_off() -> Iterator[None]:
    """ExecuTorch's native code logs to the process's stderr as it sizes its thread pool
    ("[cpuinfo_utils.cpp:71] Reading file ...", "Resetting threadpool to 2 threads"):
    point file descriptor 2 at /dev/null for that call only."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def set_threads(threads: int) -> int:
    """Size ExecuTorch's thread pool (XNNPACK runs on it); return the size it has.

    ``torch.set_num_threads`` does not reach it and no environment variable does: the
    pool is process-wide and only ``_unsafe_reset_threadpool`` resizes it, which takes
    effect for programs loaded afterwards (resizing it under a loaded program did not
    change the threads that program ran on). So it is set before every load.
    """
    from executorch.extension.pybindings import portable_lib

    with _native_log_off():
        if portable_lib._threadpool_get_thread_count() != threads:
            portable_lib._unsafe_reset_threadpool(int(threads))
        return int(portable_lib._threadpool_get_thread_count())


def check_pte(path: Path) -> None:
    """Refuse, in one line, a file that is not an ExecuTorch program."""
    from quantbench import fileformat

    with path.open("rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[MAGIC_AT] != MAGIC:
        raise fileformat.not_a(path, "an ExecuTorch program (.pte)")


# ExecuTorch's ScalarType codes of integer and bool tensors (uint8 .. int64, bool).
_INTEGER = {0, 1, 2, 3, 4, 11}


def _input_names(bounds: list[tuple[int, ...]], integer: list[bool]) -> tuple[str, ...]:
    """The inputs' names of a program that does not keep them (quantbench writes them as
    the constant method ``input_names``), as quantbench exports a model of each family:
    token ids and their mask, or one image; else ``input_0``, ``input_1``... so that a
    call by keyword binds as :mod:`quantbench.artifacts.contract` binds it."""
    if len(bounds) == 2 and all(integer) and all(len(b) == 2 for b in bounds):
        return ("input_ids", "attention_mask")
    if len(bounds) == 1 and integer[0] and len(bounds[0]) == 2:
        return ("input_ids",)
    if len(bounds) == 1 and not integer[0] and len(bounds[0]) == 4:
        return ("pixel_values",)
    return tuple(f"input_{i}" for i in range(len(bounds)))


class EtModule:
    """An ExecuTorch program (``.pte``) that runs like a torch module.

    Programs are exported for batch 1, what a device runs: ``module(*tensors)`` runs a
    batch of n as n calls, one input at a time, and concatenates the outputs (latency at
    batch n is what a device running the file would spend on n inputs). Inputs are
    passed contiguous (a channels-last input is accepted by the runtime and silently
    computes something else). The thread pool gets ``threads`` (default
    ``torch.get_num_threads()``) before the program loads. An image must have the size
    the program was exported at; a sequence may be as long as its bound (memory is
    planned for it at export).

    Example::

        >>> m = EtModule("resnet18-int8.pte")                           # doctest: +SKIP
        >>> m(torch.randn(1, 3, 224, 224)).shape                        # doctest: +SKIP
        torch.Size([1, 1000])
    """

    def __init__(
        self,
        path: str | os.PathLike,
        threads: int | None = None,
        cleanup_dir: str | None = None,
    ) -> None:
        import torch
        from executorch.runtime import Runtime

        self.path = str(path)
        self.threads = set_threads(int(threads or torch.get_num_threads()))
        program = Runtime.get().load_program(self.path)
        self.method = program.load_method("forward")
        meta = self.method.metadata
        self.bounds = [
            tuple(int(d) for d in meta.input_tensor_meta(i).sizes())
            for i in range(meta.num_inputs())
        ]
        integer = [
            int(meta.input_tensor_meta(i).dtype()) in _INTEGER for i in range(len(self.bounds))
        ]
        self.input_names = _input_names(self.bounds, integer)
        if "input_names" in program.method_names:  # the names the program was written with
            named = program.load_method("input_names").execute([])
            if len(named) == len(self.bounds) and all(isinstance(n, str) for n in named):
                self.input_names = tuple(named)
        if cleanup_dir is not None:
            # the artifact's temporary directory lives exactly as long as its module
            weakref.finalize(self, shutil.rmtree, cleanup_dir, True)

    def _check(self, tensors: tuple) -> None:
        if len(tensors) != len(self.bounds):
            raise QuantbenchError(
                f"the program takes {len(self.bounds)} inputs, got {len(tensors)}"
            )
        for t, bound in zip(tensors, self.bounds, strict=True):
            shape = tuple(t.shape)
            # the batch is run one input at a time; an image's size is fixed, a
            # sequence may be shorter than its bound
            fixed = len(bound) == 4
            bad = len(shape) != len(bound) or any(
                s > b or (fixed and s != b) for s, b in zip(shape[1:], bound[1:], strict=False)
            )
            if bad:
                raise QuantbenchError(
                    f"input shape {list(shape)} is outside what the .pte was exported for "
                    f"({_bound_text(bound)}): memory is planned at export"
                )

    def __call__(self, *tensors: Any) -> Any:
        import torch

        self._check(tensors)
        device = tensors[0].device if tensors else None
        xs = [t.detach().cpu().contiguous() for t in tensors]
        n = int(xs[0].shape[0]) if xs else 1
        if n == 1:
            out = self.method.execute(xs)[0]
        else:
            out = torch.cat([self.method.execute([x[i : i + 1] for x in xs])[0] for i in range(n)])
        return out if device is None or device.type == "cpu" else out.to(device)

    def bound_text(self) -> str:
        """The input bounds in words: "3x224x224 images, one at a time"."""
        return "; ".join(_bound_text(b) for b in self.bounds[:1])

    def eval(self) -> EtModule:
        return self

    def state_dict(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        return f"EtModule({self.path!r}, threads={self.threads})"


def _bound_text(bound: tuple[int, ...]) -> str:
    if len(bound) == 4:
        return f"{bound[1]}x{bound[2]}x{bound[3]} images, one at a time"
    if len(bound) == 2:
        return f"sequences of up to {bound[1]} tokens, one at a time"
    return "inputs of shape " + "x".join(str(b) for b in bound) + ", one at a time"


def load_pte(path: str | os.PathLike, threads: int | None = None) -> EtModule:
    """A ``.pte`` file as an :class:`EtModule`; QuantbenchError in one line when ExecuTorch
    is missing or the file is not a program it loads."""
    from quantbench import fileformat
    from quantbench.errors import first_line

    p = Path(path)
    try:
        require()
    except UnsupportedError as e:
        raise QuantbenchError(f"loading .pte artifacts needs ExecuTorch: {e}") from None
    check_pte(p)
    with fileformat.expecting(p, "an ExecuTorch program (.pte)"):
        try:
            return EtModule(p, threads)
        except RuntimeError as e:
            raise QuantbenchError(
                f"'{p}' does not load in ExecuTorch: {first_line(e, with_type=False)}"
            ) from None
